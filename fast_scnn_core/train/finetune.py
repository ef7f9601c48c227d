"""Fine-tuning: a run that starts from another checkpoint's weights (`init=PATH`), and the variant a run builds.

The network's variant ("paper", "mmseg", "tramac") is the one of the weights it starts from: init's,
on resume last.pt's, else the paper's; `variant=` names it explicitly and must then agree with them,
so weights made for one architecture never load silently into another (their shapes mostly match).

With init on the same class set (the same names in the same order) every tensor is loaded. On
another class set (a folder dataset's own classes) the layers that score classes, `CLASS_LAYERS`,
keep their fresh seeded initialisation and every other tensor is loaded. Auxiliary heads the init
checkpoint lacks (an inference checkpoint, or imported without --keep-aux) start fresh too. Only
weights come from init: the optimizer, the schedule and the counters start anew.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from torch import nn

from fast_scnn_core.errors import CheckpointError
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.model.checkpoint import build_model, class_set_of, load_checkpoint
from fast_scnn_core.model.network import AUX_PREFIXES, Variant
from fast_scnn_core.train.recipe import TrainConfig

# The layers whose output channels are the classes (FastSCNN's state_dict names): the classifier's
# last 1x1 conv and each auxiliary head's. Everything before them is the same for any class set.
CLASS_LAYERS: tuple[str, ...] = ("classifier.conv.", "aux_downsample.classifier.", "aux_global.classifier.")


def run_variant(config: TrainConfig, source: dict[str, Any] | None, what: str) -> Variant:
    """The variant to build: `config.variant`, else that of `source` (init's or last.pt's payload), else paper.

    Refused (CheckpointError) when `variant=` names another than the weights were made for.
    """
    found = source["variant"] if source is not None else None
    if config.variant != "auto" and found is not None and config.variant != found:
        raise CheckpointError(
            f"{what} holds a {found!r} network but the run asks for variant={config.variant}; "
            "drop variant= (auto builds the checkpoint's) or use a checkpoint of that variant"
        )
    return found or ("paper" if config.variant == "auto" else config.variant)


def load_init(config: TrainConfig) -> dict[str, Any] | None:
    """The payload of `config.init` (None without one), checked against `variant=`; one-line CheckpointError."""
    if not config.init:
        return None
    try:
        payload = load_checkpoint(config.init)
        build_model(payload, aux=has_aux_heads(payload))  # its tensors fit its variant's network exactly
    except CheckpointError as exc:
        raise CheckpointError(f"init={config.init}: {exc}") from None
    run_variant(config, payload, f"init={config.init}")
    return payload


def has_aux_heads(payload: dict[str, Any]) -> bool:
    """Whether a checkpoint holds auxiliary-head weights (a run's do; an imported one only with --keep-aux)."""
    return any(name.startswith(AUX_PREFIXES) for name in payload["model"])


@dataclass
class InitReport:
    """Which tensors of the model came from init (`loaded`), were re-initialised (`reset`), or start `fresh`."""

    loaded: list[str]
    reset: list[str]
    fresh: list[str]

    def describe(self, path: str, payload: dict[str, Any], classes: ClassSet) -> str:
        """The log lines: how many tensors were loaded from where, which were reset or fresh and why."""
        total = len(self.loaded) + len(self.reset) + len(self.fresh)
        source = class_set_of(payload)
        lines = [
            f"init: loaded {len(self.loaded)} of {total} tensors from {path} "
            f"({payload['variant']} network, {source.num_classes} classes)"
        ]
        if self.reset:
            lines.append(
                f"init: re-initialised {len(self.reset)}, the class layers ({path} has classes {_names(source)}, "
                f"this data {_names(classes)}): {', '.join(self.reset)}"
            )
        if self.fresh:
            heads = sorted({prefix for prefix in AUX_PREFIXES for name in self.fresh if name.startswith(prefix)})
            lines.append(
                f"init: initialised fresh {len(self.fresh)}, {path} has no auxiliary heads (an inference "
                f"checkpoint, or imported without --keep-aux): {', '.join(head + '*' for head in heads)}"
            )
        return "\n".join(lines)


def _names(classes: ClassSet, shown: int = 6) -> str:
    names = list(classes.names[:shown]) + (["..."] if classes.num_classes > shown else [])
    return f"{classes.num_classes} [{', '.join(names)}]"


def init_weights(model: nn.Module, payload: dict[str, Any], classes: ClassSet) -> InitReport:
    """Load init's tensors into `model` (built with `run_variant`): all on the same class set, else all but
    `CLASS_LAYERS`; the others keep the model's seeded initialisation."""
    same_classes = class_set_of(payload).names == classes.names
    source = payload["model"]
    state = model.state_dict()
    report = InitReport([], [], [])
    for name in state:
        if name not in source:
            report.fresh.append(name)
        elif not same_classes and name.startswith(CLASS_LAYERS):
            report.reset.append(name)
        else:
            state[name] = source[name]
            report.loaded.append(name)
    model.load_state_dict(state)
    return report


def mean_std_warning(path: str, payload: dict[str, Any], config: TrainConfig) -> str | None:
    """A warning when the run normalises its inputs unlike the weights it starts from (None when alike)."""
    theirs, ours = [*payload["mean"], *payload["std"]], [*config.mean, *config.std]
    if all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(ours, theirs, strict=True)):
        return None
    return (
        f"init: warning: {path} was trained with mean {theirs[:3]}, std {theirs[3:]}, this run normalises with "
        f"mean {ours[:3]}, std {ours[3:]}: set mean= and std= to its values unless you mean to change them"
    )
