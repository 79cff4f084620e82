"""The `razorfs` command line: mount, umount, flush, stats, status, warmup, check.

Bad arguments and failures end in one line on stderr and a non-zero exit code, never a
traceback. Each subcommand's work lives in the layer that owns it; this module only parses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from razorfs import __version__
from razorfs.errors import run_subcommand

EXAMPLES = """\
examples:
  razorfs mount s3://my-bucket/vol1 /mnt/vol1 --endpoint-url http://127.0.0.1:8333 --cache-dir /var/cache/razorfs/vol1
  razorfs status
  razorfs stats /mnt/vol1 --json
  razorfs warmup /mnt/vol1 datasets/train --recursive
  razorfs warmup /mnt/vol1 datasets/train --recursive --check
  razorfs flush /mnt/vol1
  razorfs umount /mnt/vol1
  razorfs check s3://my-bucket/vol1 --endpoint-url http://127.0.0.1:8333

read-only commands (stats, status, warmup --check) take --json.

exit codes:
  0    done
  1    the operation failed: no daemon for the mount or it died, S3 error, flush/umount timed out,
       status found a dead or unresponsive daemon
  2    bad usage (arguments, options)
  3    warmup --check: not everything under the paths is cached
  130  interrupted (Ctrl-C)
"""


def build_parser() -> argparse.ArgumentParser:
    from razorfs import check as check_command
    from razorfs.mount import commands as mount_commands

    parser = argparse.ArgumentParser(
        prog="razorfs",
        description="Mount an S3 bucket as a POSIX filesystem with a local write-back cache.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"razorfs {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    mount_commands.register(sub)
    check_command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run_subcommand(args)


if __name__ == "__main__":
    sys.exit(main())
