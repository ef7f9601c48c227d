"""The network (paper Tables 1-3), BatchNorm folding, checkpoints, FLOPs and the import of published weights.

`fast_scnn_core.model.FastSCNN` is the class users import; it lives in `network`.
"""

from fast_scnn_core.model.network import FastSCNN

__all__ = ["FastSCNN"]
