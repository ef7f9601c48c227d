"""ROS 2 adapter for fast_scnn_core: the segmentation node and its parts (module map: node.py's docstring);
tools/ starts the node as a process and talks to it."""
