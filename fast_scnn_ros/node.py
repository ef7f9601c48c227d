"""Placeholder for the segmentation node (implemented by its own issue)."""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> int:
    print("segmentation_node: not implemented yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
