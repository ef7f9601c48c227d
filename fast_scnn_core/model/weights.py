"""Import the published Fast-SCNN Cityscapes checkpoints into `FastSCNN(variant=source)`, exactly.

Two layouts, each loaded into the variant of the same name (see `network.py`'s table):

- "mmseg": OpenMMLab mmsegmentation `fast_scnn_lr0.12_8x4_160k_cityscapes_*.pth`, a dict
  `{"meta": ..., "state_dict": ...}` with `backbone.`, `decode_head.` and `auxiliary_head.0|1.` keys.
- "tramac": Tramac/Fast-SCNN-pytorch `weights/fast_scnn_citys.pth`, a bare state dict in the legacy
  (pre-zip) serialisation, possibly with DataParallel's `module.` prefix.

Files are read with `torch.load(weights_only=True)`: a file can never run code. Keys are translated
by `RULES` (regular expressions on the source key, first match wins), never by a hand-written key
list. The import is strict: every source tensor is used exactly once (renamed, folded, or dropped as
an auxiliary head), and every tensor of the target model is produced with the target shape; anything
else is a CheckpointError naming the key.

Tramac's two feature-fusion 1x1 convolutions carry a bias followed by BatchNorm; ours have none, so
the bias is folded into the BatchNorm: BN(Wx + b) with running mean m == BN(Wx) with running mean m - b.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from fast_scnn_core.errors import CheckpointError
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.model.checkpoint import ImportedFrom, file_sha256, safe_load
from fast_scnn_core.model.network import FastSCNN

Source = Literal["mmseg", "tramac"]


@dataclass(frozen=True)
class Published:
    """A project's published Cityscapes checkpoint: who, which file, where, the val mIoU (%) its README reports."""

    project: str
    file: str
    url: str
    miou: float


PUBLISHED: dict[str, Published] = {
    "mmseg": Published(
        "OpenMMLab mmsegmentation",
        "fast_scnn_lr0.12_8x4_160k_cityscapes_20210630_164853-0cec9937.pth",
        "https://download.openmmlab.com/mmsegmentation/v0.5/fast_scnn/fast_scnn_lr0.12_8x4_160k_cityscapes/"
        "fast_scnn_lr0.12_8x4_160k_cityscapes_20210630_164853-0cec9937.pth",
        70.96,
    ),
    "tramac": Published(
        "Tramac/Fast-SCNN-pytorch",
        "fast_scnn_citys.pth",
        "https://github.com/Tramac/Fast-SCNN-pytorch (weights/fast_scnn_citys.pth)",
        54.84,
    ),
}
# OpenMMLab names a released file `<name>-<first 8 hex digits of its sha256>.pth`.
_MMSEG_HASH_IN_NAME = re.compile(r"-(?P<prefix>[0-9a-f]{8})\.pth$")

