"""SegmentationLifecycleNode (`fast_scnn`, managed): the segmentation node brought up by a lifecycle manager.

Same parameters, topics and code as the plain node (node.py's `Segmentation`); the node starts
unconfigured and each transition is one step of `Segmentation`:

    configure   load the checkpoint, build the engine; FAILURE with the reason logged on one line
                when it cannot (the node stays unconfigured: fix the parameter, configure again)
    activate    create the subscriptions, publishers, diagnostics timer and worker (camera_ring.py)
    deactivate  destroy them; the engine stays loaded, so activate again needs no reload
    cleanup     free the engine
    shutdown    from any state: deactivate if active, then clean up

Publishers are plain ones created at activate and destroyed at deactivate, not rclpy's lifecycle
publishers created at configure: the subscriptions must come and go with activation anyway (rclpy
has no lifecycle subscription), the camera ring is one unit that creates both (the plain node's
code, unchanged), the output publishers follow runtime parameters (mask_classes, publish_*), and an
inactive node then has no output topics in the graph rather than publishers that drop every message.

Parameters: the plain node's read-only ones (checkpoint, cameras, QoS, ...) can be set while the node
is unconfigured and are refused with the reason once configured; the runtime ones are validated and
applied in every state (while inactive a changed engine option builds the new engine at once).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from fast_scnn_core.errors import FastSCNNError
from fast_scnn_ros.names import NODE_NAME
from fast_scnn_ros.node import Segmentation, close_node, spin
from fast_scnn_ros.pipeline import bounded


class SegmentationLifecycleNode(LifecycleNode):
    """Fast-SCNN semantic segmentation as a managed node; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self.segmentation = Segmentation(self, managed=True)
        except BaseException:
            self.destroy_node()
            raise
        self.get_logger().info(
            f"unconfigured: `ros2 lifecycle set {self.get_fully_qualified_name()} configure` loads the checkpoint"
        )

    def close(self) -> None:
        """Stop the worker (finishing the frame in flight), free the engine and destroy the node."""
        close_node(self)

    def _transition(self, name: str, step: Callable[[], None], done: str = "") -> TransitionCallbackReturn:
        """Run one step and log `done`: FAILURE when it cannot be done (FastSCNNError: the node stays where it
        was), ERROR for anything else (rclpy then calls on_error); either way the reason is logged on one line."""
        try:
            step()
        except FastSCNNError as exc:
            self._log_failure(name, str(exc))
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:
            self._log_failure(name, f"{type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.ERROR
        if done:
            self.get_logger().info(done)
        return TransitionCallbackReturn.SUCCESS

    def _log_failure(self, transition: str, reason: str) -> None:
        self.get_logger().error(f"{transition} failed: {bounded(' '.join(reason.split()))}")  # one line

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("configure", self.segmentation.configure)  # it logs what it loaded

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("activate", self.segmentation.activate)  # the ring logs what it segments

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        done = "deactivated: subscriptions and publishers destroyed, the engine stays loaded"
        return self._transition("deactivate", self.segmentation.deactivate, done)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("cleanup", self.segmentation.cleanup, "cleaned up: engine freed")

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self._transition("shutdown", self.segmentation.shutdown, "shut down: finalized")

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """After a transition raised: release everything, so the node is unconfigured again (SUCCESS)."""
        return self._transition("error processing", self.segmentation.shutdown)


def main(args: list[str] | None = None) -> int:
    """`ros2 run fast_scnn_ros segmentation_lifecycle_node`."""
    return spin(SegmentationLifecycleNode, args)


if __name__ == "__main__":
    sys.exit(main())
