"""Fast-SCNN core: model, data, training, evaluation, inference, export and benchmark (no ROS imports)."""

__version__ = "0.1.0"
