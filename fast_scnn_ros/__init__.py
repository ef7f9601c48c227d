"""ROS 2 adapter for fast_scnn_core: sensor_msgs conversions and the segmentation node."""