# Key translation. A rule maps a source *module path* (the key without its last component, which is
# kept: weight, bias, running_mean, running_var, num_batches_tracked) to ours:
# (pattern, target template[, AUX]). In patterns "." is a literal dot; the first pattern matching
# the whole path wins. Templates are str.format'ed with the named groups and the lookups of `_NAMES`.
# AUX: a training-only auxiliary head, kept with keep_aux, otherwise dropped (and reported).
AUX = "aux"
RULES: dict[str, list[tuple[str, ...]]] = {
    "mmseg": [
        # mmcv ConvModule / DepthwiseSeparableConvModule name their layers .conv / .bn, as our ConvBN does.
        (r"backbone.learning_to_downsample.conv.(?P<m>conv|bn)", "learning_to_downsample.conv.{m}"),
        (
            r"backbone.learning_to_downsample.dsconv(?P<i>[12]).(?P<dp>depthwise|pointwise)_conv.(?P<m>conv|bn)",
            "learning_to_downsample.dsconv{i}.{dp}.{m}",
        ),
        # InvertedResidual: .conv.0 / .1 / .2 = expand 1x1, depthwise 3x3, project 1x1.
        (
            r"backbone.global_feature_extractor.bottleneck(?P<s>[123]).(?P<b>\d+).conv.(?P<j>[012]).(?P<m>conv|bn)",
            "global_feature_extractor.stage{s}.{b}.{inverted_residual}.{m}",
        ),
        # PPM: ppm.<i>.0 is the AdaptiveAvgPool2d, ppm.<i>.1 the 1x1 conv; `out` the (3x3) projection.
        (
            r"backbone.global_feature_extractor.ppm.(?P<i>[0-3]).1.(?P<m>conv|bn)",
            "global_feature_extractor.ppm.stages.{i}.{m}",
        ),
        (r"backbone.global_feature_extractor.out.(?P<m>conv|bn)", "global_feature_extractor.ppm.project.{m}"),
        (r"backbone.feature_fusion.dwconv.(?P<m>conv|bn)", "feature_fusion.dwconv.{m}"),
        (r"backbone.feature_fusion.conv_(?P<r>lower|higher)_res.(?P<m>conv|bn)", "feature_fusion.{fusion_branch}.{m}"),
        # DepthwiseSeparableFCNHead: convs.0 / convs.1 are our classifier's dsconv1 / dsconv2, conv_seg its 1x1.
        (
            r"decode_head.convs.(?P<i>[01]).(?P<dp>depthwise|pointwise)_conv.(?P<m>conv|bn)",
            "classifier.dsconv{i_plus_1}.{dp}.{m}",
        ),
        (r"decode_head.conv_seg", "classifier.conv"),
        # FCNHead(num_convs=1, concat_input=False): convs.0 = 3x3 conv-BN-ReLU, conv_seg = 1x1 with bias.
        # auxiliary_head.0 reads the global features (in_index -2, 128 ch), .1 learning to downsample (-3, 64).
        (r"auxiliary_head.(?P<a>[01]).convs.0.(?P<m>conv|bn)", "{aux_head}.conv.{m}", AUX),
        (r"auxiliary_head.(?P<a>[01]).conv_seg", "{aux_head}.classifier", AUX),
    ],
    "tramac": [
        # _ConvBNReLU and _DWConv: .conv = Sequential(Conv2d, BatchNorm2d, ReLU).
        (r"learning_to_downsample.conv.conv.(?P<j>[01])", "learning_to_downsample.conv.{conv_bn}"),
        # _DSConv: .conv = Sequential(depthwise Conv2d, BN, ReLU, pointwise Conv2d, BN, ReLU).
        (
            r"(?P<mod>learning_to_downsample|classifier).dsconv(?P<i>[12]).conv.(?P<j>[0134])",
            "{mod}.dsconv{i}.{dsconv}",
        ),
        # LinearBottleneck: .block = Sequential(_ConvBNReLU 1x1, _DWConv 3x3, Conv2d 1x1, BatchNorm2d).
        (
            r"global_feature_extractor.bottleneck(?P<s>[123]).(?P<b>\d+).block.(?P<k>[01]).conv.(?P<j>[01])",
            "global_feature_extractor.stage{s}.{b}.{expand_depthwise}.{conv_bn}",
        ),
        (
            r"global_feature_extractor.bottleneck(?P<s>[123]).(?P<b>\d+).block.(?P<j>[23])",
            "global_feature_extractor.stage{s}.{b}.project.{conv_bn}",
        ),
        # PyramidPooling: conv1..conv4 are the bins 1, 2, 3, 6 (our stages.0..3); `out` the 1x1 projection.
        (
            r"global_feature_extractor.ppm.conv(?P<i>[1-4]).conv.(?P<j>[01])",
            "global_feature_extractor.ppm.stages.{i_minus_1}.{conv_bn}",
        ),
        (r"global_feature_extractor.ppm.out.conv.(?P<j>[01])", "global_feature_extractor.ppm.project.{conv_bn}"),
        (r"feature_fusion.dwconv.conv.(?P<j>[01])", "feature_fusion.dwconv.{conv_bn}"),
        # FeatureFusionModule: conv_lower_res / conv_higher_res = Sequential(Conv2d *with bias*, BatchNorm2d);
        # the bias is folded into the BatchNorm (see FOLD_BIAS).
        (r"feature_fusion.conv_(?P<r>lower|higher)_res.(?P<j>[01])", "feature_fusion.{fusion_branch}.{conv_bn}"),
        # Classifer: .conv = Sequential(Dropout, Conv2d).
        (r"classifier.conv.1", "classifier.conv"),
        # Only in FastSCNN(aux=True) files (the published one is aux=False): auxlayer = Sequential(Conv2d 3x3,
        # BN, ReLU, Dropout, Conv2d 1x1) on the 64-channel features. Always dropped (our aux option has two heads).
        (r"auxlayer.(?P<j>[014])", "", AUX),
    ],
}

# Conv biases (by target module path) that have no place in our bias-free ConvBN: folded into its BN.
FOLD_BIAS: dict[str, str] = {"mmseg": r"(?!)", "tramac": r"feature_fusion.conv_(low|high).conv"}

