"""Class sets: per-class mask topic names (valid ROS tokens, unique) and choosing mask classes by name."""

from __future__ import annotations

import re

import pytest

from fast_scnn_core.labels import CITYSCAPES, ClassSet, mask_class_ids, mask_topic_names

# A topic name token: letters, digits and underscores, not starting with a digit (ROS 2 name rules).
TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def classes(*names: str) -> ClassSet:
    return ClassSet(names, ((0, 0, 0),) * len(names))


def test_cityscapes_names_become_lowercase_tokens() -> None:
    tokens = mask_topic_names(CITYSCAPES)
    assert tokens[:3] == ["road", "sidewalk", "building"]
    assert tokens[6:8] == ["traffic_light", "traffic_sign"]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("Traffic Light", "sky"), ["traffic_light", "sky"]),
        (("2wheeler", "3 d"), ["class_2wheeler", "class_3_d"]),  # a token may not start with a digit
        (("!!!", "road"), ["class_0", "road"]),  # nothing left of the name: its id
        (("a b", "a-b", "A_B"), ["a_b", "a_b_1", "a_b_2"]),  # collisions get the class id
        (("x", "x_2", "X"), ["x", "x_2", "x_2_2"]),  # a suffixed token that is taken is suffixed again
        (("x", "X", "x_1"), ["x", "x_1", "x_1_2"]),
    ],
)
def test_mask_topic_names_are_valid_unique_tokens(names: tuple[str, ...], expected: list[str]) -> None:
    tokens = mask_topic_names(classes(*names))
    assert tokens == expected
    assert len(set(tokens)) == len(tokens)
    assert all(TOKEN.fullmatch(token) for token in tokens)


def test_mask_classes_are_chosen_by_class_name_or_topic_name_without_repeats() -> None:
    ids = mask_class_ids(CITYSCAPES, ["traffic light", "traffic_light", "road", "sky"])
    assert ids == (6, 0, 10)
    with pytest.raises(ValueError, match=r"unknown mask class 'tree'.*'road'"):
        mask_class_ids(CITYSCAPES, ["tree"])
