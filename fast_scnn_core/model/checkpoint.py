"""Self-describing checkpoints: one file with the weights and everything needed to use them.

Loading uses `torch.load(weights_only=True)`: a checkpoint can never execute code. Writes are
atomic (temp file + rename), so a crash never leaves a half-written checkpoint; a full disk or a
read-only directory is a StorageError that says the previous file is intact.

Every loaded payload is validated against one schema, `CheckpointMetadata` (types through
`config.from_dict`, meaning in its `__post_init__`), and its weights must be finite: whatever the
file holds, a user gets one line saying which file, which field and what was expected, never a
traceback and never NaN labels from a damaged file.

Format 2 added `variant` (which `FastSCNN` architecture the weights are for: "paper", "mmseg",
"tramac") and `imported_from` (the published file `fast-scnn import-weights` read). A checkpoint
that needs neither, a paper model trained here, is still written as format 1, so releases before
format 2 keep reading it; they refuse any other ("checkpoint format 2 is newer than this release
reads") instead of building the paper's network around weights made for another. A format-1 file
is a paper model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import re
import stat
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch

from fast_scnn_core.atomic import atomic_write_bytes
from fast_scnn_core.config import from_dict, quick_start_hint
from fast_scnn_core.errors import CheckpointError, ConfigError
from fast_scnn_core.labels import IGNORE_INDEX, ClassSet
from fast_scnn_core.model.network import ARCH_VERSION, AUX_PREFIXES, FastSCNN, Variant

FORMAT_VERSION = 2
FORMAT_PAPER = 1  # what a paper model without `imported_from` is written as (readable by releases before 2)
ARCHITECTURE = "fast_scnn"

# ImageNet statistics on 0..1 pixel values, the default normalisation (stored in each checkpoint).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# What `fast-scnn train` stores in last.pt's training_state for an exact resume (best.pt has none).
RESUME_KEYS = ("optimizer", "scaler", "best_miou", "history")

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
_LEGACY_MAGIC = b"\x80\x02"  # torch.save before 1.6 (and _use_new_zipfile_serialization=False): a pickle


@dataclass
class StoredClasses:
    """`classes` of a checkpoint: ClassSet.to_dict()."""

    names: list[str]
    colors: list[tuple[int, int, int]]
    categories: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i, color in enumerate(self.colors):
            if not all(0 <= v <= 255 for v in color):
                raise ValueError(f"colors[{i}] {list(color)}: expected 0..255 RGB values")
        ClassSet(tuple(self.names), tuple(self.colors), tuple(self.categories))  # unique names, matching counts


@dataclass
class ImportedFrom:
    """`imported_from` of a checkpoint written by `fast-scnn import-weights`: the published file its weights are."""

    source: Literal["mmseg", "tramac"]  # the layout it was read as (`--from`)
    project: str  # the project that published it
    file: str  # its file name
    sha256: str  # of the whole file, hex
    reported_miou: float | None = None  # Cityscapes val mIoU (%) the project reports, when the file is its release

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"sha256 {_short(repr(self.sha256))}: expected 64 lowercase hex digits")


@dataclass
class CheckpointMetadata:
    """The schema of a checkpoint (formats 1 and 2): every key `save_checkpoint` writes, its type and meaning."""

    format: int
    architecture: str
    arch_version: int
    num_classes: int
    classes: StoredClasses
    mean: tuple[float, float, float]  # on 0..1 pixel values
    std: tuple[float, float, float]
    model: dict[str, Any]  # state_dict: parameter name -> tensor
    train_config: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    iteration: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    training_state: dict[str, Any] = field(default_factory=dict)
    variant: Variant = "paper"  # format 2
    imported_from: ImportedFrom | None = None  # format 2

    def __post_init__(self) -> None:
        if self.format < 2 and (self.variant != "paper" or self.imported_from is not None):
            raise ValueError(f"format {self.format} holds paper models only; variant and imported_from need format 2")
        names = self.classes.names
        if not (1 <= self.num_classes < IGNORE_INDEX and self.num_classes == len(names)):
            raise ValueError(
                f"num_classes {self.num_classes}: expected the number of class names ({len(names)}), "
                f"1..{IGNORE_INDEX - 1}"
            )
        # The normalisation (x / 255 - mean) / std runs in float32: it must stay finite there.
        scale = [1.0 / (255.0 * s) if s > 0 else math.inf for s in self.std]
        if not all(math.isfinite(v) and abs(v) < 3e38 for v in (*self.mean, *self.std, *scale)):
            raise ValueError(f"mean {list(self.mean)}, std {list(self.std)}: expected finite values, std > 0")
        if min(self.epoch, self.iteration) < 0:
            raise ValueError(f"epoch {self.epoch}, iteration {self.iteration}: expected >= 0")
        for name, value in self.model.items():
            if not isinstance(name, str) or not isinstance(value, torch.Tensor):
                raise ValueError(f"model[{_short(repr(name))}]: expected a tensor, got {type(value).__name__}")


def _check_payload(payload: dict[str, Any], doing: str) -> None:
    """The schema, then finite weights (one diverged weight makes every label 0); CheckpointError after `doing`."""
    try:
        from_dict(CheckpointMetadata, payload, "checkpoint")
    except ConfigError as exc:
        raise CheckpointError(f"{doing}: {_short(str(exc), 300)}") from None
    for name, tensor in payload["model"].items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            nan = int(torch.isnan(tensor).sum())
            inf = int(torch.isinf(tensor).sum())
            raise CheckpointError(
                f"{doing}: weight {name} holds {nan} NaN and {inf} inf value(s) of {tensor.numel()} "
                "(training diverged or the file was altered); use an earlier checkpoint"
            )


def save_checkpoint(
    path: str | Path,
    model: FastSCNN,
    classes: ClassSet,
    *,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    train_config: dict[str, Any] | None = None,
    epoch: int = 0,
    iteration: int = 0,
    metrics: dict[str, Any] | None = None,
    training_state: dict[str, Any] | None = None,
    imported_from: ImportedFrom | None = None,
) -> None:
    """Write a checkpoint atomically, with the model's variant (format 1 for a paper model not imported).

    `training_state` holds what exact resume needs (optimizer, scheduler, scaler, RNG states); it
    must contain only tensors and plain Python values so `weights_only` loading accepts it.
    """
    if model.num_classes != classes.num_classes:
        raise CheckpointError(f"model has {model.num_classes} classes but the class set has {classes.num_classes}")
    module = model.module if hasattr(model, "module") else model
    variant = getattr(module, "variant", "paper")
    payload = {
        "format": FORMAT_PAPER,
        "architecture": ARCHITECTURE,
        "arch_version": ARCH_VERSION,
        "num_classes": classes.num_classes,
        "classes": classes.to_dict(),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "train_config": train_config or {},
        "epoch": int(epoch),
        "iteration": int(iteration),
        "metrics": metrics or {},
        "training_state": training_state or {},
    }
    if variant != "paper" or imported_from is not None:
        payload.update(format=FORMAT_VERSION, variant=variant)
        if imported_from is not None:
            payload["imported_from"] = dataclasses.asdict(imported_from)
    path = Path(path)
    kept = f"the previous {path.name} is intact" if path.is_file() else "nothing was written"
    _check_payload(payload, f"not saving {path} ({kept})")  # never write what loading would refuse
    # Serialised in memory, then written by Python: a full disk is then an OSError with its errno
    # (atomic_path says so in one line) rather than torch's "[enforce fail at inline_container.cc]".
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, resume: bool = False
) -> dict[str, Any]:
    """Load and validate a checkpoint; never unpickles code (`weights_only=True`).

    `resume=True` also requires the training state an exact resume needs (last.pt has it, best.pt not).
    """
    path = Path(path)
    return check_checkpoint(safe_load(path, map_location), path, resume=resume)


def load_checkpoint_bytes(data: bytes, name: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """`load_checkpoint` of a checkpoint file's bytes (read once, shipped to worker processes); `name` for errors."""
    try:
        payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as exc:  # as safe_load: one line, never the advice to load with weights_only=False
        raise _load_error(Path(name), exc) from None
    return check_checkpoint(payload, Path(name))


