"""`fast-scnn label-bag` writes the topics the live node publishes, under the same names."""

from __future__ import annotations

from fast_scnn_core.bags.label import output_topics
from fast_scnn_core.labels import CITYSCAPES, mask_topic_names
from fast_scnn_ros.names import COLOR_TOPIC, LABELS_TOPIC, MASKS_TOPIC, OVERLAY_TOPIC


def test_bag_outputs_are_named_like_the_nodes_topics() -> None:
    tokens = mask_topic_names(CITYSCAPES)
    names = output_topics("/image_raw", [tokens[6]], color=True, overlay=True)  # a camera in the root namespace
    expected = [LABELS_TOPIC, f"{MASKS_TOPIC}/traffic_light", COLOR_TOPIC, OVERLAY_TOPIC]
    assert names == [f"/{topic}" for topic in expected]
    assert output_topics("/front/image_raw/compressed", [], False, False) == [f"/front/{LABELS_TOPIC}"]
