"""`fast-scnn import-weights` reproduces the upstream projects' own outputs, through every path that runs a model.

The fixtures (../shared/weights-fixtures beside the clone, README there) hold, for mmsegmentation and
Tramac/Fast-SCNN-pytorch, a random-weight checkpoint laid out as each project saves its published one,
and the logits the project's own code computes for fixed normalised inputs. Logits are of order 1:
an import must match them to 1e-5, and the labels wherever the upstream's top two logits differ by
more than 1e-4 (a near-tie may flip under another order of float operations).
"""

from __future__ import annotations

import pickle
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from support import run_command

from fast_scnn_core import cli
from fast_scnn_core.cli.import_weights import EPILOG, SOURCES
from fast_scnn_core.infer.graph import check_export, onnx_bytes, torchscript
from fast_scnn_core.infer.options import InferenceConfig
from fast_scnn_core.infer.segmenter import Segmenter
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.model.checkpoint import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_model,
    class_set_of,
    load_checkpoint,
    save_checkpoint,
)
from fast_scnn_core.model.fuse import fold_batchnorm
from fast_scnn_core.model.weights import PUBLISHED, RULES

TOLERANCE = 1e-5  # max |logit difference|
GAP = 1e-4  # labels must agree where the upstream's top two logits differ by more
SIZES = {"tramac": ("64x128",), "mmseg": ("64x128", "97x131")}


@pytest.fixture(scope="session")
def fixtures(weights_fixtures: Path) -> Path:
    return weights_fixtures


@pytest.fixture(scope="session")
def reference(fixtures: Path) -> Callable[[str], dict[str, torch.Tensor]]:
    return lambda source: torch.load(fixtures / f"{source}_reference.pt", weights_only=True)


