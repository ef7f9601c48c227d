"""FastSCNN mirrors the paper's Tables 1-3; these pin its shape, modes and published keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fast_scnn_core.model.network import (
    VARIANTS,
    Architecture,
    Bottleneck,
    DSConv,
    FastSCNN,
    adaptive_avg_pool2d,
    count_parameters,
)

PAPER_PARAMETERS = 1_110_000


def test_parameter_count_within_3_percent_of_paper() -> None:
    n = count_parameters(FastSCNN(19))
    print(f"Fast-SCNN 19 classes: {n:,} parameters ({100 * (n - PAPER_PARAMETERS) / PAPER_PARAMETERS:+.2f}%)")
    assert 0.97 * PAPER_PARAMETERS <= n <= 1.03 * PAPER_PARAMETERS


def test_aux_heads_are_not_counted_as_inference_parameters() -> None:
    model = FastSCNN(19)
    assert count_parameters(model, inference_only=False) > count_parameters(model)
    assert count_parameters(FastSCNN(19, aux=False), inference_only=False) == count_parameters(model)


@pytest.mark.parametrize("size", [(64, 128), (97, 131), (33, 31), (1, 1), (128, 64), (255, 257)])
def test_any_input_size_gives_input_sized_output(size: tuple[int, int]) -> None:
    model = FastSCNN(7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 7, *size)


def test_table1_resolutions_at_1024x2048_scaled_down() -> None:
    """Learning to downsample outputs 1/8 resolution, the global feature extractor 1/32 (Table 1)."""
    model = FastSCNN(19).eval()
    x = torch.randn(1, 3, 256, 512)
    with torch.no_grad():
        high = model.learning_to_downsample(x)
        low = model.global_feature_extractor(high)
    assert high.shape == (1, 64, 32, 64)
    assert low.shape == (1, 128, 8, 16)


def test_aux_outputs_only_in_training_mode() -> None:
    model = FastSCNN(5)
    x = torch.randn(2, 3, 64, 96)
    model.train()
    out = model(x)
    assert list(out) == ["out", "aux_downsample", "aux_global"]
    assert all(o.shape == (2, 5, 64, 96) for o in out.values())
    model.eval()
    with torch.no_grad():
        assert isinstance(model(x), torch.Tensor)


def test_no_aux_model_returns_only_out_in_training() -> None:
    model = FastSCNN(5, aux=False).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert list(out) == ["out"] and out["out"].shape == (2, 5, 32, 32)


def test_cls_equals_argmax_of_prob() -> None:
    model = FastSCNN(6).eval()
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        model.mode = "prob"
        prob = model(x)
        model.mode = "cls"
        labels = model(x)
    assert torch.allclose(prob.sum(1), torch.ones(1, 97, 131), atol=1e-5)
    assert labels.shape == (1, 97, 131) and labels.dtype == torch.int64
    assert torch.equal(labels, prob.argmax(1))


def test_invalid_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        FastSCNN(3, mode="softmax")


def test_zero_skip_switch_changes_output() -> None:
    model = FastSCNN(4).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        normal = model(x)
        model.zero_skip = True
        ablated = model(x)
        model.zero_skip = False
        again = model(x)
    assert not torch.allclose(normal, ablated)
    assert torch.equal(normal, again)


def test_every_parameter_gets_a_gradient() -> None:
    model = FastSCNN(3).train()
    sum(o.sum() for o in model(torch.randn(2, 3, 64, 64)).values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_dsconv_has_no_nonlinearity_between_depthwise_and_pointwise() -> None:
    block = DSConv(8, 16)
    assert not hasattr(block.depthwise, "relu")
    assert hasattr(block.pointwise, "relu")
    assert block.depthwise.conv.groups == 8


def test_bottleneck_is_residual_only_when_shapes_match_and_projection_is_linear() -> None:
    assert Bottleneck(64, 64, t=6, s=1).use_residual
    assert not Bottleneck(64, 64, t=6, s=2).use_residual
    assert not Bottleneck(64, 96, t=6, s=1).use_residual
    block = Bottleneck(64, 96, t=6, s=2)
    assert block.expand.conv.out_channels == 384
    assert not hasattr(block.project, "relu")


def test_feature_fusion_uses_dilated_depthwise_conv() -> None:
    ffm = FastSCNN(19).feature_fusion
    conv = ffm.dwconv.conv
    assert conv.dilation == (4, 4) and conv.groups == conv.in_channels == 128 and conv.kernel_size == (3, 3)


def test_dropout_only_before_last_layer() -> None:
    model = FastSCNN(19, aux=False)
    dropouts = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts == ["classifier.dropout"]


@pytest.mark.parametrize("size", [(16, 32), (7, 11), (6, 6), (2, 5)])
def test_export_form_of_adaptive_pooling_matches_native(size: tuple[int, int]) -> None:
    x = torch.randn(1, 4, *size)
    for bins in (1, 2, 3, 6):
        native = torch.nn.functional.adaptive_avg_pool2d(x, bins)
        traced = torch.jit.trace(lambda t, b=bins: adaptive_avg_pool2d(t, b), x)
        assert torch.allclose(traced(x), native, atol=1e-6)


def test_state_dict_keys_are_stable() -> None:
    """Published checkpoints must keep loading: the key list is golden. Change it only with ARCH_VERSION."""
    golden = (Path(__file__).parent / "golden_state_dict_keys.txt").read_text().split()
    assert list(FastSCNN(19).state_dict().keys()) == golden


def test_variants_share_parameter_names_and_differ_only_in_the_ppm_projection_shape() -> None:
    """`weights.py` maps the published files onto these names; mmseg's PPM output conv is 3x3."""
    paper = {k: v.shape for k, v in FastSCNN(19).state_dict().items()}
    for variant in ("mmseg", "tramac"):
        shapes = {k: v.shape for k, v in FastSCNN(19, variant=variant).state_dict().items()}
        assert list(shapes) == list(paper)
        differ = [k for k in paper if shapes[k] != paper[k]]
        assert differ == (["global_feature_extractor.ppm.project.conv.weight"] if variant == "mmseg" else [])


def test_paper_is_the_default_variant_and_the_switches_follow_the_table() -> None:
    assert FastSCNN(3).variant == "paper" and VARIANTS["paper"] == Architecture()
    tramac = FastSCNN(3, variant="tramac")
    assert tramac.learning_to_downsample.conv.conv.padding == (0, 0)
    assert hasattr(tramac.classifier.dsconv1.depthwise, "relu")
    assert tramac.feature_fusion.dwconv.conv.dilation == (1, 1) and tramac.feature_fusion.align_corners
    assert FastSCNN(3, variant="mmseg").global_feature_extractor.ppm.project.conv.kernel_size == (3, 3)
    with pytest.raises(ValueError, match="variant must be one of"):
        FastSCNN(3, variant="v2")


@pytest.mark.parametrize("variant", ["mmseg", "tramac"])
def test_variants_take_any_input_size(variant: str) -> None:
    model = FastSCNN(5, variant=variant).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 97, 131)).shape == (1, 5, 97, 131)
