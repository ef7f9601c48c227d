"""What runs between the subscription callbacks and the worker, free of ROS: the newest-frame mailbox of
each camera, per-camera statistics, bounded error text and giving memory back.

- `Mailbox`: each camera keeps only its newest frame; the worker takes the newest frame of every
  camera that has one in one go (a round), so no camera waits for another: a frame waits at most
  for the round in progress, whatever the other cameras do. A frame that replaces an unprocessed one
  keeps it as a fallback for that round only, in case the newer one turns out undecodable (a corrupt
  JPEG is found in the worker), so a bad frame never costs the good one before it (issue 13 #9).
- `Stats`: counters and timings of one camera, changed and read through methods that take its lock.
- `bounded`: error text as it goes into the log and diagnostics (a 1 MB encoding string stays short).
- `MemoryTrimmer`: glibc keeps freed heap memory; after a round that failed or was much larger than
  the ones before, `malloc_trim(0)` gives it back (0.3 ms; docs/ros.md has the measurement).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import typing
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np

# Longest error text kept in `last_error` and written to the log (a reason fits; an echoed payload does not).
ERROR_TEXT_LIMIT = 300


def bounded(text: str, limit: int = ERROR_TEXT_LIMIT) -> str:
    """`text` cut to about `limit` characters: its start and end (where a reason's advice usually is),
    saying how much of the middle was left out."""
    if len(text) <= limit:
        return text
    head, tail = text[: 2 * limit // 3], text[-limit // 3 :]
    return f"{head} ... ({len(text) - len(head) - len(tail)} characters left out) ... {tail}"


@dataclass
class Frame:
    """A message as the subscription callback stored it."""

    msg: Any  # sensor_msgs Image or CompressedImage
    received: float  # perf_counter() in the callback


@dataclass
class Slot:
    """A camera's frames taken in one round: the newest, and the one it replaced (tried if the newest fails)."""

    newest: Frame
    fallback: Frame | None = None


@dataclass
class Round:
    """What the worker takes in one go: camera index -> its frames; `release` asks to give memory back."""

    slots: dict[int, Slot] = field(default_factory=dict)
    release: bool = False


class Mailbox:
    """Newest frame per camera, handed to one worker thread a round at a time."""

    def __init__(self, cameras: int) -> None:
        self._cond = threading.Condition()
        self._slots: list[Slot | None] = [None] * cameras
        self._release = False
        self._closed = False

    def put(self, camera: int, frame: Frame) -> bool:
        """Store `frame` as the camera's newest; True when this dropped a frame (one never processed)."""
        with self._cond:
            slot = self._slots[camera]
            self._slots[camera] = Slot(frame, slot.newest if slot else None)
            self._cond.notify()
            return slot is not None and slot.fallback is not None

    def request_release(self) -> None:
        """Ask the worker to give memory back (a large message was refused before reaching the mailbox)."""
        with self._cond:
            self._release = True
            self._cond.notify()

    def take(self) -> Round | None:
        """Wait for a frame of any camera (or a release request); every camera's newest frame; None once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._release or any(self._slots))
            if self._closed:
                return None
            taken = Round({i: s for i, s in enumerate(self._slots) if s is not None}, self._release)
            self._slots = [None] * len(self._slots)
            self._release = False
            return taken

    def close(self) -> None:
        """Wake the worker for good: take() returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


TIMINGS = ("wait", "convert", "inference", "publish", "ground", "end_to_end")
COUNTERS = ("received", "processed", "dropped", "bad", "errors")


@dataclass
class Report:
    """One diagnostics period of a camera (or of several, merged): totals, the period's deltas and timings."""

    elapsed: float
    totals: dict[str, int]
    delta: dict[str, int]
    timings: dict[str, list[float]]
    batch_sizes: list[int]
    last_error: str = ""
    last_error_time: float | None = None  # perf_counter() when it happened

    @staticmethod
    def merge(reports: list[Report]) -> Report:
        """The reports of several cameras over the same period as one (counts summed, timings pooled)."""
        newest = max(reports, key=lambda r: r.last_error_time or -1.0)
        return Report(
            elapsed=max(r.elapsed for r in reports),
            totals={k: sum(r.totals[k] for r in reports) for k in COUNTERS},
            delta={k: sum(r.delta[k] for r in reports) for k in COUNTERS},
            timings={k: [v for r in reports for v in r.timings[k]] for k in TIMINGS},
            batch_sizes=[v for r in reports for v in r.batch_sizes],
            last_error=newest.last_error,
            last_error_time=newest.last_error_time,
        )

    def values(self, now: float) -> dict[str, Any]:
        """Diagnostics key/values: totals, rates, mean timings (ms), the last error and its age."""
        timings = self.timings
        mean_ms = {f"{k}_ms": 1e3 * float(np.mean(v)) if v else float("nan") for k, v in timings.items()}
        overhead = np.subtract(timings["end_to_end"], timings["inference"])
        return {
            "frames_received": self.totals["received"],
            "frames_processed": self.totals["processed"],
            "frames_dropped": self.totals["dropped"],
            "bad_messages": self.totals["bad"],
            "errors": self.totals["errors"],
            "input_fps": self.delta["received"] / self.elapsed,
            "output_fps": self.delta["processed"] / self.elapsed,
            **mean_ms,
            "overhead_ms": 1e3 * float(np.mean(overhead)) if len(overhead) else float("nan"),
            "batch_size": float(np.mean(self.batch_sizes)) if self.batch_sizes else float("nan"),
            "last_error": self.last_error,
            # Kept, not cleared, after later frames succeed: an intermittent fault stays visible with its age.
            "last_error_age_s": now - self.last_error_time if self.last_error_time is not None else float("nan"),
        }


class Stats:
    """Counters and per-frame timings of one camera, summarised and reset each diagnostics period."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = dict.fromkeys(COUNTERS, 0)
        self._window_totals = dict(self._totals)
        self._window_start = perf_counter()
        self._timings: dict[str, list[float]] = {key: [] for key in TIMINGS}
        self._batch_sizes: list[int] = []
        self._last_error = ""
        self._last_error_time: float | None = None

    def _count(self, *counters: str, error: str = "") -> None:
        with self._lock:
            for counter in counters:
                self._totals[counter] += 1
            if error:
                self._last_error, self._last_error_time = bounded(error), perf_counter()

    def received(self) -> None:
        """A message passed the callback's checks and went into the mailbox."""
        self._count("received")

    def dropped(self) -> None:
        """A frame left the mailbox unprocessed (a newer one replaced it)."""
        self._count("dropped")

    def refused(self, error: str, *, in_worker: bool) -> None:
        """A bad message, refused by the callback or (already counted as received) by the worker."""
        if in_worker:
            self._count("bad", error=error)
        else:
            self._count("received", "bad", error=error)

    def failed(self, error: str) -> None:
        """A frame the engine failed on (not the message's fault: e.g. out of memory)."""
        self._count("errors", error=error)

    def processed(self, batch_size: int, **seconds: float) -> None:
        """A frame published: its timings (TIMINGS) and the size of the batch it ran in."""
        with self._lock:
            self._totals["processed"] += 1
            self._batch_sizes.append(batch_size)
            for key, value in seconds.items():
                self._timings[key].append(value)

    def report(self) -> Report:
        """Totals and this period's deltas and timings; starts a new period."""
        with self._lock:
            now = perf_counter()
            elapsed, self._window_start = now - self._window_start, now
            totals = dict(self._totals)
            delta = {k: totals[k] - self._window_totals[k] for k in COUNTERS}
            self._window_totals = totals
            timings, self._timings = self._timings, {key: [] for key in TIMINGS}
            batch_sizes, self._batch_sizes = self._batch_sizes, []
            return Report(elapsed, totals, delta, timings, batch_sizes, self._last_error, self._last_error_time)


def _glibc(function: str) -> typing.Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), function, None) if name else None  # glibc only