def check_checkpoint(payload: Any, path: Path, *, resume: bool = False) -> dict[str, Any]:
    """The loaded `payload` of checkpoint `path`, validated (CheckpointError naming `path` and what is wrong)."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} is not a fast-scnn checkpoint (it holds a {type(payload).__name__})")
    required = [f.name for f in fields(CheckpointMetadata) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in payload]
    if missing:
        raise CheckpointError(f"{path} is not a fast-scnn checkpoint: missing {missing}")
    if payload["architecture"] != ARCHITECTURE:
        raise CheckpointError(
            f"{path}: architecture {_short(repr(payload['architecture']))}, expected {ARCHITECTURE!r}"
        )
    version = payload["format"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: format {_short(repr(version))}, expected a format version (integer >= 1)")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this release reads (it may be for a network "
            "variant this release cannot build); upgrade fast-scnn"
        )
    if payload["arch_version"] != ARCH_VERSION:
        raise CheckpointError(
            f"{path}: architecture version {_short(repr(payload['arch_version']))}, this fast_scnn_core builds version "
            f"{ARCH_VERSION}; use the release that wrote it or retrain"
        )
    _check_payload(payload, f"{path} is not a valid fast-scnn checkpoint")
    payload.setdefault("variant", "paper")  # format 1
    payload.setdefault("imported_from", None)
    if resume:
        state = payload.get("training_state", {})
        missing = [k for k in RESUME_KEYS if k not in state]
        if missing:
            raise CheckpointError(
                f"{path} holds no training state ({', '.join(missing)} missing): it is a best.pt or another "
                "weights-only checkpoint, and resume needs the last.pt of the run (or start a new run)"
            )
    return payload


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (checkpoints, published weights); CheckpointError when it
    cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror})") from None
    return digest.hexdigest()


def safe_load(path: str | Path, map_location: str | torch.device = "cpu", *, legacy: bool = False) -> Any:
    """`torch.load(weights_only=True)` of a file (also the pre-zip format with `legacy`); failures are one line."""
    path = Path(path)
    _check_file(path, legacy)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, KeyError... for bad files
        raise _load_error(path, exc) from None


def _check_file(path: Path, legacy: bool = False) -> None:
    """Say what `path` is when it is not a checkpoint file: missing, a directory, a FIFO, a device, empty."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint {path} does not exist. Train one with `fast-scnn train` ({quick_start_hint()})"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        hint = " (a run directory? its checkpoints are last.pt and best.pt)" if (path / "last.pt").exists() else ""
        raise CheckpointError(f"checkpoint {path} is a directory, not a file{hint}")
    if not stat.S_ISREG(mode):
        kinds = {stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
        kind = next((name for test, name in kinds.items() if test(mode)), "a socket")
        raise CheckpointError(f"checkpoint {path} is {kind}, not a file written by `fast-scnn train`")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): an interrupted copy? Copy it again")
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if start != _ZIP_MAGIC and not (legacy and start.startswith(_LEGACY_MAGIC)):
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint (torch.save writes a zip archive; this file starts with "
            f"{start.hex(' ')})"
        )


