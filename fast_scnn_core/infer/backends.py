"""Execution backends of the Segmenter; each runs `graph.SegmentationGraph` (uint8 NHWC -> labels [+ confidence]).

- `TorchEngine`: PyTorch with BatchNorm folded, channels_last, fp16 on CUDA, optional torch.compile.
- `OnnxRuntimeEngine`: the same graph exported to ONNX (in memory) and run by ONNX Runtime with
  the CPU, CUDA or TensorRT execution provider.
- `OpenVinoEngine`: the same ONNX graph (or its int8 version from `fast-scnn quantize`) compiled by
  OpenVINO for the CPU in f32, bf16 or int8, one compiled model per input shape.
- `TensorRTEngine`: a TensorRT engine built from the ONNX graph with a dynamic-shape profile; only
  where `tensorrt` is installed (never on the CPU-only CI).

onnxruntime, openvino and tensorrt are imported only when their backend is built, so the core works
without the `onnx` and `openvino` extras.
"""

from __future__ import annotations

import collections
from collections.abc import Callable

import numpy as np
import torch

from fast_scnn_core.errors import ConfigError
from fast_scnn_core.infer.graph import SegmentationGraph, onnx_bytes
from fast_scnn_core.infer.options import InferenceConfig
from fast_scnn_core.infer.precision import INSTALL_HINT, Choice, choose_cpu_backend, openvino_core


def resolve_backend(config: InferenceConfig, device: torch.device) -> Choice:
    """The backend and precision `config` runs on `device`, with the reason for what `auto` chose.

    On the CPU, `auto` and `openvino` are decided by `precision.choose_cpu_backend` (openvino only in a
    precision measured faster than onnxruntime and within the accuracy gate); on CUDA `auto` is torch.
    """
    fp = "fp16" if config.fp16 and device.type == "cuda" else "f32"
    if device.type != "cpu":
        if config.backend == "openvino" or config.precision in ("bf16", "int8"):
            raise ConfigError(
                f"backend openvino and precision bf16/int8 run on the CPU; device {device} runs torch, "
                "onnxruntime or tensorrt (fp16 for half precision)"
            )
        return Choice("torch" if config.backend == "auto" else config.backend, fp, "")
    if config.backend in ("auto", "openvino"):
        return choose_cpu_backend(config.backend, config.precision, config.checkpoint)
    return Choice(config.backend, "f32", "")


Outputs = tuple[torch.Tensor, torch.Tensor | None]
Engine = Callable[[torch.Tensor], Outputs]  # uint8 (N, H, W, 3) -> labels [+ confidence]


def _split(out: torch.Tensor | tuple[torch.Tensor, ...]) -> Outputs:
    if isinstance(out, torch.Tensor):
        return out, None
    return out[0], out[1]


class TorchEngine:
    """PyTorch execution of the graph on `device`; `graph` is already optimised (or not) by the caller."""

    def __init__(
        self, graph: SegmentationGraph, device: torch.device, *, fp16: bool, channels_last: bool, compile: bool
    ):
        self.device = device
        self.channels_last = channels_last
        graph = graph.to(device).eval()
        if fp16:
            graph = graph.half()
        if channels_last:
            graph = graph.to(memory_format=torch.channels_last)
        self.graph = torch.compile(graph, dynamic=True) if compile else graph

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> Outputs:
        return _split(self.graph(image))


def _ort_providers(device: torch.device, tensorrt: bool) -> list:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    options = {"device_id": device.index or 0}
    providers = []
    if tensorrt and "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", options))
    if "CUDAExecutionProvider" not in available:
        raise ConfigError(
            f"device {device} asked for with backend onnxruntime, but this onnxruntime has only {available}; "
            "install onnxruntime-gpu or use device cpu"
        )
    providers.append(("CUDAExecutionProvider", options))
    return [*providers, "CPUExecutionProvider"]


class OnnxRuntimeEngine:
    """ONNX Runtime session over the exported graph (all graph optimisations on, `threads` intra-op threads)."""

    def __init__(self, graph: SegmentationGraph, device: torch.device, *, threads: int = 0, fp16: bool = False):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("backend onnxruntime needs the onnx extra: pip install 'fast_scnn_ros[onnx]'") from None
        if fp16 and device.type == "cuda":
            graph = graph.half()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        # Idle workers sleep instead of spinning: on a CPU shared with other work (a robot's other
        # nodes) spinning cost 3x here (32 ms -> 11 ms per 256x512 frame without it, 2 busy cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            onnx_bytes(graph.cpu()), options, providers=_ort_providers(device, tensorrt=False)
        )
        self.device = device
        # ONNX Runtime's arena keeps its high-water mark: after one 2048x4096 frame a process of 0.31 GB
        # stayed at 0.90 GB for good. A run whose input shape differs from the previous run's gives the
        # arena's free memory back at its end (0.32 GB again); a stream of one size keeps its arena,
        # which is what makes it fast (shrinking after every run: 57 ms instead of 38 ms at 512x1024).
        self._shrink = ort.RunOptions()
        arenas = "cpu:0" if device.type == "cpu" else f"cpu:0;gpu:{device.index or 0}"
        self._shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", arenas)
        self._last_shape: tuple[int, ...] = ()

    def __call__(self, image: torch.Tensor) -> Outputs:
        shape, self._last_shape = self._last_shape, tuple(image.shape)
        run_options = self._shrink if shape != self._last_shape else None
        outputs = self.session.run(None, {"image": image.cpu().numpy()}, run_options)
        tensors = [torch.from_numpy(o).to(self.device) for o in outputs]
        return tensors[0], tensors[1] if len(tensors) > 1 else None


