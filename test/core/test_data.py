"""Data: Cityscapes label mapping, the synthetic generator, the paper's augmentation, and bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cityscapesscripts.helpers import labels as cs_labels
from support import REPO

from fast_scnn_core.data import DataConfig, build_dataset
from fast_scnn_core.data.cityscapes import cityscapes_dataset, cityscapes_lookup
from fast_scnn_core.data.dataset import INVALID
from fast_scnn_core.data.folder import folder_dataset, load_classes
from fast_scnn_core.data.synthetic import CITIES, synthetic_frame, write_synthetic_dataset
from fast_scnn_core.data.transforms import train_transform
from fast_scnn_core.errors import DataError
from fast_scnn_core.labels import (
    CITYSCAPES,
    CITYSCAPES_LABELS,
    cityscapes_id_to_train_id,
    cityscapes_train_id_to_id,
    load_class_set,
)


def test_label_table_is_cityscapesscripts_row_for_row() -> None:
    """Our copy of cityscapesScripts' helpers/labels.py, checked against the official package."""
    ours = [(lab.name, lab.id, lab.train_id, lab.category, lab.category_id, lab.color) for lab in CITYSCAPES_LABELS]
    official = [(lab.name, lab.id, lab.trainId, lab.category, lab.categoryId, lab.color) for lab in cs_labels.labels]
    # license plate (labelId -1: never in label files) has trainId -1 there, 255 (ignore) here
    assert ours == [(*row[:2], 255 if row[2] == -1 else row[2], *row[3:]) for row in official]


def test_label_ids_map_to_official_train_ids_and_back() -> None:
    official = {lab.id: lab.trainId for lab in cs_labels.labels if lab.id >= 0}
    assert cityscapes_id_to_train_id()[:34].tolist() == [official[i] for i in range(34)]
    lookup = cityscapes_lookup()
    assert lookup[:34].tolist() == [official[i] for i in range(34)]
    assert (lookup[34:] == INVALID).all()  # ids Cityscapes does not define are refused, not ignored
    back = cityscapes_train_id_to_id()
    assert [int(back[t]) for t in range(19)] == [cs_labels.trainId2label[t].id for t in range(19)]


def test_cityscapes_classes_and_categories() -> None:
    evaluated = sorted((lab for lab in cs_labels.labels if not lab.ignoreInEval), key=lambda lab: lab.trainId)
    assert CITYSCAPES.names == tuple(lab.name for lab in evaluated)
    assert CITYSCAPES.colors == tuple(lab.color for lab in evaluated)
    assert CITYSCAPES.categories == tuple(lab.category for lab in evaluated)
    assert len(set(CITYSCAPES.categories)) == 7  # flat, construction, object, nature, sky, human, vehicle


def test_synth_writes_the_cityscapes_layout_deterministically(tmp_path: Path) -> None:
    a = write_synthetic_dataset(tmp_path / "a", {"train": 2, "val": 1}, 64, 128, seed=3)
    b = write_synthetic_dataset(tmp_path / "b", {"train": 2, "val": 1}, 64, 128, seed=3)
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    name = f"leftImg8bit/train/{CITIES['train']}/{CITIES['train']}_000000_000001_leftImg8bit.png"
    assert (tmp_path / "a" / name).is_file()
    label = tmp_path / "a" / f"gtFine/val/{CITIES['val']}/{CITIES['val']}_000000_000000_gtFine_labelIds.png"
    for path in [*a, label]:
        other = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.read_bytes() == other.read_bytes()
    ids = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    assert ids.shape == (64, 128) and set(np.unique(ids)) <= {1, 7, 8, 11, 17, 21, 23, 24, 26}
    assert {7, 8, 23} <= set(np.unique(ids))  # road, sidewalk and sky are in every scene
    c = write_synthetic_dataset(tmp_path / "c", {"train": 1}, 64, 128, seed=4)
    assert c[0].read_bytes() != a[0].read_bytes()


def test_synthetic_frame_is_the_written_frame_in_train_ids(synth_root: Path) -> None:
    image, labels = synthetic_frame(1, 128, 256, seed=0)
    dataset = cityscapes_dataset(synth_root, ["train"])
    stored_image, stored_labels = dataset.load(1)
    np.testing.assert_array_equal(image, stored_image)
    np.testing.assert_array_equal(labels, stored_labels)
    assert set(np.unique(labels)) <= {0, 1, 2, 5, 8, 10, 11, 13, 255}


