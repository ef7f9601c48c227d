"""Which backend and precision `auto` runs on a CPU, and the int8 artefact of `fast-scnn quantize` it reads.

The rule (cheap and deterministic at engine start: no timing, no data):

- Speed order, measured side by side on this project's CPUs (docs/benchmarks.md): OpenVINO int8 >
  OpenVINO bf16 > ONNX Runtime f32 > OpenVINO f32. So `backend: auto` takes openvino only for int8 or
  bf16; for f32 it takes onnxruntime.
- Accuracy, measured not assumed: `fast-scnn quantize` scores every precision the CPU runs on the
  data's validation split and records the class mIoU of each in the artefact, beside the checkpoint's
  sha256. `precision: auto` takes the fastest precision the CPU has whose mIoU is within GATE_POINTS
  of f32's in that record; with no record (or a stale one: the checkpoint changed since) it takes f32.
- An explicit `precision: bf16` or `int8` is the user's call: it runs without a gate record, but
  int8 needs a fresh artefact (a stale one is refused, never used silently).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from fast_scnn_core.errors import CheckpointError, ConfigError
from fast_scnn_core.model.checkpoint import file_sha256

GATE_POINTS = 0.3  # mIoU points below f32 a precision may lose and still be chosen by `auto`
FASTEST_FIRST = ("int8", "bf16")  # measured faster than ONNX Runtime f32 (docs/benchmarks.md); f32 is slower
ARTEFACT_SUFFIX = ".int8.onnx"
INSTALL_HINT = "pip install 'fast_scnn_ros[openvino]'"
# ONNX metadata keys of the artefact
SHA_KEY, GATE_KEY = "fast_scnn.checkpoint_sha256", "fast_scnn.gate"


def artefact_path(checkpoint: str | Path) -> Path:
    """Where `fast-scnn quantize` writes, and the engine looks for, the int8 graph: runs/x/best.pt -> best.int8.onnx."""
    return Path(checkpoint).with_suffix(ARTEFACT_SUFFIX)


@dataclass(frozen=True)
class Gate:
    """Class mIoU (0..1) of each precision on a validation split, as `fast-scnn quantize` measured it."""

    miou: dict[str, float]
    data: str = ""
    images: int = 0
    size: str = ""  # HxW of the first validation image: the gate holds at that resolution

    def delta_points(self, precision: str) -> float | None:
        """mIoU points `precision` loses against f32 (negative: it gains); None when it was not measured."""
        if precision not in self.miou or "f32" not in self.miou:
            return None
        return 100.0 * (self.miou["f32"] - self.miou[precision])

    def passes(self, precision: str) -> bool:
        delta = self.delta_points(precision)
        return delta is not None and delta <= GATE_POINTS

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


@dataclass(frozen=True)
class Artefact:
    """The int8 graph of a checkpoint and what `fast-scnn quantize` recorded with it."""

    path: Path
    onnx: bytes
    checkpoint_sha256: str
    gate: Gate | None


def read_artefact(path: str | Path) -> Artefact:
    """The artefact at `path`; CheckpointError naming the file when it is not one `fast-scnn quantize` wrote."""
    import onnx

    path = Path(path)
    try:
        data = path.read_bytes()
        proto = onnx.load_from_string(data)
    except Exception as exc:  # OSError, or protobuf's DecodeError for a file that is not ONNX
        raise CheckpointError(f"{path}: cannot read the int8 artefact ({type(exc).__name__}: {exc})") from None
    meta = {entry.key: entry.value for entry in proto.metadata_props}
    if SHA_KEY not in meta:
        raise CheckpointError(f"{path}: not an int8 artefact of `fast-scnn quantize` (no {SHA_KEY} metadata)")
    gate = json.loads(meta[GATE_KEY]) if meta.get(GATE_KEY) else None
    return Artefact(path, data, meta[SHA_KEY], Gate(**gate) if gate else None)


def fresh_artefact(checkpoint: str) -> tuple[Artefact | None, str]:
    """(the checkpoint's artefact, "") when it exists and was made from this very checkpoint, else (None, why not)."""
    if not checkpoint:
        return None, "no checkpoint file, so no int8 artefact"
    path = artefact_path(checkpoint)
    if not path.exists():
        return None, f"no {path.name} beside the checkpoint (fast-scnn quantize writes it)"
    artefact = read_artefact(path)
    if artefact.checkpoint_sha256 != file_sha256(checkpoint):
        return None, (
            f"{path} is stale: it was quantised from another version of {checkpoint} (sha256 differs); "
            f"run fast-scnn quantize --checkpoint {checkpoint} --data DIR --overwrite"
        )
    return artefact, ""


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


@functools.cache
def openvino_core():  # -> openvino.Core
    """The process's one OpenVINO Core, as OpenVINO recommends: each Core loads its own plugins, and a Core (with
    the CPU plugin's thread pool) made and dropped per engine crashed the process later (SIGSEGV in the test run)."""
    import openvino as ov

    return ov.Core()


@functools.cache
def cpu_precisions() -> tuple[str, ...]:
    """The precisions OpenVINO's CPU plugin runs here (OPTIMIZATION_CAPABILITIES: BF16 only where the CPU has it)."""
    capabilities = openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return ("f32", *(name for name in ("bf16", "int8") if name.upper() in capabilities))


@dataclass(frozen=True)
class Choice:
    """What the engine runs and why (the node's diagnostics and `fast-scnn bench` report it)."""

    backend: str
    precision: str
    reason: str = ""
    artefact: Artefact | None = field(default=None, repr=False)


def choose_precision(requested: str, checkpoint: str, available: tuple[str, ...]) -> Choice:
    """The OpenVINO precision for `requested` (auto | f32 | bf16 | int8), refused with the reason when it cannot run."""
    if requested != "auto" and requested not in available:
        raise ConfigError(f"precision {requested}: this CPU runs {', '.join(available)} in OpenVINO")
    if requested == "f32":
        return Choice("openvino", "f32", "asked for")
    artefact, problem = fresh_artefact(checkpoint)
    if requested == "int8":
        if artefact is None:
            raise ConfigError(f"precision int8: {problem}")
        return Choice("openvino", "int8", "asked for", artefact)
    if requested == "bf16":
        return Choice("openvino", "bf16", "asked for")
    if artefact is None or artefact.gate is None:
        return Choice("openvino", "f32", f"no accuracy gate recorded: {problem or 'the artefact has no gate'}")
    for precision in FASTEST_FIRST:
        if precision in available and artefact.gate.passes(precision):
            delta = artefact.gate.delta_points(precision)
            reason = f"{precision} passed the accuracy gate ({0.0 - delta + 0.0:+.2f} mIoU points against f32)"
            return Choice("openvino", precision, reason, artefact)
    losses = ", ".join(f"{p} {-artefact.gate.delta_points(p):+.2f}" for p in FASTEST_FIRST if p in artefact.gate.miou)
    return Choice("openvino", "f32", f"no precision within {GATE_POINTS} mIoU points of f32 ({losses})")


def choose_cpu_backend(requested: str, precision: str, checkpoint: str) -> Choice:
    """`backend` auto or openvino on the CPU: the backend and precision to run, with the reason."""
    if not openvino_installed():
        if requested == "openvino" or precision in ("bf16", "int8"):
            raise ConfigError(f"backend openvino (precision {precision}) needs the openvino extra: {INSTALL_HINT}")
        fallback = "onnxruntime" if importlib.util.find_spec("onnxruntime") is not None else "torch"
        return Choice(fallback, "f32", f"openvino is not installed ({INSTALL_HINT})")
    choice = choose_precision(precision, checkpoint, cpu_precisions())
    if requested == "openvino" or choice.precision != "f32" or importlib.util.find_spec("onnxruntime") is None:
        return choice
    return Choice("onnxruntime", "f32", f"openvino f32 is slower than onnxruntime; {choice.reason}")
