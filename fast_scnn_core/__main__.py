"""`python -m fast_scnn_core` is the `fast-scnn` command."""

import sys

from fast_scnn_core.cli import main

sys.exit(main())
