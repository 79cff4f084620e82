"""`python -m razorfs.mount mount ...`: the daemon's own entry point (what `razorfs mount` starts
in the background), independent of the other subcommands of the `razorfs` CLI."""

from __future__ import annotations

import argparse
import sys

from razorfs.errors import run_subcommand
from razorfs.mount.commands import register


def main() -> int:
    parser = argparse.ArgumentParser(prog="razorfs")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args()
    return run_subcommand(args)


if __name__ == "__main__":
    sys.exit(main())
