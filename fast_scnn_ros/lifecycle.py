"""`python -m fast_scnn_ros.lifecycle`: the lifecycle node, as lib/fast_scnn_ros/segmentation_lifecycle_node runs it.

Free of heavy imports, like __main__.py: signals while the node's modules import are held back (shutdown.run_main).
"""

from __future__ import annotations

import sys

from fast_scnn_ros.shutdown import run_main

if __name__ == "__main__":
    sys.exit(run_main("fast_scnn_ros.lifecycle_node"))