def test_dataset_returns_uint8_image_and_int64_labels(synth_root: Path) -> None:
    image, labels = cityscapes_dataset(synth_root, ["val"])[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 128, 256)
    assert labels.dtype == torch.int64 and labels.shape == (128, 256)


def _coded_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A label map of blocks and an image whose colour encodes the label (no black: black = padding)."""
    labels = np.kron(rng.integers(0, 19, (8, 16)), np.ones((16, 16), np.int64)).astype(np.uint8)
    colors = np.array([[40 + 11 * k, 250 - 9 * k, 30 + (k * 53) % 200] for k in range(19)], np.uint8)
    return colors[labels], labels


@pytest.mark.parametrize("seed", range(6))
def test_transforms_keep_image_and_mask_aligned(seed: int) -> None:
    image, labels = _coded_pair(np.random.default_rng(seed))
    colors = np.array([[40 + 11 * k, 250 - 9 * k, 30 + (k * 53) % 200] for k in range(19)], np.float32)
    transform = train_transform((96, 160), brightness=0.0, channel_noise=0)
    transform.set_random_seed(seed)
    out = transform(image=image, mask=labels)
    out_image, out_mask = out["image"], out["mask"]
    assert out_image.shape == (96, 160, 3) and out_mask.shape == (96, 160)
    padded = out_image.sum(-1) == 0
    assert (out_mask[padded] == 255).all()  # padding is ignore in the labels ...
    assert (out_mask[~padded] != 255).all()  # ... and nowhere else
    # Away from block borders (where the bilinear image mixes colours) the image colour is the mask's class.
    m = out_mask.astype(np.int16)
    interior = ~padded.copy()
    interior[1:-1, 1:-1] &= (m[1:-1, 1:-1] == m[:-2, 1:-1]) & (m[1:-1, 1:-1] == m[2:, 1:-1])
    interior[1:-1, 1:-1] &= (m[1:-1, 1:-1] == m[1:-1, :-2]) & (m[1:-1, 1:-1] == m[1:-1, 2:])
    interior[[0, -1]] = False
    interior[:, [0, -1]] = False
    decoded = np.abs(out_image[interior][:, None, :].astype(np.float32) - colors[None]).sum(-1).argmin(-1)
    assert interior.mean() > 0.3
    assert (decoded == out_mask[interior]).mean() > 0.99


def test_flip_moves_image_and_mask_together() -> None:
    image, labels = _coded_pair(np.random.default_rng(0))
    transform = train_transform((128, 256), scale_range=(1.0, 1.0), hflip=1.0, brightness=0.0, channel_noise=0)
    out = transform(image=image, mask=labels)
    np.testing.assert_array_equal(out["image"], image[:, ::-1])
    np.testing.assert_array_equal(out["mask"], labels[:, ::-1])


def test_augmentation_depends_on_epoch_and_index_only(synth_root: Path) -> None:
    dataset = cityscapes_dataset(synth_root, ["train"], transform=train_transform((64, 128)), seed=0)
    first = dataset[3]
    _ = dataset[5]
    assert torch.equal(dataset[3][0], first[0]) and torch.equal(dataset[3][1], first[1])
    dataset.set_epoch(1)
    assert not torch.equal(dataset[3][0], first[0])


def test_folder_dataset_with_class_yaml(tmp_path: Path) -> None:
    classes = load_class_set(REPO / "config/classes_example.yaml")
    assert classes.num_classes == 5 and classes.categories[1] == "ground"
    (tmp_path / "images/train").mkdir(parents=True)
    (tmp_path / "masks/train").mkdir(parents=True)
    mask = np.full((32, 48), 255, np.uint8)
    mask[:16] = 1
    mask[16:, :8] = 4
    cv2.imwrite(str(tmp_path / "images/train/a.jpg"), np.zeros((32, 48, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "masks/train/a.png"), mask)
    image, labels = folder_dataset(tmp_path, ["train"], classes)[0]
    assert image.shape == (3, 32, 48) and torch.equal(labels, torch.from_numpy(mask.astype(np.int64)))


def test_build_dataset_takes_several_splits_in_both_layouts(synth_root: Path, tmp_path: Path) -> None:
    cityscapes = build_dataset(DataConfig(root=str(synth_root)), ["train", "val"])
    assert len(cityscapes) == 40 and cityscapes.classes == CITYSCAPES
    for split, count in (("train", 2), ("extra", 1)):
        for i in range(count):
            for kind, shape in (("images", (8, 8, 3)), ("masks", (8, 8))):
                (tmp_path / kind / split).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(tmp_path / kind / split / f"{i}.png"), np.zeros(shape, np.uint8))
    data = DataConfig(format="folder", root=str(tmp_path), classes=str(REPO / "config/classes_example.yaml"))
    folder = build_dataset(data, ["train", "extra"])
    assert [p.image.relative_to(tmp_path).as_posix() for p in folder.pairs] == [
        "images/train/0.png",
        "images/train/1.png",
        "images/extra/0.png",
    ]
    assert folder.classes == load_classes(data.classes)


# Bad input: one message naming the file and what was expected.


def _cityscapes_copy(synth_root: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    root = tmp_path / "cs"
    write_synthetic_dataset(root, {"val": 2}, 64, 128)
    image = sorted((root / "leftImg8bit/val").rglob("*.png"))[0]
    label = sorted((root / "gtFine/val").rglob("*_labelIds.png"))[0]
    return root, image, label


def test_missing_label_is_named(synth_root: Path, tmp_path: Path) -> None:
    root, image, label = _cityscapes_copy(synth_root, tmp_path)
    label.unlink()
    with pytest.raises(DataError, match=rf"{image.name}: its label .*{label.name} does not exist"):
        cityscapes_dataset(root, ["val"])


def test_size_mismatch_is_named_when_the_dataset_is_built(synth_root: Path, tmp_path: Path) -> None:
    root, image, label = _cityscapes_copy(synth_root, tmp_path)
    cv2.imwrite(str(label), np.zeros((32, 64), np.uint8))
    with pytest.raises(DataError, match=rf"{label.name}: label is 64x32 but its image .*{image.name} is 128x64"):
        cityscapes_dataset(root, ["val"])


def test_palette_label_is_refused_when_the_dataset_is_built(synth_root: Path, tmp_path: Path) -> None:
    from PIL import Image

    root, _, label = _cityscapes_copy(synth_root, tmp_path)
    Image.open(label).convert("P").save(label)
    with pytest.raises(DataError, match=rf"{label.name}: expected a single-channel 8-bit .*a palette image \(mode P\)"):
        cityscapes_dataset(root, ["val"])


def test_header_sizes_follow_exif_rotation_as_decoding_does(tmp_path: Path) -> None:
    """A portrait phone JPEG stored landscape with EXIF orientation 6: cv2 decodes it rotated."""
    from PIL import ExifTags, Image

    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    (tmp_path / "images/train").mkdir(parents=True)
    (tmp_path / "masks/train").mkdir(parents=True)
    Image.fromarray(np.full((20, 40, 3), 9, np.uint8)).save(tmp_path / "images/train/a.jpg", exif=exif)
    cv2.imwrite(str(tmp_path / "masks/train/a.png"), np.zeros((40, 20), np.uint8))  # drawn on the upright photo
    image, labels = folder_dataset(tmp_path, ["train"], load_classes(REPO / "config/classes_example.yaml"))[0]
    assert image.shape == (3, 40, 20) and labels.shape == (40, 20)


def test_label_ids_outside_the_class_set_are_named(synth_root: Path, tmp_path: Path) -> None:
    root, _, label = _cityscapes_copy(synth_root, tmp_path)
    ids = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    ids[0, :3] = [40, 41, 200]
    cv2.imwrite(str(label), ids)
    with pytest.raises(DataError, match=rf"{label.name}: label ids \[40, 41, 200\] are not in the class set"):
        cityscapes_dataset(root, ["val"])[0]
    with pytest.raises(DataError, match=r"\(expected Cityscapes labelIds 0\.\.33 \(the \*_labelIds.png files\)\)"):
        cityscapes_dataset(root, ["val"])[0]
    classes = load_classes(REPO / "config/classes_example.yaml")
    (tmp_path / "f/images/val").mkdir(parents=True)
    (tmp_path / "f/masks/val").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "f/images/val/x.png"), np.ones((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "f/masks/val/x.png"), np.full((8, 8), 5, np.uint8))
    with pytest.raises(DataError, match=r"x.png: label ids \[5\] are not in the class set \(expected 0..4 or 255"):
        folder_dataset(tmp_path / "f", ["val"], classes)[0]


def test_missing_root_says_how_to_make_the_synthetic_set(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no such directory; point data.root= at Cityscapes .*`fast-scnn synth --out "):
        cityscapes_dataset(tmp_path / "nowhere", ["train"])


def test_empty_split_is_named(tmp_path: Path) -> None:
    (tmp_path / "leftImg8bit/val/city").mkdir(parents=True)
    with pytest.raises(DataError, match=r"leftImg8bit/val: empty split"):
        cityscapes_dataset(tmp_path, ["val"])
    with pytest.raises(DataError, match=r"leftImg8bit/test: no such directory"):
        cityscapes_dataset(tmp_path, ["test"])


def test_corrupt_png_is_named(synth_root: Path, tmp_path: Path) -> None:
    root, image, _ = _cityscapes_copy(synth_root, tmp_path)
    image.write_bytes(image.read_bytes()[:100])
    dataset = cityscapes_dataset(root, ["val"])  # the header is intact: only decoding finds the damage
    with pytest.raises(DataError, match=rf"{image.name}: cannot read the image \(missing, corrupt"):
        dataset[0]
    image.write_bytes(b"not a png")
    with pytest.raises(DataError, match=rf"{image.name}: cannot read the image \(missing, corrupt"):
        cityscapes_dataset(root, ["val"])


def test_bad_class_yaml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "classes.yaml"
    path.write_text("classes:\n  - {name: a}\n")
    with pytest.raises(DataError, match=r"classes.yaml: classes\[0\] needs 'name' and 'color'"):
        load_classes(path)
    with pytest.raises(DataError, match=r"needs a class-definition YAML \(data.classes="):
        load_classes("")


def _as_train_extra(root: Path, city: str = "") -> None:
    """Move the train split to train_extra with gtCoarse labels (optionally renaming its city)."""
    for kind, annotation in (("leftImg8bit", "leftImg8bit"), ("gtFine", "gtCoarse")):
        for src in (root / kind / "train").rglob("*.png"):
            name = src.name.replace("gtFine", "gtCoarse").replace(CITIES["train"], city or CITIES["train"])
            dest = root / annotation / "train_extra" / (city or src.parent.name) / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dest)


def test_train_extra_uses_coarse_labels(tmp_path: Path) -> None:
    write_synthetic_dataset(tmp_path, {"train": 1}, 64, 128)
    _as_train_extra(tmp_path)
    dataset = cityscapes_dataset(tmp_path, ["train_extra"], annotation="gtFine")
    assert dataset.pairs[0].label.name.endswith("_gtCoarse_labelIds.png")


def test_known_corrupt_train_extra_frame_is_skipped_with_a_warning(tmp_path: Path, capsys) -> None:
    write_synthetic_dataset(tmp_path, {"train": 75}, 32, 64)  # frames 000000 .. 000074
    _as_train_extra(tmp_path, city="troisdorf")
    dataset = cityscapes_dataset(tmp_path, ["train_extra"])
    names = [pair.image.name for pair in dataset.pairs]
    assert len(names) == 74 and "troisdorf_000000_000073_leftImg8bit.png" not in names
    err = capsys.readouterr().err
    assert "warning: skipped " in err and "troisdorf_000000_000073_leftImg8bit.png: a known corrupt" in err
    assert "have no image" not in err  # its label is not an unmatched file


# Issue 20 #7: a label file whose image was deleted was left out of training without a word.


def test_label_files_without_their_image_are_named_and_left_out(
    synth_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, image, label = _cityscapes_copy(synth_root, tmp_path)
    image.unlink()
    data = DataConfig(root=str(root))
    assert len(build_dataset(data, ["val"])) == 1
    err = capsys.readouterr().err
    assert f"warning: 1 label file(s) have no image: {label}; left out (data.strict=true" in err
    with pytest.raises(DataError, match=rf"1 label file\(s\) have no image: .*{label.name}; restore their images"):
        build_dataset(DataConfig(root=str(root), strict=True), ["val"])


def test_unmatched_masks_are_counted_and_the_first_few_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for kind, names in (("images", ["a"]), ("masks", ["a", "b", "c", "d", "sub/e"])):
        for name in names:
            path = tmp_path / kind / "train" / f"{name}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.zeros((8, 8, 3) if kind == "images" else (8, 8), np.uint8))
    data = DataConfig(format="folder", root=str(tmp_path), classes=str(REPO / "config/classes_example.yaml"))
    assert [pair.image.name for pair in build_dataset(data, ["train"]).pairs] == ["a.png"]
    masks = tmp_path / "masks/train"
    named = ", ".join(str(masks / name) for name in ("b.png", "c.png", "d.png"))
    assert f"warning: 4 mask file(s) have no image: {named} and 1 more; left out" in capsys.readouterr().err
    with pytest.raises(DataError, match="4 mask file"):
        build_dataset(DataConfig(**{**data.__dict__, "strict": True}), ["train"])
