"""Ground-plane projection: a camera's labels, through its camera model and pose, onto the ground (z = 0 of
the base frame, REP-120) as what a planner consumes: an occupancy grid and obstacle/free-space points.

- `camera`: the pinhole camera model of a CameraInfo's fields (K, D, binning, ROI), scaled to the labels;
- `pose`: the camera's optical frame in the base frame (from tf2 or parameters);
- `grid`: the grid's extents and the class -> cost table;
- `projection`: `GroundProjector` (the backward table cell -> pixel, rebuilt only when the camera model
  or pose change; per frame a gather) and `GroundProjectors`, the per-camera cache.

numpy and OpenCV only: no ROS, no torch. The node (fast_scnn_ros/ground.py) wires it.
"""
