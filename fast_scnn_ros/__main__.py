"""`python -m fast_scnn_ros`: the segmentation node, as lib/fast_scnn_ros/segmentation_node runs it.

Signals while the node's modules import are held back (shutdown.run_main).
"""

from __future__ import annotations

import sys

from fast_scnn_ros.shutdown import run_main

if __name__ == "__main__":
    sys.exit(run_main("fast_scnn_ros.node"))