def _load_error(path: Path, exc: Exception) -> CheckpointError:
    """One line for torch.load's failure, without its advice to load with weights_only=False (never do)."""
    text = str(exc)
    unsafe = re.search(r"GLOBAL ([\w.]+)", text)
    if unsafe:
        return CheckpointError(
            f"{path} refers to Python code ({unsafe[1]}), which safe loading refuses: a checkpoint holds only "
            "tensors and plain values, so this file was not written by fast-scnn (or was altered); do not use it"
        )
    if "central directory" in text:
        return CheckpointError(f"{path} is truncated or damaged (incomplete zip archive); use another copy")
    if isinstance(exc, EOFError) or "unexpected EOF" in text:
        return CheckpointError(f"{path} is truncated or damaged (it ends early); use another copy")
    if isinstance(exc, OSError):
        return CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}")
    return CheckpointError(f"{path} is damaged or not a fast-scnn checkpoint ({type(exc).__name__} while reading it)")


def _short(text: str, limit: int = 60) -> str:
    """`text` (about a value read from a file) cut to `limit` characters: crafted files may hold megabytes."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def class_set_of(payload: dict[str, Any]) -> ClassSet:
    """The ClassSet stored in a loaded (hence validated) checkpoint."""
    return ClassSet.from_dict(payload["classes"])


def build_model(payload: dict[str, Any], *, aux: bool = False, num_classes: int | None = None) -> FastSCNN:
    """A FastSCNN of the checkpoint's variant with its weights (auxiliary heads only when `aux`)."""
    if num_classes is not None and num_classes != payload["num_classes"]:
        raise CheckpointError(f"checkpoint has {payload['num_classes']} classes, expected {num_classes}")
    variant = payload.get("variant", "paper")
    model = FastSCNN(payload["num_classes"], aux=aux, variant=variant)
    state = payload["model"]
    if not aux:
        state = {k: v for k, v in state.items() if not k.startswith(AUX_PREFIXES)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        problems = "; ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip())  # torch: one a line
        raise CheckpointError(
            f"checkpoint weights do not fit FastSCNN(variant={variant!r}): {_short(problems, 300)}"
        ) from None
    return model
