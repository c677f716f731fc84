"""`pose-ros` command line: the ROS-free entry point to pose_ros.core."""
from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pose-ros", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print the package version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "version":
        print("pose_ros 0.1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
