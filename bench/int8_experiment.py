"""Does static int8 quantisation (onnxruntime.quantization) beat the fp32 ONNX graph on this CPU?

Quantises the Segmenter's pipeline graph of a trained checkpoint (from bench/agreement.py) in four
ways, calibrated on 8 synthetic street scenes at 256x512, and times them interleaved with fp32 at
512x1024. Result on the 2-core AMD EPYC (AVX-512 VNNI) of docs/benchmarks.md: no variant was
clearly faster than fp32 (conv-only QDQ within ~10 %, the others 25-40 % slower), and labels
agreed with fp32 on only ~99.6 % of pixels, so the engine offers no int8 backend.

    python bench/int8_experiment.py --checkpoint /tmp/fast_scnn_tiny_synthetic.pt
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from fast_scnn_core.infer.graph import onnx_bytes, pipeline_graph
from fast_scnn_core.model.checkpoint import build_model, load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from agreement import street_scene

CONFIGS = {
    "qdq-per-channel": {"quant_format": QuantFormat.QDQ, "per_channel": True},
    "qoperator-per-channel": {"quant_format": QuantFormat.QOperator, "per_channel": True},
    "qdq-conv-only": {"quant_format": QuantFormat.QDQ, "per_channel": True, "op_types_to_quantize": ["Conv"]},
}


class Scenes(CalibrationDataReader):
    def __init__(self, images: list[np.ndarray]) -> None:
        self.images = iter(images)

    def get_next(self) -> dict | None:
        image = next(self.images, None)
        return None if image is None else {"image": image[None]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="/tmp/fast_scnn_tiny_synthetic.pt")
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    payload = load_checkpoint(args.checkpoint)
    graph = pipeline_graph(build_model(payload), tuple(payload["mean"]), tuple(payload["std"]), "cls")
    rng = np.random.default_rng(7)
    calibration = [street_scene(rng, 256, 512)[0] for _ in range(8)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    with tempfile.TemporaryDirectory() as tmp:
        fp32, pre = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx")
        fp32.write_bytes(onnx_bytes(graph))
        quant_pre_process(str(fp32), str(pre))
        sessions = {"fp32": ort.InferenceSession(str(pre), options, providers=["CPUExecutionProvider"])}
        for name, config in CONFIGS.items():
            out = Path(tmp, f"{name}.onnx")
            quantize_static(
                str(pre), str(out), Scenes(calibration), activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, **config,
            )  # fmt: skip
            sessions[name] = ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
        tests = [street_scene(np.random.default_rng(99 + i), 512, 1024) for i in range(3)]
        reference = [sessions["fp32"].run(None, {"image": image[None]})[0][0] for image, _ in tests]
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for session in sessions.values():
            for _ in range(3):
                session.run(None, {"image": tests[0][0][None]})
        for _ in range(args.frames):
            for name, session in sessions.items():
                start = time.perf_counter()
                session.run(None, {"image": tests[0][0][None]})
                times[name].append(time.perf_counter() - start)
        print("| variant | ms (mean) | ms (median) | labels = fp32 | pixel accuracy |")
        print("|---|---:|---:|---:|---:|")
        for name, session in sessions.items():
            labels = [session.run(None, {"image": image[None]})[0][0] for image, _ in tests]
            agree = np.mean([(a == b).mean() for a, b in zip(labels, reference, strict=True)])
            accuracy = np.mean([(a == gt).mean() for a, (_, gt) in zip(labels, tests, strict=True)])
            print(
                f"| {name} | {1000 * np.mean(times[name]):.1f} | {1000 * np.median(times[name]):.1f} | "
                f"{100 * agree:.2f} % | {100 * accuracy:.2f} % |"
            )


if __name__ == "__main__":
    main()
