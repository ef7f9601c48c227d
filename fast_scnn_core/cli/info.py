"""`fast-scnn info`: parameter count and FLOPs of the network at the paper's resolutions."""

from __future__ import annotations

import argparse

PAPER_RESOLUTIONS: tuple[tuple[int, int], ...] = ((1024, 2048), (512, 1024), (256, 512))
PAPER_PARAMETERS = 1_110_000


def summary(
    num_classes: int = 19, resolutions: tuple[tuple[int, int], ...] = PAPER_RESOLUTIONS, variant: str = "paper"
) -> dict:
    """Parameters (inference graph and with auxiliary heads) and FLOPs per resolution of `variant`."""
    from fast_scnn_core.model.flops import flops
    from fast_scnn_core.model.network import FastSCNN, count_parameters

    model = FastSCNN(num_classes, variant=variant)
    return {
        "num_classes": num_classes,
        "parameters": count_parameters(model),
        "parameters_with_aux": count_parameters(model, inference_only=False),
        "paper_parameters": PAPER_PARAMETERS,
        "gflops": {f"{h}x{w}": flops(model, h, w) / 1e9 for h, w in resolutions},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-classes", type=int, default=19, help="number of output classes (default 19)")
    # fast_scnn_core.model.network.VARIANTS, spelt out so that --help imports no torch
    parser.add_argument(
        "--variant", choices=("paper", "mmseg", "tramac"), default="paper", help="architecture (default paper)"
    )


def run(args: argparse.Namespace) -> int:
    info = summary(args.num_classes, variant=args.variant)
    delta = 100.0 * (info["parameters"] - PAPER_PARAMETERS) / PAPER_PARAMETERS
    variant = "" if args.variant == "paper" else f", variant {args.variant}"
    print(f"Fast-SCNN, {info['num_classes']} classes{variant}")
    print(f"parameters (inference):   {info['parameters']:,}  ({delta:+.1f}% vs the paper's 1.11 M)")
    print(f"parameters (+ aux heads): {info['parameters_with_aux']:,}  (training only)")
    print("GFLOPs (batch 1, conv + matmul, 2 FLOPs per MAC):")
    for resolution, gflops in info["gflops"].items():
        print(f"  {resolution:>10}: {gflops:7.2f}")
    return 0