# Compiled models kept per input shape (N, H, W): a camera ring's few sizes stay compiled, a stream of ever new
# sizes (a misconfigured camera) does not grow the process without bound. Compiling one takes ~0.15 s.
OPENVINO_SHAPES = 4


class OpenVinoEngine:
    """OpenVINO on the CPU over the exported graph (`onnx`: its bytes, or the int8 artefact's), latency hint,
    `threads` inference threads; a model compiled per input shape (OpenVINO's static shapes are its fast path).

    `precision` is the CPU plugin's inference precision: f32, bf16, or int8, whose graph holds the
    quantisation and runs its other operations in bf16 where the CPU has it (measured faster, same labels
    as int8 with f32 within the gate: docs/benchmarks.md), else f32.
    """

    def __init__(self, onnx: bytes, *, precision: str, threads: int = 0, bf16: bool = False, outputs: int = 2):
        try:
            import openvino as ov
        except ImportError:
            raise ConfigError(f"backend openvino needs the openvino extra: {INSTALL_HINT}") from None
        self.core = openvino_core()
        model = self.core.read_model(onnx)
        # The first `outputs` outputs (labels [, confidence]); OpenVINO drops what no kept output needs.
        self.model = ov.Model(model.outputs[:outputs], model.get_parameters(), "fast_scnn")
        self.precision = precision
        hint = {"f32": "f32", "bf16": "bf16", "int8": "bf16" if bf16 else "f32"}[precision]
        self.properties = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint}
        if threads:
            self.properties["INFERENCE_NUM_THREADS"] = threads
        self.device = torch.device("cpu")
        self._requests: collections.OrderedDict[tuple[int, ...], object] = collections.OrderedDict()

    def _request(self, shape: tuple[int, ...]):
        """The infer request of a model compiled for `shape`, compiled now unless one of the last few shapes."""
        if shape in self._requests:
            self._requests.move_to_end(shape)
            return self._requests[shape]
        model = self.model.clone()
        model.reshape({"image": list(shape)})
        request = self.core.compile_model(model, "CPU", self.properties).create_infer_request()
        self._requests[shape] = request
        if len(self._requests) > OPENVINO_SHAPES:
            self._requests.popitem(last=False)
        return request

    def __call__(self, image: torch.Tensor) -> Outputs:
        pixels = np.ascontiguousarray(image.cpu().numpy())
        results = self._request(tuple(pixels.shape)).infer({0: pixels})
        tensors = [torch.from_numpy(np.array(results[i])) for i in range(len(results))]
        return tensors[0], tensors[1] if len(tensors) > 1 else None


class TensorRTEngine:
    """TensorRT engine built from the ONNX graph; input shapes up to `max_size` (H, W), batch up to `max_batch`.

    Unmeasured: no GPU is lent to the CPU-only CI that wrote this; it follows TensorRT 10's
    name-based API (set_input_shape / set_tensor_address / execute_async_v3).
    """

    def __init__(
        self,
        graph: SegmentationGraph,
        device: torch.device,
        *,
        fp16: bool,
        opt_size: tuple[int, int] = (512, 1024),
        max_size: tuple[int, int] = (2048, 4096),
        max_batch: int = 4,
    ):
        try:
            import tensorrt as trt
        except ImportError:
            raise ConfigError("backend tensorrt needs the tensorrt package (pip install tensorrt) and CUDA") from None
        if device.type != "cuda":
            raise ConfigError("backend tensorrt runs on CUDA only; use device cuda or cuda:N")
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_bytes(graph.cpu())):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ConfigError(f"TensorRT cannot parse the exported graph: {errors}")
        config = builder.create_builder_config()
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        profile.set_shape("image", (1, 32, 32, 3), (1, *opt_size, 3), (max_batch, *max_size, 3))
        config.add_optimization_profile(profile)
        with torch.cuda.device(device):
            serialized = builder.build_serialized_network(network, config)
            if serialized is None:
                raise ConfigError("TensorRT failed to build an engine for the graph")
            self.engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
            self.context = self.engine.create_execution_context()
        self.outputs = ["labels"] if graph.mode == "cls" else ["labels", "confidence"]
        self.device = device

    @torch.inference_mode()
    def __call__(self, image: torch.Tensor) -> Outputs:
        image = image.to(self.device).contiguous()
        n, h, w, _ = image.shape
        self.context.set_input_shape("image", tuple(image.shape))
        self.context.set_tensor_address("image", image.data_ptr())
        labels = torch.empty((n, h, w), dtype=torch.uint8, device=self.device)
        confidence = torch.empty((n, h, w), dtype=torch.float32, device=self.device) if len(self.outputs) > 1 else None
        for name, tensor in zip(self.outputs, (labels, confidence), strict=False):
            self.context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        return labels, confidence
