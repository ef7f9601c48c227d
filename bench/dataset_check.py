"""Cost of the dataset check `fast-scnn train` makes before writing anything, against decoding.

`check_headers` reads each pair's sizes and label mode from the PNG headers. This writes one
Cityscapes-size pair (2048x1024 image and labelIds), copies it --pairs times, and times the check
(three passes, page cache warm after the first) and the decoding of 50 pairs with cv2.

    python bench/dataset_check.py --pairs 3000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fast_scnn_core.data.dataset import Pair, check_headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(0)
        cv2.imwrite(str(root / "image.png"), rng.integers(0, 256, (1024, 2048, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "label.png"), rng.integers(0, 34, (1024, 2048), dtype=np.uint8))
        pairs = [Pair(root / f"{k}_leftImg8bit.png", root / f"{k}_gtFine_labelIds.png") for k in range(args.pairs)]
        for pair in pairs:
            shutil.copy(root / "image.png", pair.image)
            shutil.copy(root / "label.png", pair.label)
        for _ in range(3):
            start = time.perf_counter()
            check_headers(pairs)
            seconds = time.perf_counter() - start
            print(f"check_headers: {len(pairs)} pairs in {seconds:.3f} s ({1e6 * seconds / len(pairs):.0f} us a pair)")
        start = time.perf_counter()
        for pair in pairs[:50]:
            cv2.imread(str(pair.image), cv2.IMREAD_COLOR)
            cv2.imread(str(pair.label), cv2.IMREAD_UNCHANGED)
        seconds = time.perf_counter() - start
        print(f"decoding with cv2: 50 pairs in {seconds:.2f} s ({1e3 * seconds / 50:.0f} ms a pair)")


if __name__ == "__main__":
    main()
