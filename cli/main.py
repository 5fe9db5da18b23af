"""`arsample` command line: generate, decode, convert, demo, bench, train."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import ARSampleError
from . import bench, convert, decode, demo, generate, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="arsample",
        description="Entropy-informed sampling for autoregressive image models (LlamaGen).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (generate, decode, convert, demo, bench, train):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (2 for bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except ARSampleError as exc:
        print(f"arsample {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
