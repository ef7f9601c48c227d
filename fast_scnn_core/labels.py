"""Class sets: Cityscapes' 19 training classes (trainIds), their categories and palette, and user class YAMLs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from fast_scnn_core.config import read_yaml

IGNORE_INDEX = 255


@dataclass(frozen=True)
class CityscapesLabel:
    """One row of cityscapesScripts' `labels.py` table."""

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    color: tuple[int, int, int]


# cityscapesScripts helpers/labels.py, verbatim (name, id, trainId, category, catId, color).
CITYSCAPES_LABELS: tuple[CityscapesLabel, ...] = tuple(
    CityscapesLabel(*row)
    for row in (
        ("unlabeled", 0, 255, "void", 0, (0, 0, 0)),
        ("ego vehicle", 1, 255, "void", 0, (0, 0, 0)),
        ("rectification border", 2, 255, "void", 0, (0, 0, 0)),
        ("out of roi", 3, 255, "void", 0, (0, 0, 0)),
        ("static", 4, 255, "void", 0, (0, 0, 0)),
        ("dynamic", 5, 255, "void", 0, (111, 74, 0)),
        ("ground", 6, 255, "void", 0, (81, 0, 81)),
        ("road", 7, 0, "flat", 1, (128, 64, 128)),
        ("sidewalk", 8, 1, "flat", 1, (244, 35, 232)),
        ("parking", 9, 255, "flat", 1, (250, 170, 160)),
        ("rail track", 10, 255, "flat", 1, (230, 150, 140)),
        ("building", 11, 2, "construction", 2, (70, 70, 70)),
        ("wall", 12, 3, "construction", 2, (102, 102, 156)),
        ("fence", 13, 4, "construction", 2, (190, 153, 153)),
        ("guard rail", 14, 255, "construction", 2, (180, 165, 180)),
        ("bridge", 15, 255, "construction", 2, (150, 100, 100)),
        ("tunnel", 16, 255, "construction", 2, (150, 120, 90)),
        ("pole", 17, 5, "object", 3, (153, 153, 153)),
        ("polegroup", 18, 255, "object", 3, (153, 153, 153)),
        ("traffic light", 19, 6, "object", 3, (250, 170, 30)),
        ("traffic sign", 20, 7, "object", 3, (220, 220, 0)),
        ("vegetation", 21, 8, "nature", 4, (107, 142, 35)),
        ("terrain", 22, 9, "nature", 4, (152, 251, 152)),
        ("sky", 23, 10, "sky", 5, (70, 130, 180)),
        ("person", 24, 11, "human", 6, (220, 20, 60)),
        ("rider", 25, 12, "human", 6, (255, 0, 0)),
        ("car", 26, 13, "vehicle", 7, (0, 0, 142)),
        ("truck", 27, 14, "vehicle", 7, (0, 0, 70)),
        ("bus", 28, 15, "vehicle", 7, (0, 60, 100)),
        ("caravan", 29, 255, "vehicle", 7, (0, 0, 90)),
        ("trailer", 30, 255, "vehicle", 7, (0, 0, 110)),
        ("train", 31, 16, "vehicle", 7, (0, 80, 100)),
        ("motorcycle", 32, 17, "vehicle", 7, (0, 0, 230)),
        ("bicycle", 33, 18, "vehicle", 7, (119, 11, 32)),
        ("license plate", -1, 255, "vehicle", 7, (0, 0, 142)),
    )
)


@dataclass(frozen=True)
class ClassSet:
    """The classes a model predicts: index = class id; optional categories for category mIoU."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    categories: tuple[str, ...] = ()  # per class, empty when the set has none

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("a class set needs at least one class")
        if len(self.names) >= IGNORE_INDEX:
            raise ValueError(f"at most {IGNORE_INDEX - 1} classes (id {IGNORE_INDEX} means ignore)")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"class names must be unique, got {list(self.names)}")
        if len(self.colors) != len(self.names):
            raise ValueError(f"{len(self.names)} class names but {len(self.colors)} colours")
        if self.categories and len(self.categories) != len(self.names):
            raise ValueError(f"{len(self.names)} class names but {len(self.categories)} categories")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def palette(self) -> np.ndarray:
        """(256, 3) uint8 lookup table: class id -> RGB, ignore and unknown ids -> black."""
        table = np.zeros((256, 3), dtype=np.uint8)
        table[: self.num_classes] = np.asarray(self.colors, dtype=np.uint8)
        return table

    def index(self, name: str) -> int:
        """Class id of `name`, with an error listing the valid names."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown class {name!r}; this class set has {list(self.names)}") from None

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "colors": [list(c) for c in self.colors],
            "categories": list(self.categories),
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClassSet:
        return cls(
            names=tuple(str(n) for n in data["names"]),
            colors=tuple(tuple(int(v) for v in c) for c in data["colors"]),
            categories=tuple(str(c) for c in data.get("categories", ())),
        )