_MALLOC_TRIM, _MALLOPT = _glibc("malloc_trim"), _glibc("mallopt")
# mallopt parameters (malloc.h) and the largest buffer kept for reuse: a 4K rgb8 frame is 25 MB, and glibc
# accepts an mmap threshold of at most 32 MB on 64-bit.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
REUSED_BUFFER_LIMIT = 32 << 20


def reuse_frame_buffers() -> bool:
    """Let glibc reuse freed frame-sized buffers instead of returning each to the OS; False without glibc.

    By default glibc maps each buffer above its (dynamic) mmap threshold afresh and unmaps it when
    freed, so every incoming frame, every output image and every copy starts with page faults on all
    its pages: on the 2-core VM a 512x1024 mono8 `numpy_to_image` faulted 225 times (1.2-2.2 ms) that way
    and 0 times (0.1 ms) with buffers reused (rgb8: 737 faults, 3-6 ms, against 0.1-0.5 ms). Freed memory
    then stays in the heap for the next frame; `release_memory` gives it back after unusual rounds
    (MemoryTrimmer). Process-wide, so called once, first thing in the node's main.
    """
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(M_MMAP_THRESHOLD, REUSED_BUFFER_LIMIT)) and bool(
        _MALLOPT(M_TRIM_THRESHOLD, 8 * REUSED_BUFFER_LIMIT)
    )


def release_memory() -> bool:
    """Give the heap's free memory back to the OS (glibc's malloc_trim(0)); False where there is no glibc.

    glibc keeps what a large frame's buffers freed (in the worker thread's arena, and below its dynamic
    mmap threshold) for later allocations: the process stays as large as its largest frame made it.
    """
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


class MemoryTrimmer:
    """Calls `release_memory` after unusual rounds (one that failed, or one much larger than those before)
    and after the round that follows one: ONNX Runtime frees its arena's grown chunks at the end of the
    next run of another shape (backends.py), into glibc's free lists, where they would stay."""

    LARGER = 1.5  # a round with this many times the pixels of each of the last HISTORY rounds is unusual
    HISTORY = 100

    def __init__(self) -> None:
        self._recent: deque[int] = deque(maxlen=self.HISTORY)
        self._after_unusual = False
        self.releases = 0

    def after_round(self, pixels: int, failed: bool) -> bool:
        """Release memory if this round (its input pixels, whether anything in it failed) or the one before
        was unusual; True if it did."""
        unusual = failed or (bool(self._recent) and pixels > self.LARGER * max(self._recent))
        if pixels:
            self._recent.append(pixels)
        release, self._after_unusual = unusual or self._after_unusual, unusual
        if release and release_memory():
            self.releases += 1
            return True
        return False