_DSCONV_LAYERS = {"0": "depthwise.conv", "1": "depthwise.bn", "3": "pointwise.conv", "4": "pointwise.bn"}
# Index -> name lookups used by the templates (Sequential indices of the source layouts).
_NAMES = {
    "conv_bn": lambda g: {"0": "conv", "1": "bn", "2": "conv", "3": "bn"}[g["j"]],
    "dsconv": lambda g: _DSCONV_LAYERS[g["j"]],
    "inverted_residual": lambda g: ("expand", "depthwise", "project")[int(g["j"])],
    "expand_depthwise": lambda g: ("expand", "depthwise")[int(g["k"])],
    "fusion_branch": lambda g: {"lower": "conv_low", "higher": "conv_high"}[g["r"]],
    "aux_head": lambda g: ("aux_global", "aux_downsample")[int(g["a"])],
    "i_plus_1": lambda g: int(g["i"]) + 1,
    "i_minus_1": lambda g: int(g["i"]) - 1,
}
_COMPILED = {
    source: [(re.compile(rule[0].replace(".", r"\.")), *rule[1:]) for rule in rules] for source, rules in RULES.items()
}


@dataclass
class ImportReport:
    """What an import did with every source tensor, and where the file comes from."""

    source: Source
    imported_from: ImportedFrom
    source_tensors: int
    folded_biases: list[str] = field(default_factory=list)
    dropped_aux: list[str] = field(default_factory=list)
    filled_num_batches_tracked: list[str] = field(default_factory=list)
    source_meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Renamed:
    """Source tensors under target keys, before completion: renamed, to fold, dropped."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # target key -> source key, for messages
    folds: list[tuple[str, str, torch.Tensor]] = field(default_factory=list)  # (source key, target key, bias)
    dropped: list[str] = field(default_factory=list)


def import_weights(source: Source, path: str | Path, keep_aux: bool = False) -> tuple[FastSCNN, ImportReport]:
    """`FastSCNN(19, variant=source)` (eval mode) with the weights of the published-layout checkpoint at `path`.

    `keep_aux` keeps mmseg's two auxiliary FCN heads as `aux_global` / `aux_downsample` (for fine-tuning).
    """
    state, report = import_state_dict(source, path, keep_aux)
    model = FastSCNN(CITYSCAPES.num_classes, aux=keep_aux, variant=source)
    model.load_state_dict(state, strict=True)
    return model.eval(), report


def import_state_dict(
    source: Source, path: str | Path, keep_aux: bool = False
) -> tuple[OrderedDict[str, torch.Tensor], ImportReport]:
    """Map the checkpoint at `path` onto `FastSCNN(19, variant=source, aux=keep_aux)`'s state dict, strictly.

    Missing `num_batches_tracked` buffers (checkpoints older than torch 0.4.1) are filled with 0.
    """
    if source not in RULES:
        raise CheckpointError(f"source {source!r}: expected one of {tuple(RULES)}")
    if keep_aux and source == "tramac":
        raise CheckpointError("keep_aux: Tramac's published checkpoint has no auxiliary heads to keep (mmseg's has)")
    path = Path(path)
    state, meta = read_source(path)
    try:
        _check_classes(source, meta)
        renamed = _rename(source, state, keep_aux)
        expected = FastSCNN(CITYSCAPES.num_classes, aux=keep_aux, variant=source).state_dict()
        out, filled = _complete(source, renamed, expected)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    imported_from, warnings = provenance(source, path)
    report = ImportReport(
        source=source,
        imported_from=imported_from,
        source_tensors=len(state),
        folded_biases=[key for key, _, _ in renamed.folds],
        dropped_aux=renamed.dropped,
        filled_num_batches_tracked=filled,
        source_meta={k: v for k, v in meta.items() if k != "CLASSES"},
        warnings=warnings,
    )
    return out, report


def read_source(path: Path) -> tuple[OrderedDict[str, torch.Tensor], dict[str, Any]]:
    """torch.load (weights_only, zip or legacy format) -> (state dict without `module.`, the file's metadata)."""
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (download the published file first)")
    obj = safe_load(path, legacy=True)
    meta: dict[str, Any] = {}
    if isinstance(obj, dict) and obj.get("architecture") == "fast_scnn":
        raise CheckpointError(f"{path} is already a fast-scnn checkpoint: use it as it is")
    if isinstance(obj, dict) and isinstance(obj.get("meta"), dict):
        meta = dict(obj["meta"])
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
            meta["wrapper"] = wrapper
            break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors (nor one under 'state_dict' or 'model')")
    stripped = all(str(k).startswith("module.") for k in obj)
    state = OrderedDict((str(k).removeprefix("module.") if stripped else str(k), v) for k, v in obj.items())
    meta["stripped_module_prefix"] = stripped
    return state, meta


def provenance(source: Source, path: Path) -> tuple[ImportedFrom, list[str]]:
    """`imported_from` of the file at `path`, and warnings (an mmseg file whose name disagrees with its sha256)."""
    sha256 = file_sha256(path)
    published = PUBLISHED[source]
    warnings = []
    named = _MMSEG_HASH_IN_NAME.search(path.name) if source == "mmseg" else None
    if named and not sha256.startswith(named["prefix"]):
        warnings.append(
            f"{path.name} names sha256 {named['prefix']}..., the file's is {sha256[:8]}...: "
            "a damaged or altered download? (imported anyway)"
        )
    # The reported mIoU belongs to the published file only: same name and, for mmseg, the hash its name carries.
    is_release = path.name == published.file and not warnings
    miou = published.miou if is_release else None
    return ImportedFrom(source, published.project, path.name, sha256, miou), warnings


def _check_classes(source: Source, meta: dict[str, Any]) -> None:
    """The file's own class list (mmseg's meta.CLASSES), when it has one, must be Cityscapes' 19 in order."""
    classes = meta.get("CLASSES")
    if classes is not None and tuple(classes) != CITYSCAPES.names:
        raise CheckpointError(
            f"{source} checkpoint: meta CLASSES {list(classes)[:4]}... are not the 19 Cityscapes trainIds in order"
        )


def _target_key(source: Source, key: str, keep_aux: bool) -> tuple[str, str | None]:
    """(action, target key) for one source key; action is "rename", "fold" or "drop_aux"."""
    module, _, param = key.rpartition(".")
    for pattern, template, *kind in _COMPILED[source]:
        m = pattern.fullmatch(module)
        if m is None:
            continue
        if kind == [AUX] and not keep_aux:
            return "drop_aux", None
        groups = m.groupdict()
        names = {name: f(groups) for name, f in _NAMES.items() if "{" + name + "}" in template}
        target = template.format(**groups, **names)
        if param == "bias" and re.fullmatch(FOLD_BIAS[source].replace(".", r"\."), target):
            return "fold", target.removesuffix(".conv") + ".bn.running_mean"
        return "rename", f"{target}.{param}"
    others = [other for other in RULES if other != source and _matches(other, module)]
    if others:
        raise CheckpointError(
            f"{source} checkpoint: source key {key!r} is a {others[0]} key; read the file as {others[0]} "
            f"(--from {others[0]})"
        )
    raise CheckpointError(f"{source} checkpoint: no mapping rule for source key {key!r}")


def _matches(source: str, module: str) -> bool:
    return any(pattern.fullmatch(module) for pattern, *_ in _COMPILED[source])


def _rename(source: Source, state: dict[str, torch.Tensor], keep_aux: bool) -> _Renamed:
    """Every source tensor under its target key (or to fold, or dropped); two sources for one target is an error."""
    renamed = _Renamed()
    for key, tensor in state.items():
        action, target = _target_key(source, key, keep_aux)
        if action == "drop_aux":
            renamed.dropped.append(key)
        elif action == "fold":
            if any(t == target for _, t, _ in renamed.folds):
                raise CheckpointError(f"{source} checkpoint: two biases fold into {target!r} ({key!r})")
            renamed.folds.append((key, target, tensor))
        elif target in renamed.tensors:
            raise CheckpointError(f"{source} checkpoint: {key!r} and {renamed.origin[target]!r} both map to {target!r}")
        else:
            renamed.tensors[target], renamed.origin[target] = tensor, key
    return renamed


def _complete(
    source: Source, renamed: _Renamed, expected: dict[str, torch.Tensor]
) -> tuple[OrderedDict[str, torch.Tensor], list[str]]:
    """The target state dict in `expected`'s order and dtypes: every key produced, each of its shape; biases folded."""
    tensors, origin = dict(renamed.tensors), renamed.origin
    filled = [key for key in expected if key not in tensors and key.endswith("num_batches_tracked")]
    tensors.update({key: torch.zeros_like(expected[key]) for key in filled})
    for key in expected:
        if key not in tensors:
            raise CheckpointError(f"{source} checkpoint: nothing maps to target key {key!r} (a missing tensor)")
    for key in tensors:
        if key not in expected:
            raise CheckpointError(
                f"{source} checkpoint: {origin.get(key, key)!r} -> {key!r}, which FastSCNN(variant={source!r}) "
                "does not have"
            )
    for key, target, bias in renamed.folds:  # BN(Wx + b; mean m) == BN(Wx; mean m - b)
        if bias.shape != tensors[target].shape:
            raise CheckpointError(
                f"{source} checkpoint: {key!r} has shape {tuple(bias.shape)}, {target!r} needs "
                f"{tuple(tensors[target].shape)}"
            )
        tensors[target] = tensors[target] - bias
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, ref in expected.items():
        tensor = tensors[key]
        if tensor.shape != ref.shape:
            raise CheckpointError(
                f"{source} checkpoint: {origin.get(key, key)!r} has shape {tuple(tensor.shape)}, "
                f"{key!r} needs {tuple(ref.shape)}"
            )
        out[key] = tensor.to(ref.dtype).clone()
    return out, filled
