"""Many bags: `fast-scnn label-bags` with 1 and 2 local workers and as Ray tasks, against label-bag one bag at a time.

    python bench/fleet_speed.py [--bags 4] [--frames 40] [--size 512x1024] [--backend auto]

Writes --bags mcap bags of --frames synthetic street scenes each (rgb8, /camera/image_raw), then times,
over all of them, end to end (wall clock, frames labelled / seconds):
  label-bag, one bag after another, all through one Segmenter built beforehand (the engine's best case:
  no process start, no engine build; a shell loop over `fast-scnn label-bag` pays both once per bag);
  label-bags --workers 1 and --workers 2 (the whole command: spawning the workers, each building its
  engine, labelling, the summary);
  label-bags --ray on a local Ray instance started beforehand, as a cluster would be (its start is
  timed apart: `ray.init` seconds).
Each command also runs on as many bags of one frame: that time is its fixed cost (reading the checkpoint,
starting workers, building each one's engine, the summary), and "after start-up" is frames / (seconds -
fixed cost), the rate a long run approaches.
Without --checkpoint an untrained 19-class checkpoint is used: speed does not depend on the weights.
Prints a markdown table; docs/benchmarks.md records the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from bag_speed import TOPIC, write_bag  # beside this script (python bench/fleet_speed.py puts bench/ on the path)

from fast_scnn_core import cli
from fast_scnn_core.cli import label_bag as label_bag_command
from fast_scnn_core.data.synthetic import synthetic_frame
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import CITYSCAPES
from fast_scnn_core.limits import parse_size
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """stdout (the summaries) to /dev/null while a variant runs; progress bars and errors stay on stderr."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        yield


def one_at_a_time(bags: list[Path], root: Path, checkpoint: Path, backend: str) -> float:
    """Seconds for label-bag on each bag in turn, through one Segmenter built beforehand."""
    config = InferenceConfig(checkpoint=str(checkpoint), backend=backend)
    segmenter = Segmenter.from_checkpoint(checkpoint, config)
    started = time.perf_counter()
    for bag in bags:
        argv = ["label-bag", str(bag), str(root / "single" / bag.name), "--checkpoint", "-", "--topic", TOPIC]
        args = cli.build_parser().parse_args([*argv, "--backend", backend, "--overwrite"])
        with quiet():
            assert label_bag_command.run(args, segmenter) == 0
    return time.perf_counter() - started


def fleet(bags_dir: Path, out: Path, checkpoint: Path, backend: str, *how: str) -> float:
    """Seconds for one whole `fast-scnn label-bags` command."""
    argv = ["label-bags", str(bags_dir), "--out", str(out), "--checkpoint", str(checkpoint), "--topic", TOPIC]
    started = time.perf_counter()
    with quiet():
        assert cli.main([*argv, "--backend", backend, "--overwrite", *how]) == 0
    return time.perf_counter() - started


def start_ray() -> float:
    """Seconds to start a local Ray instance whose workers import this working tree."""
    import ray

    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH"))))
    started = time.perf_counter()
    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    return time.perf_counter() - started


def measure(options: argparse.Namespace, root: Path) -> tuple[dict[str, tuple[float, float]], float | None]:
    """({what: (seconds, fixed cost)}, ray.init seconds) over the bags written under `root`."""
    height, width = parse_size(options.size, minimum=1)
    frames = [synthetic_frame(i, height, width, split="val")[0] for i in range(8)]
    checkpoint = options.checkpoint or root / "untrained19.pt"
    if options.checkpoint is None:
        save_checkpoint(checkpoint, FastSCNN(19), CITYSCAPES)
    bags = [root / "bags" / f"drive{i}" for i in range(options.bags)]
    for i, bag in enumerate(bags):
        write_bag(bag, "mcap", frames, options.frames, compressed=False)
        write_bag(root / "short" / f"drive{i}", "mcap", frames, 1, compressed=False)
    single = one_at_a_time(bags, root, checkpoint, options.backend)
    seconds = {"label-bag, one bag after another, one engine (in process)": (single, 0.0)}
    variants = {f"label-bags --workers {n}": ("--workers", str(n)) for n in options.workers}
    ray_start = None
    if not options.no_ray:
        ray_start = start_ray()
        variants["label-bags --ray (local instance, started beforehand)"] = ("--ray",)
    for i, (name, how) in enumerate(variants.items()):
        fixed = fleet(root / "short", root / f"short{i}", checkpoint, options.backend, *how)
        seconds[name] = (fleet(root / "bags", root / f"out{i}", checkpoint, options.backend, *how), fixed)
    return seconds, ray_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="default: an untrained 19-class checkpoint")
    parser.add_argument("--bags", type=int, default=4)
    parser.add_argument("--frames", type=int, default=40, help="frames per bag")
    parser.add_argument("--size", default="512x1024", help="HxW of the recorded frames")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="local worker counts to time")
    parser.add_argument("--no-ray", action="store_true", help="leave out the Ray row")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds, ray_start = measure(options, Path(tmp))
    total = options.bags * options.frames
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"backend {options.backend}, {options.bags} bags x {options.frames} frames of {options.size}"
        + (f", ray.init {ray_start:.1f} s" if ray_start is not None else "")
        + "\n"
    )
    reference = total / next(iter(seconds.values()))[0]
    print("| what | seconds | frames/s | vs label-bag | fixed cost, s | frames/s after start-up | vs label-bag |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, (value, fixed) in seconds.items():
        steady = total / (value - fixed) if value > fixed else float("nan")  # nan: a run too short to tell
        print(
            f"| {name} | {value:.1f} | {total / value:.1f} | {total / value / reference:.2f} | {fixed:.1f} "
            f"| {steady:.1f} | {steady / reference:.2f} |"
        )


if __name__ == "__main__":
    main()
