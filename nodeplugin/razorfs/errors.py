"""The error the commands (the mount daemon's and `razorfs check`) raise to say a user asked for
something impossible (bad argument, non-empty mountpoint, unknown mount), and the CLI boundary
that prints it, a malformed s3:// URL and the store's typed errors as one line with an exit code.
The layers below the mount daemon never raise it: they raise their own errors, mapped here once."""

from __future__ import annotations

import argparse
import sys

from razorfs.store.errors import StoreError
from razorfs.store.location import InvalidS3Url

USAGE_EXIT_CODE = 2


class UsageError(Exception):
    def __init__(self, message: str, exit_code: int = USAGE_EXIT_CODE):
        super().__init__(message)
        self.exit_code = exit_code


def run_subcommand(args: argparse.Namespace) -> int:
    """The CLI boundary: runs a parsed subcommand and turns every expected failure into one line
    on stderr and an exit code, never a traceback."""
    try:
        return int(args.run(args) or 0)
    except UsageError as err:
        print(f"razorfs {args.command}: {err}", file=sys.stderr)
        return err.exit_code
    except InvalidS3Url as err:
        print(f"razorfs {args.command}: {err}", file=sys.stderr)
        return USAGE_EXIT_CODE
    except StoreError as err:
        print(f"razorfs {args.command}: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"razorfs {args.command}: {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
