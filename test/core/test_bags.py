"""Recorded drives: `fast-scnn label-bag` and `fast-scnn bag-to-dataset` on real rosbag2 files (mcap, sqlite3).

Bags are written with rosbags from synthetic frames (test/core/recordings.py) and read back with
rosbags' Reader, the same reader a ROS-less consumer would use.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from models import TINY
from recordings import (
    START_NS,
    TYPESTORE,
    compressed_bytes,
    header,
    image_bytes,
    scene,
    write_camera_bag,
    write_drive,
)
from rosbags.rosbag2 import Reader
from support import REPO, run_command, tree_env

from fast_scnn_core import cli
from fast_scnn_core.bags.io import (
    COMPRESSED_IMAGE,
    IMAGE,
    NODE_OUTPUT_QOS,
    create_writer,
    segmentation_namespace,
)
from fast_scnn_core.bags.to_dataset import FrameFilter, TimeSplit, frame_name
from fast_scnn_core.cli import label_bag as label_bag_command
from fast_scnn_core.image_msgs import compressed_to_rgb8, image_to_numpy, image_to_rgb8
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.infer.visualize import class_mask, colorize, overlay
from fast_scnn_core.labels import CITYSCAPES, load_class_set
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN

CAMERAS = {"/front/image_raw": "/front", "/rear/image_raw": "/rear", "/side/image_raw/compressed": "/side"}


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    return tiny_checkpoint


@pytest.fixture(scope="module")
def segmenter(checkpoint: Path) -> Segmenter:
    """The engine label-bag builds with its defaults, to compute the expected labels."""
    return Segmenter.from_checkpoint(checkpoint, InferenceConfig(checkpoint=str(checkpoint)))


def read_bag(path: Path) -> tuple[dict, list[tuple[str, int, bytes]]]:
    """({topic: connection}, [(topic, recording time, bytes)] in recording order) of a bag."""
    with Reader(path) as reader:
        connections = {c.topic: c for c in reader.connections}
        messages = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
    return connections, messages


def custom_data(path: Path) -> dict:
    return yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"] or {}


def decoded(msgtype: str, raw: bytes) -> tuple[object, np.ndarray]:
    msg = TYPESTORE.deserialize_cdr(raw, msgtype)
    return msg, image_to_rgb8(msg) if msgtype == IMAGE else compressed_to_rgb8(msg)


def label_bag(*args: str | Path) -> int:
    return cli.main(["label-bag", *(str(a) for a in args)])


# Tests about the bag, not the labels' values, use the torch backend: no ONNX export per run.
TORCH = ("--backend", "torch")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_label_bag_labels_every_frame_and_copies_every_message(
    tmp_path: Path, checkpoint: Path, segmenter: Segmenter, storage: str
) -> None:
    drive, out = tmp_path / "drive", tmp_path / "labelled"
    written = write_drive(drive, storage, frames=9)  # every encoding of the rear camera once
    topics = [a for camera in CAMERAS for a in ("--topic", camera)]
    options = ["--masks", "a,c", "--color", "--overlay", "--batch", "4"]
    assert label_bag(drive, out, "--checkpoint", checkpoint, *topics, *options) == 0
    assert not (tmp_path / "labelled.partial").exists()

    connections, messages = read_bag(out)
    # every original message: same topic, recording time and bytes, in the same order
    assert [m for m in messages if "/segmentation/" not in m[0]] == [(r.topic, r.timestamp, r.data) for r in written]
    assert [t for _, t, _ in messages] == sorted(t for _, t, _ in messages), "OUT is in recording order"
    with Reader(drive) as reader:
        for source in reader.connections:
            copy = connections[source.topic]
            assert (copy.msgtype, copy.msgdef, copy.digest) == (source.msgtype, source.msgdef, source.digest)
            assert copy.ext.offered_qos_profiles == source.ext.offered_qos_profiles  # replayed with its QoS

    outputs: dict[str, dict[int, object]] = defaultdict(dict)
    for topic, t, raw in messages:
        if "/segmentation/" in topic:
            assert connections[topic].msgtype == IMAGE
            assert connections[topic].ext.offered_qos_profiles == [NODE_OUTPUT_QOS]
            assert t not in outputs[topic], f"two {topic} messages at {t}"
            outputs[topic][t] = TYPESTORE.deserialize_cdr(raw, IMAGE)
    palette = TINY.palette()
    for record in written:
        if record.topic not in CAMERAS:
            continue
        source, rgb = decoded(connections[record.topic].msgtype, record.data)
        ns = f"{CAMERAS[record.topic]}/segmentation"
        labels_msg = outputs[f"{ns}/labels"].pop(record.timestamp)  # exactly one, at the image's recording time
        assert labels_msg.header.stamp == source.header.stamp
        assert labels_msg.header.frame_id == source.header.frame_id
        assert labels_msg.encoding == "mono8"
        labels = image_to_numpy(labels_msg)
        np.testing.assert_array_equal(labels, segmenter(np.ascontiguousarray(rgb)).labels)
        for name, class_id in (("a", 0), ("c", 2)):
            mask = outputs[f"{ns}/masks/{name}"].pop(record.timestamp)
            np.testing.assert_array_equal(image_to_numpy(mask), class_mask(labels, class_id))
        color = outputs[f"{ns}/color"].pop(record.timestamp)
        np.testing.assert_array_equal(image_to_numpy(color), colorize(labels, palette))
        blended = outputs[f"{ns}/overlay"].pop(record.timestamp)
        assert (blended.encoding, blended.header.frame_id) == ("rgb8", source.header.frame_id)
        np.testing.assert_array_equal(image_to_numpy(blended), overlay(rgb, labels, palette, 0.5))
    assert not any(outputs.values()), "outputs without a source frame"
    assert custom_data(out)["fast_scnn.checkpoint"] == str(checkpoint)


def test_labelled_mcap_reads_with_the_reference_mcap_reader(tmp_path: Path, checkpoint: Path) -> None:
    """Foxglove's MCAP reader (the library ROS 2's mcap storage is built on) and its ROS 2 decoder read OUT."""
    from mcap.reader import make_reader
    from mcap.stream_reader import StreamReader
    from mcap_ros2.decoder import DecoderFactory

    drive, out = tmp_path / "drive", tmp_path / "labelled"
    write_drive(drive, "mcap", frames=3)
    assert label_bag(drive, out, "--checkpoint", checkpoint, "--topic", "/front/image_raw", "--color", *TORCH) == 0
    _, messages = read_bag(out)
    with open(out / "labelled.mcap", "rb") as f:
        records = list(StreamReader(f, validate_crcs=True).records)  # every record well-formed, up to the footer
        assert type(records[-1]).__name__ == "Footer"
        f.seek(0)
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_summary().statistics.message_count == len(messages)
        decoded_labels = [
            (message.log_time, msg)
            for _, _, message, msg in reader.iter_decoded_messages(topics=["/front/segmentation/labels"])
        ]
    expected = [(t, TYPESTORE.deserialize_cdr(raw, IMAGE)) for topic, t, raw in messages if topic.endswith("labels")]
    assert len(decoded_labels) == len(expected) == 3
    for (t, theirs), (t_ours, ours) in zip(decoded_labels, expected, strict=True):
        assert t == t_ours and (theirs.encoding, theirs.height, theirs.width) == ("mono8", 48, 64)
        assert (theirs.header.stamp.sec, theirs.header.frame_id) == (ours.header.stamp.sec, "front")
        assert bytes(theirs.data) == ours.data.tobytes()


def test_bad_messages_are_counted_skipped_and_copied(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drive, out = tmp_path / "drive", tmp_path / "labelled"
    rng = np.random.default_rng(0)
    good = image_bytes(scene(rng, 32, 48), "rgb8", header(START_NS, "cam"))
    truncated = bytearray(image_bytes(scene(rng, 32, 48), "rgb8", header(START_NS, "cam")))[:-100]
    bad = [
        ("/cam/image_raw", good),
        ("/cam/image_raw", bytes(truncated)),  # CDR cut short: does not deserialize
        ("/cam/image_raw", image_bytes(scene(rng, 32, 48)[:, :, 0], "8UC1", header(START_NS, "cam"))),  # not colour
        ("/cam/image_raw", image_bytes(scene(rng, 32, 48), "rgb8", header(START_NS, "cam"))[:-96] + bytes(96)),
        (
            "/cam2/image_raw/compressed",
            compressed_bytes(np.frombuffer(b"\xff\xd8not a jpeg", np.uint8), "jpeg", header(0, "c")),
        ),
        ("/cam/image_raw", good),
    ]
    writer = create_writer(drive, "mcap")
    conns = {
        "/cam/image_raw": writer.add_connection("/cam/image_raw", IMAGE, typestore=TYPESTORE),
        "/cam2/image_raw/compressed": writer.add_connection(
            "/cam2/image_raw/compressed", COMPRESSED_IMAGE, typestore=TYPESTORE
        ),
    }
    for i, (topic, data) in enumerate(bad):
        writer.write(conns[topic], START_NS + i, data)
    writer.close()

    topics = ("--topic", "/cam/image_raw", "--topic", "/cam2/image_raw/compressed")
    assert label_bag(drive, out, "--checkpoint", checkpoint, *topics) == 1  # complete, but not every frame
    report = capsys.readouterr().out
    assert "skipped 3 bad message(s)" in report
    assert "not a valid sensor_msgs/msg/Image" in report
    assert "cannot be shown as RGB" in report
    assert "JPEG CompressedImage (12 bytes) has no readable header" in report
    _, messages = read_bag(out)
    assert [(topic, data) for topic, _, data in messages if "/segmentation/" not in topic] == bad
    labelled = [t - START_NS for topic, t, _ in messages if topic == "/cam/segmentation/labels"]
    assert labelled == [0, 3, 5]  # the two good frames and the one whose pixels are zeroed but well-formed


def test_unknown_topic_lists_the_image_topics(tmp_path: Path, checkpoint: Path, capsys) -> None:
    write_drive(tmp_path / "drive", "mcap", frames=2)
    assert label_bag(tmp_path / "drive", tmp_path / "out", "--checkpoint", checkpoint, "--topic", "/camera") == 2
    error = capsys.readouterr().err
    assert "no topic /camera; its image topics are: /front/image_raw (Image, 2 messages)" in error
    assert "/side/image_raw/compressed (CompressedImage, 2 messages)" in error
    args = ("--checkpoint", checkpoint, "--topic", "engine/temperature")
    assert label_bag(tmp_path / "drive", tmp_path / "out", *args) == 2
    assert "topic /engine/temperature holds sensor_msgs/msg/Temperature, not images" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_unknown_mask_class_is_refused_with_the_checkpoints_classes(tmp_path: Path, checkpoint: Path, capsys) -> None:
    write_camera_bag(tmp_path / "drive", "mcap", frames=1)
    args = ("--checkpoint", checkpoint, "--topic", "/camera/image_raw", "--masks", "a,road", *TORCH)
    assert label_bag(tmp_path / "drive", tmp_path / "out", *args) == 2
    assert (
        "--masks: unknown mask class 'road'; this checkpoint's classes are ['a', 'b', 'c']" in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_output_is_never_overwritten_unless_asked(tmp_path: Path, checkpoint: Path, capsys) -> None:
    drive, out = tmp_path / "drive", tmp_path / "out"
    write_camera_bag(drive, "sqlite3", frames=2)
    args = ("--checkpoint", checkpoint, "--topic", "/camera/image_raw", *TORCH)
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert label_bag(drive, out, *args) == 2
    assert "out exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert label_bag(drive, out, *args, "--overwrite") == 0
    assert not (out / "keep.txt").exists() and (out / "metadata.yaml").exists()
    assert label_bag(drive, drive, *args, "--overwrite") == 2  # OUT = IN would destroy the recording
    assert "overlap" in capsys.readouterr().err
    assert len(read_bag(drive)[1]) == 2


def test_labelling_a_labelled_bag_again_needs_replace_existing(tmp_path: Path, checkpoint: Path, capsys) -> None:
    drive = tmp_path / "drive"
    write_camera_bag(drive, "mcap", frames=3)
    args = ("--checkpoint", checkpoint, "--topic", "/camera/image_raw", *TORCH)
    assert label_bag(drive, tmp_path / "once", *args) == 0
    assert label_bag(tmp_path / "once", tmp_path / "twice", *args) == 2
    assert "already has /camera/segmentation/labels" in capsys.readouterr().err
    assert label_bag(tmp_path / "once", tmp_path / "twice", *args, "--replace-existing") == 0
    assert read_bag(tmp_path / "twice")[1] == read_bag(tmp_path / "once")[1]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.cli
def test_interrupted_run_leaves_a_readable_bag_marked_incomplete(tmp_path: Path, checkpoint: Path, signum: int) -> None:
    drive, out = tmp_path / "drive", tmp_path / "labelled"
    written = write_camera_bag(drive, "mcap", frames=1500)
    command = [sys.executable, "-m", "fast_scnn_core", "label-bag", str(drive), str(out)]
    # Inference at 256x512 (labels come back at the frames' 48x64): the run lasts tens of seconds, so the
    # signal always lands mid-run, even on a loaded machine.
    command += ["--checkpoint", str(checkpoint), "--topic", "/camera/image_raw", "--width", "512", "--height", "256"]
    proc = subprocess.Popen(command, env=tree_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    storage = tmp_path / "labelled.partial" / "labelled" / "labelled.mcap"
    deadline = time.monotonic() + 120
    while not (storage.exists() and storage.stat().st_size > 2**21):  # a few chunks written: mid-run
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert not out.exists()
    assert "labelled was not written" in err and "marked incomplete" in err
    partial = storage.parent
    assert "interrupted" in custom_data(partial)["fast_scnn.incomplete"]
    _, messages = read_bag(partial)
    labels = [t for topic, t, _ in messages if topic.endswith("/labels")]
    originals = [(t, data) for topic, t, data in messages if topic == "/camera/image_raw"]
    assert 0 < len(labels) < len(written)
    assert originals == [(r.timestamp, r.data) for r in written[: len(originals)]]
    assert set(labels) <= {t for t, _ in originals}


@pytest.mark.parametrize("command", ["label-bag", "bag-to-dataset"])
def test_a_full_disk_is_one_line_and_leaves_the_partial_output_marked(
    tmp_path: Path, checkpoint: Path, tmpfs, capsys, command: str
) -> None:
    drive = tmp_path / "drive"
    write_camera_bag(drive, "mcap", frames=30, size=(96, 128))  # 1.1 MB of images, for a 300 kB disk
    out = tmpfs("300k") / "out"
    args = ("--checkpoint", checkpoint, "--topic", "/camera/image_raw", *TORCH)
    assert cli.main([command, str(drive), str(out), *map(str, args)]) == 2
    err = capsys.readouterr().err
    assert f"fast-scnn {command}: error: no space left on {out.parent} while writing {out}; out was not written" in err
    assert "Traceback" not in err and not out.exists()


def test_damaged_bags_fail_clearly(tmp_path: Path, checkpoint: Path, capsys) -> None:
    args = ("--checkpoint", checkpoint, "--topic", "/camera/image_raw", *TORCH)
    cut = tmp_path / "cut"
    write_camera_bag(cut, "mcap", frames=30)
    storage = cut / "cut.mcap"
    os.truncate(storage, storage.stat().st_size // 2)  # a recording killed mid-write: no footer, no index
    assert label_bag(cut, tmp_path / "out", *args) == 2
    error = capsys.readouterr().err
    assert "cut: cannot open the bag" in error and "mcap recover" in error
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()

    broken = tmp_path / "broken"
    written = write_camera_bag(broken, "sqlite3", frames=80, size=(64, 96))
    database = broken / "broken.db3"
    data = bytearray(database.read_bytes())
    page = len(data) // 4096 // 2 * 4096
    data[page : page + 16] = b"\x0d" + b"\xff" * 15  # a b-tree page in the middle of the messages
    database.write_bytes(bytes(data))
    assert label_bag(broken, tmp_path / "out", *args) == 2
    error = capsys.readouterr().err
    assert "broken: unreadable after" in error and "malformed" in error
    assert "out was not written" in error
    partial = tmp_path / "out.partial" / "out"
    assert "failed" in custom_data(partial)["fast_scnn.incomplete"]
    _, messages = read_bag(partial)
    labels = [t for topic, t, _ in messages if topic.endswith("/labels")]
    assert 0 < len(labels) < len(written)
    assert labels == [t for topic, t, _ in messages if topic == "/camera/image_raw"]  # all read frames labelled


def peak_memory_of_labelling(tmp_path: Path, segmenter: Segmenter, frames: int) -> tuple[int, int]:
    """(peak Python/numpy bytes while labelling a `frames`-frame bag, the bag's size)."""
    drive = tmp_path / f"drive{frames}"
    write_camera_bag(drive, "mcap", frames=frames, size=(96, 128))
    args = cli.build_parser().parse_args(
        ["label-bag", str(drive), str(tmp_path / f"out{frames}"), "--checkpoint", "-", "--topic", "/camera/image_raw"]
    )
    tracemalloc.start()
    try:
        assert label_bag_command.run(args, segmenter) == 0  # the engine is built: only the streaming is measured
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, (drive / f"drive{frames}.mcap").stat().st_size


def test_memory_stays_flat_over_a_long_bag(tmp_path: Path, segmenter: Segmenter) -> None:
    short_peak, short_size = peak_memory_of_labelling(tmp_path, segmenter, 40)
    long_peak, long_size = peak_memory_of_labelling(tmp_path, segmenter, 240)
    assert long_size > 4 * short_size
    # streaming: the peak holds a chunk or two (1 MiB each) and a batch, not the bag (+ 9 MiB here)
    assert long_peak < short_peak + (long_size - short_size) / 4, (short_peak, long_peak, long_size)


def test_segmentation_namespace_follows_the_camera() -> None:
    assert segmentation_namespace("/front/image_raw") == "/front/segmentation"
    assert segmentation_namespace("/front/image_raw/compressed") == "/front/segmentation"
    assert segmentation_namespace("/robot/left/image_rect") == "/robot/left/segmentation"
    assert segmentation_namespace("/image_raw") == "/segmentation"


def test_cameras_sharing_a_namespace_are_refused(tmp_path: Path, checkpoint: Path, capsys) -> None:
    drive = tmp_path / "drive"
    write_camera_bag(drive, "mcap", frames=1, topics=("/camera/image_raw", "/camera/image_rect"))
    args = ("--checkpoint", checkpoint, "--topic", "/camera/image_raw", "--topic", "/camera/image_rect", *TORCH)
    assert label_bag(drive, tmp_path / "out", *args) == 2
    assert "share the namespace /camera/segmentation" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# bag-to-dataset


def test_time_split_is_by_blocks_of_recording_time() -> None:
    split = TimeSplit(0, 100 * 10**9, fraction=0.2, block=10.0)  # 10 blocks of 10 s: blocks 4 and 9 are val
    parts = [split(int(s * 10**9)) for s in range(100)]
    assert [s for s in range(100) if parts[s] == "val"] == [*range(40, 50), *range(90, 100)]
    short = TimeSplit(0, 2 * 10**9, fraction=0.2, block=10.0)  # shorter than 5 blocks: the last fifth is val
    assert [short(t * 10**8) for t in range(20)] == ["train"] * 16 + ["val"] * 4
    assert sum(TimeSplit(0, 10**12, 0.3, 1.0)(t * 10**8) == "val" for t in range(10**4)) == 3000


def test_frame_filter_keeps_every_nth_or_a_rate() -> None:
    every = FrameFilter(3, None)
    assert [every.keep("/a", t) for t in range(7)] == [True, False, False, True, False, False, True]
    rate = FrameFilter(1, 2.0)  # 2 frames/s of a 10 Hz camera
    kept = [t for t in range(0, 3 * 10**9, 10**8) if rate.keep("/a", t)]
    assert kept == [0, 5 * 10**8, 10**9, 15 * 10**8, 2 * 10**9, 25 * 10**8]
    assert rate.keep("/b", 10**8)  # per camera


@pytest.mark.training
def test_bag_to_dataset_then_training_works(
    tmp_path: Path, checkpoint: Path, segmenter: Segmenter, tiny_config
) -> None:
    from fast_scnn_core.train.loop import train

    drive, data = tmp_path / "drive", tmp_path / "data"
    written = write_drive(drive, "sqlite3", frames=10)
    args = ["bag-to-dataset", str(drive), str(data), "--topic", "/front/image_raw", "--topic"]
    args += ["/side/image_raw/compressed", "--every", "2", "--checkpoint", str(checkpoint)]
    assert cli.main(args) == 0
    assert load_class_set(data / "classes.yaml") == TINY
    with open(data / "frames.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    sources = {(r.topic, r.timestamp): r for r in written}
    assert len(rows) == 10  # frames 0, 2, 4, 6, 8 of two cameras
    for row in rows:
        record = sources[(row["topic"], int(row["recording_ns"]))]
        msg, rgb = decoded(IMAGE if row["topic"] == "/front/image_raw" else COMPRESSED_IMAGE, record.data)
        assert (int(row["stamp_sec"]), int(row["stamp_nanosec"])) == (msg.header.stamp.sec, msg.header.stamp.nanosec)
        assert row["file"] == f"{row['split']}/{frame_name(row['topic'], int(row['recording_ns']))}.png"
        image = cv2.cvtColor(cv2.imread(str(data / "images" / row["file"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(image, rgb)  # lossless
        mask = cv2.imread(str(data / "masks" / row["file"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask, segmenter(np.ascontiguousarray(rgb)).labels)
    val = sorted(int(r["recording_ns"]) for r in rows if r["split"] == "val")
    assert val and min(val) > max(int(r["recording_ns"]) for r in rows if r["split"] == "train")  # the last fifth

    config = tiny_config(data, tmp_path / "run", "data.format=folder", f"data.classes={data / 'classes.yaml'}")
    config.epochs, config.data.crop_size = 1, (32, 32)
    assert train(config) == 0
    assert (tmp_path / "run" / "last.pt").is_file()


def test_without_checkpoint_only_images_are_written_and_training_refuses(tmp_path: Path, capsys) -> None:
    drive, data = tmp_path / "drive", tmp_path / "data"
    write_camera_bag(drive, "mcap", frames=6)
    assert cli.main(["bag-to-dataset", str(drive), str(data), "--topic", "/camera/image_raw", "--fps", "5"]) == 0
    assert "no --checkpoint: images only" in capsys.readouterr().out
    assert len(list((data / "images").rglob("*.png"))) == 3
    assert not (data / "masks").exists() and not (data / "classes.yaml").exists()
    overrides = [f"data.root={data}", "data.format=folder", f"data.classes={REPO / 'config/classes_example.yaml'}"]
    assert cli.main(["train", "--config", str(REPO / "config/train_synthetic.yaml"), *overrides]) == 2
    error = capsys.readouterr().err
    assert "its mask" in error and "does not exist" in error


def test_both_commands_are_in_the_help(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "label-bag" in text and "bag-to-dataset" in text


def test_readme_recorded_drives_commands_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Recorded drives\n.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README.md has no Recorded drives commands"
    commands = [shlex.split(line) for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").symlink_to(REPO / "config")
    save_checkpoint(tmp_path / "runs/synth/best.pt", FastSCNN(19), CITYSCAPES)  # as the quick start leaves it
    write_camera_bag(tmp_path / "drive", "mcap", frames=60, size=(128, 256))  # 6 s of a 10 Hz camera
    for argv in commands:
        assert argv[0] == "fast-scnn"
        assert cli.main(argv[1:]) == 0, argv
    topics = read_bag(tmp_path / "drive_labelled")[0]
    assert {"/camera/segmentation/labels", "/camera/segmentation/masks/car", "/camera/segmentation/color"} <= set(
        topics
    )
    assert (tmp_path / "runs/drive/last.pt").is_file()


@pytest.mark.cli
def test_bag_speed_benchmark_runs(tmp_path: Path) -> None:
    """bench/bag_speed.py (docs/benchmarks.md) still runs; tiny frames instead of the documented 512x1024."""
    command = [sys.executable, str(REPO / "bench/bag_speed.py"), "--size", "64x128", "--frames", "8", "--repeats", "1"]
    result = run_command(command)
    assert result.returncode == 0, result.stderr
    assert "| label-bag, rgb8 Image, sqlite3 |" in result.stdout
    assert "| Segmenter alone, batch 4, frames in memory |" in result.stdout
