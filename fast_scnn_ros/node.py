"""SegmentationNode (`fast_scnn`): camera images in, Fast-SCNN labels, masks and visualisations out.

The subscription callbacks only validate a message's fields and keep each camera's newest frame; a
worker thread segments the newest frame of every camera and publishes, so latency stays bounded when
the cameras are faster than the model (older frames are dropped and counted). Outputs nobody
subscribes to are not computed, except labels. See docs/ros.md for the parameter and topic tables.

The node in parts (each its own module, the pure ones tested without a ROS graph):
- `params.py`: the parameter schema (engine options from InferenceConfig's fields) and the checks
  that turn values into settings;
- `pipeline.py`: the newest-frame mailbox per camera, statistics, bounded error text, memory release;
- `names.py`: topic names, the node's name and its diagnostic status names (no torch, no rclpy);
- `engine.py`: `Engine`, a loaded checkpoint (the one path: Segmenter.from_checkpoint);
- `camera_ring.py`: the ROS wiring (subscriptions, publishers, class_info, diagnostics timer, worker),
  created and destroyed as a unit;
- `diagnostics.py`: the /diagnostics statuses built from the cameras' statistics;
- `camera_info.py`, `conversions.py`: CameraInfo scaled to the output size, sensor_msgs <-> numpy;
- `shutdown.py`: how the process stops (first SIGINT or SIGTERM);
- here: `Segmentation`, which owns the parameters, the engine and the wiring, and the plain node.

The lifecycle seam: `Segmentation` has the steps of a managed node, and `SegmentationNode` runs
them all in its constructor. The lifecycle node (lifecycle_node.py, rclpy.lifecycle.LifecycleNode)
builds `Segmentation(self, managed=True)` in its constructor (declares the parameters, validates and
applies changes in every state) and maps its transitions one to one:

    on_configure  -> segmentation.configure()   load the checkpoint, build the engine
                                                 (FastSCNNError: fail the transition with str(exc))
    on_activate   -> segmentation.activate()    create subscriptions, publishers, timer, worker
    on_deactivate -> segmentation.deactivate()  destroy them; the engine stays loaded
    on_cleanup    -> segmentation.cleanup()     free the engine (and give its memory back)
    on_shutdown   -> segmentation.shutdown()    from any state: deactivate if active, then clean up
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter

from fast_scnn_core.errors import ConfigError, FastSCNNError
from fast_scnn_core.infer.options import InferenceConfig
from fast_scnn_ros.camera_ring import CameraRing, RingOptions, RingState
from fast_scnn_ros.engine import Engine
from fast_scnn_ros.names import NODE_NAME
from fast_scnn_ros.params import (
    SPECS,
    GroundSettings,
    OutputSettings,
    camera_names,
    check_choices,
    engine_config,
    ground_settings,
    output_settings,
    parameter_specs,
    with_defaults,
)
from fast_scnn_ros.pipeline import release_memory, reuse_frame_buffers
from fast_scnn_ros.shutdown import StopRequested, stop_on_first_signal, stopped_by_signal


@dataclass(frozen=True)
class Change:
    """A validated parameter change, ready to apply: the values it was checked for and what they build."""

    changes: dict[str, Any]
    config: InferenceConfig
    engine: Engine | None  # None while no engine is loaded (a lifecycle node before configure)
    outputs: OutputSettings | None


class Segmentation:
    """The node's parameters, engine and ROS wiring, brought up in the steps of a managed node (module docstring)."""

    def __init__(self, node: Node, managed: bool = False) -> None:
        """Declare the parameters on `node`; `managed`: a lifecycle node (read-only ones set while unconfigured)."""
        self.node = node
        for spec in parameter_specs():
            node.declare_parameter(spec.name, spec.default, spec.descriptor(managed))
        self.engine: Engine | None = None
        self.outputs: OutputSettings | None = None
        self.ground: GroundSettings | None = None
        self.ring: CameraRing | None = None
        self._pending: Change | None = None
        # rclpy: the first validates a change (and may refuse it with a reason), the second applies it.
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    def values(self, changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every parameter's value, with pending `changes` applied."""
        changes = changes or {}
        return with_defaults(
            {name: changes[name] if name in changes else self.node.get_parameter_or(name).value for name in SPECS}
        )

    def configure(self) -> None:
        """Check every parameter, load the checkpoint and build the engine; FastSCNNError says why it cannot."""
        values = self.values()
        check_choices(values)
        camera_names(values)
        start = perf_counter()
        engine = Engine.load(engine_config(values))
        self.outputs = output_settings(values, engine.classes)
        self.ground = ground_settings(values, engine.classes, max(len(camera_names(values)), 1))
        self.engine = engine
        segmenter = engine.segmenter
        self.node.get_logger().info(
            f"configured: loaded {engine.config.checkpoint} ({segmenter.backend} {segmenter.precision} on "
            f"{segmenter.device}{'; ' + segmenter.choice.reason if segmenter.choice.reason else ''}) "
            f"in {perf_counter() - start:.1f} s"
        )

    def activate(self) -> None:
        """Create the subscriptions, publishers, diagnostics timer and worker (the engine is loaded)."""
        if self.engine is None or self.outputs is None:
            raise RuntimeError("activate() before configure()")
        values = self.values()
        self.ring = CameraRing(
            self.node,
            camera_names(values),
            RingOptions.from_values(values),
            RingState(self.engine, self.outputs),
            self.ground,
        )

    def deactivate(self) -> None:
        """Stop the worker (finishing the frame in flight) and destroy the wiring; the engine stays loaded."""
        ring, self.ring = self.ring, None
        if ring is not None:
            ring.destroy()

    def cleanup(self) -> None:
        """Free the engine and give its memory back."""
        self.engine = self.outputs = self.ground = None
        release_memory()

    def shutdown(self) -> None:
        """From any state: deactivate, then clean up."""
        self.deactivate()
        self.cleanup()

    # ---- runtime parameter changes: validate, then apply -----------------------------------------

    def _prepare(self, changes: dict[str, Any]) -> Change:
        """Check the values as they would be after `changes`; a changed engine option builds the new engine here
        (e.g. device:=cuda:7 is refused with its reason while the running engine goes on)."""
        engine = self.engine
        fixed = [name for name in changes if SPECS[name].read_only]
        if fixed and engine is not None:  # only a lifecycle node gets here: rclpy refuses them in the plain node
            raise ConfigError(
                f"parameter {fixed[0]!r} can be set only while the node is unconfigured: `ros2 lifecycle set "
                f"{self.node.get_fully_qualified_name()} cleanup`, set it, then configure"
            )
        values = self.values(changes)
        check_choices({name: values[name] for name in changes})
        camera_names(values)
        config = engine_config(values)
        if engine is None:
            return Change(changes, config, None, None)
        if config != engine.config:
            engine = Engine.load(config)
        return Change(changes, config, engine, output_settings(values, engine.classes))

    def _validate(self, parameters: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in parameters}
        try:
            self._pending = self._prepare(changes)
        except (FastSCNNError, ValueError) as exc:
            self._pending = None
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply(self, parameters: list[Parameter]) -> None:
        change, self._pending = self._pending, None
        if change is None or change.changes != {p.name: p.value for p in parameters}:
            return  # not the change validated last (another callback refused it): nothing of it was kept
        if change.engine is None:
            return  # no engine yet: configure() reads the parameters
        self.engine, self.outputs = change.engine, change.outputs
        if self.ring is not None:
            self.ring.update(RingState(change.engine, change.outputs))


class SegmentationNode(Node):
    """Fast-SCNN semantic segmentation of a camera (or a camera ring); see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self.segmentation = Segmentation(self)
            self.segmentation.configure()
            self.segmentation.activate()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop the worker (finishing the frame in flight), free the engine and destroy the node."""
        close_node(self)


def close_node(node: Node) -> None:
    """Stop the worker of a node built on Segmentation (finishing the frame in flight), free its engine, destroy it."""
    segmentation = getattr(node, "segmentation", None)
    if segmentation is not None:
        segmentation.shutdown()
    node.destroy_node()


def spin(make_node: Callable[[], Node], args: list[str] | None = None) -> int:
    """Run the node `make_node` builds until SIGINT or SIGTERM (exit status 0), or 2 with a one-line reason when
    it cannot start; the process of either executable."""
    stop_on_first_signal()
    reuse_frame_buffers()
    node = None
    try:
        rclpy.init(args=args)
        node = make_node()
        rclpy.spin(node)
    except (FastSCNNError, ParameterException) as exc:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        return 2
    except (StopRequested, ExternalShutdownException):
        pass
    except Exception:
        if not stopped_by_signal():
            raise
        # rclpy's handler shut the context down while the node was being built (RCLError): that is the stop
    finally:
        if node is not None:
            close_node(node)
        rclpy.try_shutdown()
    return 0


def main(args: list[str] | None = None) -> int:
    """`ros2 run fast_scnn_ros segmentation_node`."""
    return spin(SegmentationNode, args)


if __name__ == "__main__":
    sys.exit(main())
