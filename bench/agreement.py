"""Label agreement between backends on a model whose predictions mean something.

An untrained model's logits are near-ties, so "labels agree" says little there. This script
trains a small Fast-SCNN (seeded, 300 Adam steps at 128x256, 4 to 8 minutes on 2 CPU cores) on
synthetic street-like scenes (sky, road, buildings, vegetation, cars), checks that it has learnt
the scenes (pixel accuracy against the ground truth), then measures on held-out 512x1024 scenes:
labels equal to the plain eager fp32 path and max |confidence difference|, per backend.

    python bench/agreement.py --out bench/results/agreement.json --checkpoint /tmp/tiny_synthetic.pt
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from fast_scnn_core.atomic import atomic_write_text
from fast_scnn_core.infer.segmenter import InferenceConfig, Segmenter
from fast_scnn_core.labels import ClassSet
from fast_scnn_core.model.checkpoint import save_checkpoint
from fast_scnn_core.model.network import FastSCNN
from fast_scnn_core.train.recipe import segmentation_loss

CLASSES = ClassSet(
    ("road", "sky", "building", "vegetation", "car"),
    ((128, 64, 128), (70, 130, 180), (70, 70, 70), (107, 142, 35), (0, 0, 142)),
)
BASE_COLORS = np.array([[90, 90, 95], [120, 170, 230], [150, 110, 80], [60, 120, 40], [200, 30, 30]], np.float32)


def street_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, uint8 labels) of a random synthetic street: sky over road, buildings, trees, cars."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = rng.uniform(0.3, 0.55) * height
    labels = np.where(yy < horizon, 1, 0).astype(np.uint8)
    for _ in range(rng.integers(2, 7)):  # buildings standing on the horizon
        x0, w = rng.uniform(0, width), rng.uniform(0.05, 0.25) * width
        top = horizon - rng.uniform(0.1, 0.35) * height
        labels[(xx >= x0) & (xx < x0 + w) & (yy >= top) & (yy < horizon + 0.02 * height)] = 2
    for _ in range(rng.integers(1, 5)):  # trees: ellipses around the horizon
        cx, cy = rng.uniform(0, width), horizon - rng.uniform(0, 0.1) * height
        rx, ry = rng.uniform(0.03, 0.1) * width, rng.uniform(0.05, 0.15) * height
        labels[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1] = 3
    for _ in range(rng.integers(0, 5)):  # cars on the road
        cy = rng.uniform(horizon + 0.05 * height, height)
        scale = (cy - horizon) / (height - horizon)
        w, h = (0.06 + 0.2 * scale) * width, (0.04 + 0.12 * scale) * height
        cx = rng.uniform(0, width)
        labels[(np.abs(xx - cx) < w / 2) & (np.abs(yy - cy) < h / 2)] = 4
    colors = BASE_COLORS * rng.uniform(0.7, 1.3, (5, 1)) + rng.normal(0, 12, (5, 3))
    image = colors[labels] + rng.normal(0, 10, (height, width, 3)) + rng.uniform(-30, 30)
    image[..., :] += (yy[..., None] / height) * rng.uniform(-20, 20)  # a lighting gradient
    return np.clip(image, 0, 255).astype(np.uint8), labels


def batch(rng: np.random.Generator, n: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [street_scene(rng, height, width) for _ in range(n)]
    images = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).float() / 255
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )
    return (images - mean) / std, torch.from_numpy(np.stack([p[1] for p in pairs])).long()


def train(iterations: int, seed: int = 0) -> FastSCNN:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = FastSCNN(CLASSES.num_classes, aux=True).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.time()
    for step in range(iterations):
        x, y = batch(rng, 8, 128, 256)
        loss = segmentation_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == iterations - 1:
            print(f"step {step:4d} loss {loss.item():.3f} ({time.time() - start:.0f} s)", flush=True)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--images", type=int, default=8, help="held-out 512x1024 scenes")
    parser.add_argument("--checkpoint", default="/tmp/fast_scnn_tiny_synthetic.pt", help="where to save the model")
    parser.add_argument("--out", default="bench/results/agreement.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = train(args.iterations)
    save_checkpoint(args.checkpoint, model, CLASSES, iteration=args.iterations)
    rng = np.random.default_rng(1234)
    scenes = [street_scene(rng, 512, 1024) for _ in range(args.images)]
    variants = {
        "torch-eager": InferenceConfig(device="cpu", mode="prob", optimize=False),
        "torch": InferenceConfig(device="cpu", mode="prob"),
        "onnxruntime": InferenceConfig(device="cpu", mode="prob", backend="onnxruntime"),
    }
    outputs = {}
    for name, config in variants.items():
        segmenter = Segmenter.from_checkpoint(args.checkpoint, config)
        outputs[name] = [segmenter(image) for image, _ in scenes]
    base = outputs["torch-eager"]
    result = {
        "model": f"FastSCNN({CLASSES.num_classes} classes), {args.iterations} Adam steps on synthetic 128x256 scenes",
        "images": f"{args.images} held-out synthetic scenes at 512x1024",
        "pixel_accuracy_vs_ground_truth": float(
            np.mean([(o.labels == gt).mean() for o, (_, gt) in zip(base, scenes, strict=True)])
        ),
        "backends": {},
    }
    for name, outs in outputs.items():
        agree = float(np.mean([(o.labels == b.labels).mean() for o, b in zip(outs, base, strict=True)]))
        conf = float(max(np.abs(o.confidence - b.confidence).max() for o, b in zip(outs, base, strict=True)))
        result["backends"][name] = {"labels_equal_to_eager": agree, "max_confidence_difference": conf}
    print(json.dumps(result, indent=2))
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
