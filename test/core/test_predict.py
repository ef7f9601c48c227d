"""`fast-scnn predict`: label/colour/overlay PNGs for images, folders and videos; never overwrites unless asked."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from models import TINY

from fast_scnn_core import cli
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, FastSCNN(3), TINY)
    return path


def write_image(path: Path, seed: int, size: tuple[int, int] = (37, 53)) -> np.ndarray:
    rgb = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return rgb


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_image_gives_labels_color_and_overlay(checkpoint: Path, tmp_path: Path) -> None:
    rgb = write_image(tmp_path / "in" / "street.png", 0)
    out = tmp_path / "out"
    assert (
        cli.main(["predict", str(tmp_path / "in" / "street.png"), "--checkpoint", str(checkpoint), "--out", str(out)])
        == 0
    )
    labels = read(out / "street_labels.png")
    expected = Segmenter.from_checkpoint(checkpoint, InferenceConfig(device="cpu"))(rgb).labels
    assert labels.dtype == np.uint8 and labels.shape == rgb.shape[:2]
    assert (labels == expected).mean() >= 0.995
    palette = TINY.palette()
    np.testing.assert_array_equal(read(out / "street_color.png"), palette[labels])
    blended = read(out / "street_overlay.png").astype(int)
    assert np.abs(blended - (rgb.astype(int) + palette[labels]) / 2).max() <= 1
    assert sorted(p.name for p in out.iterdir()) == ["street_color.png", "street_labels.png", "street_overlay.png"]


def test_folder_keeps_layout_skips_unreadable_files_and_refuses_to_overwrite(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "in"
    write_image(source / "a.png", 1)
    write_image(source / "sub" / "b.jpg", 2, (20, 30))
    (source / "broken.png").write_bytes(b"not a png")
    (source / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    argv = ["predict", str(source), "--checkpoint", str(checkpoint), "--out", str(out), "--outputs", "labels"]
    assert cli.main(argv) == 1, "an unreadable image is reported in the exit status"
    assert "broken.png" in capsys.readouterr().err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a_labels.png", "sub/b_labels.png"]
    assert read(out / "sub" / "b_labels.png").shape == (20, 30)

    (source / "broken.png").unlink()
    marker = out / "a_labels.png"
    marker.write_bytes(b"keep me")
    assert cli.main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert marker.read_bytes() == b"keep me"
    assert cli.main([*argv, "--overwrite"]) == 0
    assert read(marker).shape == (37, 53)
    assert not list(out.rglob("*.tmp*")), "atomic writes leave no temporary files"


def test_a_refused_image_is_skipped_and_counted_and_a_bomb_is_not_decoded(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = tmp_path / "in"
    write_image(source / "a.png", 1)
    assert cv2.imwrite(str(source / "thin.png"), np.zeros((1, 20000, 3), np.uint8)), "a side over 16384"
    assert cv2.imwrite(str(source / "bomb.png"), np.zeros((5000, 5000), np.uint8))  # 25 Mpx in 25 kB
    write_image(source / "z.png", 2)
    out = tmp_path / "out"
    argv = ["predict", str(source), "--checkpoint", str(checkpoint), "--out", str(out), "--outputs", "labels"]
    assert cli.main(argv) == 1, "refused images are reported in the exit status"
    err = capsys.readouterr().err
    assert "thin.png: image of 20000x1 pixels has a side over 16384" in err
    assert "bomb.png: image of 5000x5000 pixels exceeds max_pixels=16777216" in err
    assert "2 image(s) skipped" in err
    assert sorted(p.name for p in out.rglob("*.png")) == ["a_labels.png", "z_labels.png"], "the folder went on"


def test_video_frames_are_numbered(checkpoint: Path, tmp_path: Path) -> None:
    video = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (48, 32))
    assert writer.isOpened()
    for i in range(3):
        writer.write(np.full((32, 48, 3), 60 * i, np.uint8))
    writer.release()
    out = tmp_path / "out"
    argv = ["predict", str(video), "--checkpoint", str(checkpoint), "--out", str(out), "--outputs", "labels,color"]
    assert cli.main(argv) == 0
    names = sorted(p.name for p in (out / "drive").iterdir())
    assert names == [f"{i:06d}_{kind}.png" for i in range(3) for kind in ("color", "labels")]
    assert read(out / "drive" / "000002_labels.png").shape == (32, 48)
    assert cli.main(argv) == 2, "a second run refuses to overwrite the frames"


@pytest.mark.parametrize(("extra", "message"), [(["--outputs", "depth"], "--outputs"), (["--alpha", "2"], "--alpha")])
def test_bad_options_are_refused(checkpoint: Path, tmp_path: Path, capsys, extra: list[str], message: str) -> None:
    write_image(tmp_path / "x.png", 3)
    argv = ["predict", str(tmp_path / "x.png"), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"), *extra]
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_input_is_refused(checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["predict", str(tmp_path / "none"), "--checkpoint", str(checkpoint), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
