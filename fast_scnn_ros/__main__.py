"""`python -m fast_scnn_ros`: the segmentation node, as lib/fast_scnn_ros/segmentation_node runs it.

SIGINT and SIGTERM are held back while the node's modules import (torch and rclpy take seconds on a
small CPU) and delivered once the node's handling is in place, so Ctrl-C while the node is still
starting ends it quietly with status 0 as well.
"""

from __future__ import annotations

import signal
import sys

from fast_scnn_ros.shutdown import STOP_SIGNALS, StopRequested, stop_on_first_signal


def run() -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    from fast_scnn_ros.node import main

    stop_on_first_signal()
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a signal held back is delivered now
        return main()
    except StopRequested:  # before main() took over
        return 0


if __name__ == "__main__":
    sys.exit(run())