def _cityscapes_class_set() -> ClassSet:
    train = sorted((lab for lab in CITYSCAPES_LABELS if lab.train_id != IGNORE_INDEX), key=lambda lab: lab.train_id)
    return ClassSet(
        names=tuple(lab.name for lab in train),
        colors=tuple(lab.color for lab in train),
        categories=tuple(lab.category for lab in train),
    )


CITYSCAPES = _cityscapes_class_set()


def cityscapes_id_to_train_id() -> np.ndarray:
    """(256,) uint8 lookup table: Cityscapes labelId -> trainId (255 for ignored and unknown ids)."""
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for lab in CITYSCAPES_LABELS:
        if lab.id >= 0:
            table[lab.id] = lab.train_id
    return table


def cityscapes_train_id_to_id() -> np.ndarray:
    """(256,) uint8 lookup table: trainId -> Cityscapes labelId, what the benchmark server scores (255 -> 0)."""
    table = np.zeros(256, dtype=np.uint8)
    for lab in CITYSCAPES_LABELS:
        if lab.train_id != IGNORE_INDEX:
            table[lab.train_id] = lab.id
    return table


def load_class_set(path: str | Path) -> ClassSet:
    """Load a class definition YAML: `classes: [{name: road, color: [128, 64, 128], category: flat}, ...]`.

    Class ids are the list order. `category` is optional but must be given for all or none.
    """
    path = Path(path)
    data = read_yaml(path, "class definition", ValueError)
    if not isinstance(data, dict) or not isinstance(data.get("classes"), list):
        raise ValueError(f"{path}: expected a mapping with a 'classes' list of {{name, color[, category]}}")
    names, colors, categories = [], [], []
    for i, entry in enumerate(data["classes"]):
        if not isinstance(entry, dict) or "name" not in entry or "color" not in entry:
            raise ValueError(f"{path}: classes[{i}] needs 'name' and 'color', got {entry!r}")
        color = entry["color"]
        if not (
            isinstance(color, list) and len(color) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in color)
        ):
            raise ValueError(f"{path}: classes[{i}].color must be [r, g, b] with 0..255 integers, got {color!r}")
        names.append(str(entry["name"]))
        colors.append(tuple(color))
        if "category" in entry:
            categories.append(str(entry["category"]))
    if categories and len(categories) != len(names):
        raise ValueError(f"{path}: give 'category' for every class or for none")
    try:
        return ClassSet(tuple(names), tuple(colors), tuple(categories))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def class_set_yaml(classes: ClassSet) -> str:
    """The class-definition YAML `load_class_set` reads back (what `fast-scnn bag-to-dataset` writes)."""
    entries = []
    for i, (name, color) in enumerate(zip(classes.names, classes.colors, strict=True)):
        entry = {"name": name, "color": list(color)}
        if classes.categories:
            entry["category"] = classes.categories[i]
        entries.append(entry)
    return yaml.safe_dump({"classes": entries}, sort_keys=False, default_flow_style=None)


def mask_topic_names(classes: ClassSet) -> list[str]:
    """Per class id a valid ROS topic token: 'traffic light' -> 'traffic_light' (unique, not starting with a digit)."""
    tokens: list[str] = []
    for class_id, name in enumerate(classes.names):
        token = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").lower()
        if not token or token[0].isdigit():
            token = f"class_{token}" if token else f"class_{class_id}"
        while token in tokens:  # a suffixed token can itself be taken ("x", "x_1", "X"): suffix again
            token = f"{token}_{class_id}"
        tokens.append(token)
    return tokens


def mask_class_ids(classes: ClassSet, names: list[str] | tuple[str, ...]) -> tuple[int, ...]:
    """Class ids of the classes named (by class name or mask topic name) for per-class masks, without repeats."""
    tokens = mask_topic_names(classes)
    ids: list[int] = []
    for name in names:
        if name in classes.names:
            class_id = classes.index(name)
        elif name in tokens:
            class_id = tokens.index(name)
        else:
            raise ValueError(f"unknown mask class {name!r}; this checkpoint's classes are {list(classes.names)}")
        if class_id not in ids:
            ids.append(class_id)
    return tuple(ids)
