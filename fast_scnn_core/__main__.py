"""`python -m fast_scnn_core` is the `fast-scnn` command."""

import sys

from fast_scnn_core.cli import main

# Guarded: a worker process of `fast-scnn label-bags` (multiprocessing's spawn) imports this module again.
if __name__ == "__main__":
    sys.exit(main())
