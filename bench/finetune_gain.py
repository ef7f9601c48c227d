"""What starting from a trained checkpoint (`init=`) gains over training from scratch, on synthetic data.

Pre-trains the paper's recipe (config/train_synthetic.yaml) on `fast-scnn synth` street scenes
(Cityscapes layout, 19 classes), then trains on a SMALL set of another style and class set for the
same N iterations: fine-tuned from the pre-trained checkpoint with config/finetune.yaml, the same at
the paper's learning rate (what the lower one buys), and from scratch with the paper's recipe
(config/train_cityscapes.yaml's values). The small set is a folder dataset (its own class YAML) of
other frames (another seed) in a "dusk" style (darker, blue cast) labelled with 5 merged classes
(ground, structure, vegetation, sky, dynamic), so the classifier's last layers are re-initialised
and everything else is loaded. Prints and writes the validation mIoU curves as JSON and Markdown.
A few minutes on 2 CPU cores with the defaults:

    python bench/finetune_gain.py --out bench/results/finetune_gain
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from fast_scnn_core.atomic import atomic_write_text
from fast_scnn_core.cli.bench import machine_info
from fast_scnn_core.config import load_config
from fast_scnn_core.data.synthetic import synthetic_frame, write_synthetic_dataset
from fast_scnn_core.limits import parse_size
from fast_scnn_core.train.loop import train
from fast_scnn_core.train.recipe import TrainConfig

REPO = Path(__file__).resolve().parent.parent
# The small set's classes: Cityscapes trainIds merged (road, sidewalk -> ground; building, pole ->
# structure; person, car -> dynamic); every other trainId (none drawn but these) is ignored.
MERGED = {
    "ground": ((128, 64, 128), (0, 1)),
    "structure": ((70, 70, 70), (2, 5)),
    "vegetation": ((107, 142, 35), (8,)),
    "sky": ((70, 130, 180), (10,)),
    "dynamic": ((220, 20, 60), (11, 13)),
}
DUSK = np.array([0.45, 0.5, 0.8])  # per-channel RGB gain of the small set's style


def write_small_set(root: Path, counts: dict[str, int], height: int, width: int, seed: int) -> Path:
    """The small set: synthetic frames of `seed`, dusk style, MERGED classes, in the folder layout; its class YAML."""
    lookup = np.full(256, 255, np.uint8)
    for class_id, (_, train_ids) in enumerate(MERGED.values()):
        lookup[list(train_ids)] = class_id
    for split, count in counts.items():
        for kind in ("images", "masks"):
            (root / kind / split).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, train_ids = synthetic_frame(index, height, width, seed, split)
            dusk = np.clip(image * DUSK + 8, 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / "images" / split / f"{index:04d}.png"), cv2.cvtColor(dusk, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / "masks" / split / f"{index:04d}.png"), lookup[train_ids])
    classes = root / "classes.yaml"
    entries = [{"name": name, "color": list(color)} for name, (color, _) in MERGED.items()]
    classes.write_text(yaml.safe_dump({"classes": entries}, sort_keys=False))
    return classes


def run(config_name: str, overrides: list[str]) -> tuple[list[tuple[int, float]], float]:
    """Train with config/`config_name` + `overrides`; its validation curve [(iteration, mIoU %)] and seconds."""
    config = load_config(TrainConfig, REPO / "config" / config_name, overrides)
    started = time.monotonic()
    if train(config) != 0:
        sys.exit(f"training with {config_name} {overrides} failed")
    seconds = time.monotonic() - started
    history = json.loads((Path(config.run_dir) / "metrics.json").read_text())["history"]["val"]
    return [(entry["iteration"], round(100 * entry["miou"], 2)) for entry in history], seconds


def measure(args: argparse.Namespace, tmp: Path) -> dict:
    """Pre-train, then fine-tune and train from scratch on the small set; both curves and the settings."""
    height, width = parse_size(args.size)
    write_synthetic_dataset(tmp / "synth", {"train": args.pretrain_frames, "val": 4}, height, width, seed=0)
    classes = write_small_set(tmp / "small", {"train": args.train, "val": args.val}, height, width, seed=1)
    common = [f"data.crop_size=[{height},{width}]", "data.workers=0", "plots=false", "log_every=10"]
    pre_batch = 8
    pre_epochs = max(1, args.pretrain_iters // (args.pretrain_frames // pre_batch))
    pre = [*common, f"data.root={tmp / 'synth'}", f"run_dir={tmp / 'pre'}", f"batch_size={pre_batch}"]
    pretrain, pre_seconds = run("train_synthetic.yaml", [*pre, f"epochs={pre_epochs}", "val_every=0"])
    per_epoch = args.train // args.batch
    small = [*common, "data.format=folder", f"data.root={tmp / 'small'}", f"data.classes={classes}"]
    small += [f"batch_size={args.batch}", f"epochs={args.iters // per_epoch}", f"val_every={args.val_every}"]
    init = f"init={tmp / 'pre/best.pt'}"
    tuned, tuned_seconds = run("finetune.yaml", [*small, f"run_dir={tmp / 'tuned'}", init])
    paper_lr = TrainConfig().lr  # the same fine-tuning at the from-scratch learning rate: what the lower lr buys
    tuned_paper_lr, _ = run("finetune.yaml", [*small, f"run_dir={tmp / 'tuned_paper_lr'}", init, f"lr={paper_lr}"])
    scratch, scratch_seconds = run("train_cityscapes.yaml", [*small, f"run_dir={tmp / 'scratch'}"])
    finetune = load_config(TrainConfig, REPO / "config/finetune.yaml")
    return {
        "pretrain": {"iterations": pretrain[-1][0], "val_miou": pretrain[-1][1], "seconds": round(pre_seconds)},
        "small_set": {"train": args.train, "val": args.val, "classes": list(MERGED), "size": args.size},
        "iterations": args.iters,
        "batch_size": args.batch,
        "finetuned": {"lr": finetune.lr, "curve": tuned, "seconds": round(tuned_seconds)},
        "finetuned_paper_lr": {"lr": paper_lr, "curve": tuned_paper_lr},
        "scratch": {"lr": paper_lr, "curve": scratch, "seconds": round(scratch_seconds)},
    }


def markdown(result: dict) -> str:
    machine, small = result["machine"], result["small_set"]
    tuned, tuned_paper_lr, scratch = result["finetuned"], result["finetuned_paper_lr"], result["scratch"]
    lines = [
        "# Fine-tuning gain (bench/finetune_gain.py)",
        "",
        f"Machine: {machine['cpu']} ({machine['cores']} cores), {machine['gpu'] or 'no GPU'}; "
        f"torch {machine['torch']}, threads {machine['threads']}; {machine['date']}.",
        f"Command: `{machine['command']}`",
        "",
        f"Pre-trained {result['pretrain']['iterations']} iterations on synthetic street scenes (19 classes): val mIoU "
        f"{result['pretrain']['val_miou']} %. Small set: {small['train']} train / {small['val']} val frames of "
        f"{small['size']}, another seed, dusk style, {len(small['classes'])} classes ({', '.join(small['classes'])}).",
        "",
        f"| iteration | fine-tuned (config/finetune.yaml, lr {tuned['lr']}) | fine-tuned at lr {tuned_paper_lr['lr']} "
        f"| from scratch (paper recipe, lr {scratch['lr']}) |",
        "|---:|---:|---:|---:|",
    ]
    curves = zip(tuned["curve"], tuned_paper_lr["curve"], scratch["curve"], strict=True)
    for (iteration, a), (_, b), (_, c) in curves:
        lines.append(f"| {iteration} | {a:.2f} | {b:.2f} | {c:.2f} |")
    lines += ["", f"Validation class mIoU in %, batch {result['batch_size']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-iters", type=int, default=160, help="pre-training iterations (batch 8)")
    parser.add_argument("--pretrain-frames", type=int, default=32, help="pre-training frames")
    parser.add_argument("--iters", type=int, default=40, help="iterations on the small set, both ways")
    parser.add_argument("--train", type=int, default=8, help="small set: training frames")
    parser.add_argument("--val", type=int, default=8, help="small set: validation frames")
    parser.add_argument("--batch", type=int, default=4, help="batch size on the small set")
    parser.add_argument("--val-every", type=int, default=5, help="validate every N epochs on the small set")
    parser.add_argument("--size", default="128x256", help="HEIGHTxWIDTH of every frame (and the crops)")
    parser.add_argument("--out", default=None, help="write OUT.json and OUT.md (e.g. bench/results/finetune_gain)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args, Path(tmp))
    command = shlex.join(["python", "bench/finetune_gain.py", *sys.argv[1:]])
    result["machine"] = machine_info(0, command)
    text = markdown(result)
    print(text)
    if args.out:
        atomic_write_text(f"{args.out}.json", json.dumps(result, indent=2) + "\n")
        atomic_write_text(f"{args.out}.md", text)


if __name__ == "__main__":
    main()