@pytest.fixture(scope="session")
def imported(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Checkpoints written by `fast-scnn import-weights` (in this process): tramac, mmseg, mmseg --keep-aux."""
    out = tmp_path_factory.mktemp("imported")
    paths = {}
    for name, source, extra in (
        ("tramac", "tramac", []),
        ("mmseg", "mmseg", []),
        ("mmseg_aux", "mmseg", ["--keep-aux"]),
    ):
        paths[name] = out / f"{name}.pt"
        argv = ["import-weights", "--from", source, str(fixtures / f"{source}_random.pth"), "--out", str(paths[name])]
        assert cli.main([*argv, *extra]) == 0
    return paths


def assert_reproduces(name: str, ours: torch.Tensor, upstream: torch.Tensor) -> float:
    """Logits within TOLERANCE, labels equal where the upstream is sure; returns max |diff| (printed with -s)."""
    assert ours.shape == upstream.shape, name
    diff = (ours - upstream).abs().max().item()
    top2 = upstream.topk(2, dim=1).values
    sure = (top2[:, 0] - top2[:, 1]) > GAP
    assert torch.equal(ours.argmax(1)[sure], upstream.argmax(1)[sure]), name
    print(f"{name}: max |diff| {diff:.2e}")
    assert diff <= TOLERANCE, f"{name}: max |diff| {diff:.2e}"
    return diff


@pytest.mark.parametrize("name", ["tramac", "mmseg", "mmseg_aux"])
@torch.no_grad()
def test_imported_checkpoint_reproduces_the_upstream_logits(name: str, imported: dict, reference: Callable) -> None:
    source = name.removesuffix("_aux")
    payload = load_checkpoint(imported[name])
    model = build_model(payload, aux=name.endswith("_aux")).eval()
    assert model.variant == source and class_set_of(payload) == CITYSCAPES
    assert (tuple(payload["mean"]), tuple(payload["std"])) == (IMAGENET_MEAN, IMAGENET_STD)
    upstream = reference(source)
    for size in SIZES[source]:
        x = upstream[f"input_{size}"]
        assert_reproduces(f"{name} logits {size}", model(x), upstream[f"logits_{size}"])
        if name.endswith("_aux"):  # auxiliary_head.0 on the global features, .1 on learning to downsample's
            high = model.learning_to_downsample(x)
            low = model.global_feature_extractor(high)
            assert_reproduces(f"aux_global {size}", model.aux_global(low), upstream[f"aux_global_{size}"])
            assert_reproduces(f"aux_downsample {size}", model.aux_downsample(high), upstream[f"aux_downsample_{size}"])


def test_the_command_records_the_variant_and_the_file_and_warns_on_a_name_hash_mismatch(
    fixtures: Path, imported: dict, tmp_path: Path
) -> None:
    """The one run of the real program; mmseg names carry the first 8 hex digits of the file's sha256."""
    renamed = tmp_path / "fast_scnn_lr0.12_8x4_160k_cityscapes_20210630_164853-0cec9937.pth"
    shutil.copy(fixtures / "mmseg_random.pth", renamed)
    out = tmp_path / "model.pt"
    launcher = Path(sys.executable).with_name("fast-scnn")  # the installed program; else the same via -m
    program = [str(launcher)] if launcher.is_file() else [sys.executable, "-m", "fast_scnn_core"]
    command = [*program, "import-weights", "--from", "mmseg"]
    result = run_command([*command, str(renamed), "--out", str(out)], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        f"fast-scnn import-weights: warning: {renamed.name} names sha256 0cec9937..., the file's is d3eb1ccb...: "
        "a damaged or altered download? (imported anyway)"
    )
    payload = load_checkpoint(out)
    assert payload["format"] == 2 and payload["variant"] == "mmseg"
    assert payload["imported_from"] == {
        "source": "mmseg",
        "project": "OpenMMLab mmsegmentation",
        "file": renamed.name,
        "sha256": "d3eb1ccb87fc3eb59c483c18b6c3e75fd756251a5202ad254a7d3fb6a070c5fb",
        "reported_miou": None,  # the name is the release's, the content is not
    }
    same = load_checkpoint(imported["mmseg"])["model"]
    assert all(torch.equal(tensor, same[key]) for key, tensor in payload["model"].items())


def test_the_release_file_gets_its_reported_miou(fixtures: Path, tmp_path: Path) -> None:
    release = tmp_path / PUBLISHED["tramac"].file
    shutil.copy(fixtures / "tramac_random.pth", release)
    assert cli.main(["import-weights", "--from", "tramac", str(release), "--out", str(tmp_path / "t.pt")]) == 0
    assert load_checkpoint(tmp_path / "t.pt")["imported_from"]["reported_miou"] == 54.84


@pytest.mark.parametrize("backend", ["torch", "auto"])
def test_segmenter_labels_equal_the_imported_models(imported: dict, reference: Callable, backend: str) -> None:
    """The Segmenter takes uint8 images and the fixtures' inputs are unquantised noise, so the reference here is
    the imported eager model (pinned to upstream above) on the image's normalised pixels."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    config = InferenceConfig(device="cpu", backend=backend, optimize=backend == "auto")
    for source in ("tramac", "mmseg"):
        x = reference(source)[f"input_{SIZES[source][-1]}"]
        pixels = ((x * std + mean) * 255).round().clamp(0, 255)
        with torch.no_grad():
            logits = build_model(load_checkpoint(imported[source])).eval()((pixels / 255 - mean) / std)
        labels = Segmenter.from_checkpoint(imported[source], config)(pixels[0].permute(1, 2, 0).byte().numpy()).labels
        top2 = logits.topk(2, dim=1).values
        sure = ((top2[:, 0] - top2[:, 1]) > GAP)[0].numpy()
        np.testing.assert_array_equal(labels[sure], logits.argmax(1)[0].numpy()[sure])


@pytest.mark.parametrize("source", ["mmseg", "tramac"])
def test_onnx_export_reproduces_the_upstream_logits(source: str, imported: dict, reference: Callable) -> None:
    import onnxruntime as ort

    model = build_model(load_checkpoint(imported[source])).eval()
    data = onnx_bytes(model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> list[np.ndarray]:
        return session.run(None, {session.get_inputs()[0].name: x.numpy()})

    check_export(model, run)
    upstream = reference(source)
    for size in SIZES[source]:
        [logits] = run(upstream[f"input_{size}"])
        assert_reproduces(f"{source} onnx logits {size}", torch.from_numpy(logits), upstream[f"logits_{size}"])


@pytest.mark.parametrize("source", ["mmseg", "tramac"])
@torch.no_grad()
def test_batchnorm_folding_and_torchscript_keep_the_upstream_logits(
    source: str, imported: dict, reference: Callable
) -> None:
    model = build_model(load_checkpoint(imported[source])).eval()
    folded, traced = fold_batchnorm(model), torchscript(model)
    upstream = reference(source)
    for size in SIZES[source]:
        x, logits = upstream[f"input_{size}"], upstream[f"logits_{size}"]
        assert_reproduces(f"{source} folded logits {size}", folded(x), logits)
        assert_reproduces(f"{source} torchscript logits {size}", traced(x), logits)


def test_the_variant_survives_save_and_load(imported: dict, tmp_path: Path) -> None:
    payload = load_checkpoint(imported["mmseg_aux"])
    model = build_model(payload, aux=True)
    save_checkpoint(tmp_path / "again.pt", model, class_set_of(payload), iteration=5)  # as a training run would
    again = load_checkpoint(tmp_path / "again.pt")
    assert again["variant"] == "mmseg" and build_model(again).variant == "mmseg"
    assert again["model"]["global_feature_extractor.ppm.project.conv.weight"].shape[-2:] == (3, 3)


# ---- refusals: one line each, exit 2, nothing written ------------------------------------------------


def tramac_state(fixtures: Path) -> dict[str, torch.Tensor]:
    return torch.load(fixtures / "tramac_random.pth", weights_only=True)


def legacy_file(change: Callable[[dict], object]) -> Callable[[Path, Path], Path]:
    """Tramac's file altered by `change`, saved in the legacy format as the original."""

    def make(fixtures: Path, path: Path) -> Path:
        state = tramac_state(fixtures)
        change(state)
        torch.save(state, path, _use_new_zipfile_serialization=False)
        return path

    return make


def truncated(name: str) -> Callable[[Path, Path], Path]:
    def make(fixtures: Path, path: Path) -> Path:
        path.write_bytes((fixtures / name).read_bytes()[:100_000])
        return path

    return make


def copied(name: str) -> Callable[[Path, Path], Path]:
    return lambda fixtures, path: Path(shutil.copy(fixtures / name, path))


class Code:
    """Unpickling this would create the file `ran` names: the refusal must come first."""

    def __init__(self, ran: Path) -> None:
        self.ran = ran

    def __reduce__(self) -> tuple:
        return (open, (str(self.ran), "w"))


# (id, --from, how to make IN, what the one line must say)
REFUSALS = [
    ("truncated-legacy", "tramac", truncated("tramac_random.pth"), "is truncated or damaged"),
    ("truncated-zip", "mmseg", truncated("mmseg_random.pth"), "is truncated or damaged"),
    (
        "missing-tensor",
        "tramac",
        legacy_file(lambda sd: sd.pop("feature_fusion.dwconv.conv.0.weight")),
        "nothing maps to target key 'feature_fusion.dwconv.conv.weight'",
    ),
    (
        "extra-tensor",
        "tramac",
        legacy_file(lambda sd: sd.__setitem__("classifier.extra.weight", torch.zeros(1))),
        "no mapping rule for source key 'classifier.extra.weight'",
    ),
    (
        "misshaped-tensor",
        "tramac",
        legacy_file(lambda sd: sd.__setitem__("feature_fusion.dwconv.conv.1.weight", torch.ones(127))),
        "'feature_fusion.dwconv.conv.1.weight' has shape (127,), 'feature_fusion.dwconv.bn.weight' needs (128,)",
    ),
    (
        "18-classes",
        "tramac",
        legacy_file(
            lambda sd: sd.update({k: sd[k][:18] for k in ("classifier.conv.1.weight", "classifier.conv.1.bias")})
        ),
        "'classifier.conv.1.weight' has shape (18, 128, 1, 1), 'classifier.conv.weight' needs (19, 128, 1, 1)",
    ),
    ("wrong-source", "tramac", copied("mmseg_random.pth"), "is a mmseg key; read the file as mmseg (--from mmseg)"),
    ("wrong-source-tramac", "mmseg", copied("tramac_random.pth"), "is a tramac key; read the file as tramac"),
]


@pytest.mark.parametrize(("source", "make", "expected"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_bad_inputs_are_refused_in_one_line(
    source: str, make: Callable, expected: str, fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = make(fixtures, tmp_path / "in.pth")
    assert_refused(["--from", source, str(path)], expected, tmp_path, capsys)


def test_a_pickle_with_code_is_refused_without_running_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ran = tmp_path / "code-ran"
    for legacy, name in ((True, "legacy.pth"), (False, "zip.pth")):
        torch.save({"state_dict": {"x": Code(ran)}}, tmp_path / name, _use_new_zipfile_serialization=not legacy)
        assert_refused(["--from", "mmseg", str(tmp_path / name)], "refers to Python code (io.open)", tmp_path, capsys)
    (tmp_path / "plain.pth").write_bytes(pickle.dumps(Code(ran), protocol=2))  # no torch framing at all
    assert_refused(["--from", "tramac", str(tmp_path / "plain.pth")], "refers to Python code", tmp_path, capsys)
    assert not ran.exists()


def test_out_is_not_overwritten_without_overwrite(
    fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out.pt"
    out.write_bytes(b"mine")
    argv = ["import-weights", "--from", "tramac", str(fixtures / "tramac_random.pth"), "--out", str(out)]
    assert cli.main(argv) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"fast-scnn import-weights: error: {out} exists; pass --overwrite to replace it"
    )
    assert out.read_bytes() == b"mine"
    assert cli.main([*argv, "--overwrite"]) == 0 and load_checkpoint(out)["variant"] == "tramac"
    assert cli.main([*argv[:2], "tramac", "--keep-aux", *argv[3:], "--overwrite"]) == 2
    assert "no auxiliary heads to keep" in capsys.readouterr().err


def assert_refused(argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out.pt"
    assert cli.main(["import-weights", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fast-scnn import-weights: error: ") and expected in err, err
    assert "\n" not in err and "Traceback" not in err and "weights_only=False" not in err
    assert not out.exists() and not list(tmp_path.glob(".out.pt*"))


def test_help_names_the_sources_and_their_published_files() -> None:
    assert SOURCES == tuple(RULES) == tuple(PUBLISHED)
    for published in PUBLISHED.values():
        assert published.file in EPILOG.replace("\n          ", "") and str(published.miou) in EPILOG
