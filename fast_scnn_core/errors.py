"""Errors a user can act on. The CLI prints their message (no traceback) and exits with status 2."""


class FastSCNNError(Exception):
    """Base class: the message names the file, key or value and what was expected."""


class ConfigError(FastSCNNError, ValueError):
    """A configuration file, key or value is wrong."""


class DataError(FastSCNNError, ValueError):
    """A dataset file or split is missing, unreadable or inconsistent."""


class CheckpointError(FastSCNNError, ValueError):
    """A checkpoint is missing, unsafe, corrupt or does not fit the requested use."""


class InputError(FastSCNNError, ValueError):
    """An image or tensor given to the engine has the wrong type, shape or size."""


class StorageError(FastSCNNError, OSError):
    """A file could not be written (disk full, read-only, no permission); the previous version is intact."""
