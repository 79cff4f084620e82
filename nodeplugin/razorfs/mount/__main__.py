"""`python -m razorfs.mount mount ...`: the daemon's own entry point (what `razorfs mount` starts
in the background), independent of the other subcommands of the `razorfs` CLI."""

from __future__ import annotations

import argparse
import sys

from razorfs.errors import UsageError
from razorfs.mount.commands import register
from razorfs.store.errors import StoreError


def main() -> int:
    parser = argparse.ArgumentParser(prog="razorfs")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args()
    try:
        return int(args.run(args) or 0)
    except UsageError as err:
        print(f"razorfs {args.command}: {err}", file=sys.stderr)
        return err.exit_code
    except StoreError as err:
        print(f"razorfs {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"razorfs {args.command}: {err.strerror or err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
