"""Write a synthetic stand-in for MHIST in the real download's layout (annotations.csv + PNGs).

    python scripts/make_mhist_standin.py FOLDER [--full | --fraction F] [--seed S] [--layout images|flat|zip]

Default: the small set (a tenth of the official counts, 316 images); --full writes all 3,152. The images are
synthetic H&E-like patches whose class (HP vs SSA) lives in gland shape (see `jaxdistill.data.mhist_standin`);
they are for tests, CI and CPU demos, never for reporting results on MHIST.
"""
from __future__ import annotations

import argparse
import sys
import time

from jaxdistill.data.mhist_standin import LAYOUTS, write_mhist_standin
from jaxdistill.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="where annotations.csv and the images go (created if missing)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="the official counts: 3,152 images")
    size.add_argument("--fraction", type=float, help="this fraction of the official counts (at least 3 per class "
                                                     "and partition)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=LAYOUTS, default="images",
                        help="images/ subfolder (default), PNGs next to the CSV, or images.zip")
    args = parser.parse_args(argv)
    scale = "full" if args.full else args.fraction if args.fraction is not None else "small"
    start = time.perf_counter()
    try:
        summary = write_mhist_standin(args.folder, scale=scale, seed=args.seed, layout=args.layout)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for part, counts in summary["counts"].items():
        print(f"{part:5s}  " + "  ".join(f"{name} {count}" for name, count in counts.items()))
    print(f"{summary['num_images']} images ({summary['layout']} layout, seed {summary['seed']}) in "
          f"{summary['folder']}, {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
