"""The worker's mailbox, statistics, error text and memory release, without a ROS graph."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading
import time

import pytest
from support import REPO

from fast_scnn_ros.pipeline import ERROR_TEXT_LIMIT, Frame, Mailbox, MemoryTrimmer, Report, Stats, bounded


def frame(name: str) -> Frame:
    return Frame(name, time.perf_counter())


def newest(mailbox: Mailbox) -> dict[int, str]:
    taken = mailbox.take()
    return {camera: slot.newest.msg for camera, slot in taken.slots.items()}


def test_each_camera_keeps_its_newest_frame_and_one_round_takes_them_all() -> None:
    mailbox = Mailbox(3)
    dropped = [mailbox.put(0, frame("front 1")), mailbox.put(2, frame("left 1")), mailbox.put(0, frame("front 2"))]
    assert newest(mailbox) == {0: "front 2", 2: "left 1"}  # the silent rear camera is not waited for
    assert dropped == [False, False, False]  # front 1 is front 2's fallback this round, not dropped yet
    assert [mailbox.put(1, frame(f"rear {i}")) for i in range(4)] == [False, False, True, True]
    assert newest(mailbox) == {1: "rear 3"}


def test_the_frame_a_newer_one_replaced_is_its_fallback_for_that_round_only() -> None:
    """Issue 13 #9: a frame found bad in the worker must not cost the good frame it replaced."""
    mailbox = Mailbox(1)
    mailbox.put(0, frame("good"))
    mailbox.put(0, frame("corrupt"))
    slot = mailbox.take().slots[0]
    assert (slot.newest.msg, slot.fallback.msg) == ("corrupt", "good")
    mailbox.put(0, frame("next"))
    assert mailbox.take().slots[0].fallback is None


def test_take_waits_for_any_camera_and_returns_none_once_closed() -> None:
    mailbox = Mailbox(4)
    taken: list = []
    worker = threading.Thread(target=lambda: taken.extend([mailbox.take(), mailbox.take()]))
    worker.start()
    time.sleep(0.05)
    assert not taken  # nothing yet: the worker waits
    mailbox.put(3, frame("right"))
    time.sleep(0.05)
    mailbox.close()
    worker.join(timeout=5)
    assert [t.slots[3].newest.msg for t in taken[:1]] == ["right"] and taken[1] is None


def test_a_release_request_wakes_the_worker_without_a_frame() -> None:
    mailbox = Mailbox(2)
    mailbox.request_release()
    taken = mailbox.take()
    assert taken.release and not taken.slots


def test_counts_add_up_and_a_worker_refusal_is_not_a_second_reception() -> None:
    """Issue 13 #9: frames refused in the worker were counted twice in frames_received."""
    stats = Stats()
    for _ in range(5):
        stats.received()
    stats.refused("bad step", in_worker=False)  # refused by the callback: received and bad
    stats.refused("corrupt JPEG", in_worker=True)  # refused by the worker: received already
    stats.dropped()
    stats.failed("RuntimeError: out of memory")
    for _ in range(2):
        stats.processed(4, wait=0.01, convert=0.001, inference=0.05, publish=0.002, end_to_end=0.07)
    report = stats.report()
    assert report.totals == {"received": 6, "processed": 2, "dropped": 1, "bad": 2, "errors": 1}
    assert report.delta == report.totals
    totals = report.totals
    assert totals["received"] == totals["processed"] + totals["dropped"] + totals["bad"] + totals["errors"]
    values = report.values(time.perf_counter())
    assert values["inference_ms"] == pytest.approx(50) and values["overhead_ms"] == pytest.approx(20)
    assert values["batch_size"] == 4
    assert values["last_error"] == "RuntimeError: out of memory" and 0 <= values["last_error_age_s"] < 5

    later = stats.report()  # a new period: deltas and timings start again, totals and the last error stay
    assert later.delta["received"] == 0 and later.timings["inference"] == []
    assert later.totals == totals and later.last_error == "RuntimeError: out of memory"


def test_reports_of_several_cameras_merge_into_the_nodes() -> None:
    front, rear = Stats(), Stats()
    front.received()
    front.processed(2, wait=0, convert=0, inference=0.1, publish=0, end_to_end=0.1)
    rear.refused("unknown encoding 'rgb9'", in_worker=False)
    merged = Report.merge([front.report(), rear.report()])
    assert merged.totals == {"received": 2, "processed": 1, "dropped": 0, "bad": 1, "errors": 0}
    assert merged.timings["inference"] == [0.1] and merged.batch_sizes == [2]
    assert merged.last_error == "unknown encoding 'rgb9'"


def test_error_text_is_bounded_in_diagnostics() -> None:
    """Issue 13 #9: a 1 MB encoding string made a 1 MB log line and last_error."""
    stats = Stats()
    stats.refused(f"unsupported encoding {'x' * 1_000_000!r}; supported: rgb8, bgr8", in_worker=False)
    last_error = stats.report().last_error
    assert len(last_error) < ERROR_TEXT_LIMIT + 50
    assert last_error.startswith("unsupported encoding 'xxx") and last_error.endswith("xxx'; supported: rgb8, bgr8")
    assert "(999746 characters left out)" in last_error
    assert bounded("short") == "short"


def test_memory_is_released_after_a_failed_or_unusually_large_round_only() -> None:
    trimmer = MemoryTrimmer()
    normal = 4 * 512 * 1024
    assert not trimmer.after_round(normal, failed=False)  # the first round sets the scale
    assert not any(trimmer.after_round(pixels, failed=False) for pixels in (normal, normal // 4, normal))
    assert trimmer.after_round(16384 * 1024, failed=False)  # one frame far larger than the rounds before
    assert trimmer.after_round(0, failed=True)
    assert trimmer.releases == 2


# A fresh interpreter converts a 512x1024 mono8 frame (128 pages) 20 times and prints its minor page faults per
# frame: a buffer that is mapped afresh for every frame faults on each of its pages.
FAULTS_PER_FRAME = """
import resource, sys
import numpy as np
from fast_scnn_ros.conversions import numpy_to_image
from fast_scnn_ros.pipeline import reuse_frame_buffers
applied = reuse_frame_buffers() if sys.argv[1] == "reuse" else None
labels = np.zeros((512, 1024), np.uint8)
numpy_to_image(labels, "mono8")
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    numpy_to_image(labels, "mono8")
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.cli
def test_frame_buffers_are_reused_instead_of_mapped_afresh_for_every_frame() -> None:
    """What `reuse_frame_buffers()` (called first in the node's main) changes, counted in page faults, not time."""

    def faults_per_frame(mode: str) -> tuple[str, float]:
        command = [sys.executable, "-c", FAULTS_PER_FRAME, mode]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
        applied, faults = done.stdout.split()
        return applied, float(faults)

    pages = 512 * 1024 // 4096
    assert faults_per_frame("default")[1] > pages / 2  # glibc's default: each output buffer mapped afresh
    applied, faults = faults_per_frame("reuse")
    assert applied == "True" and faults < pages / 10
