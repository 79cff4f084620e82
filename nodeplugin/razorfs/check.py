"""`razorfs check s3://BUCKET[/PREFIX]`: a round trip through the bucket (list, put, head with
metadata, ranged get, copy, delete) that prints each step with ✓/✗ and, on failure, one
diagnosis a user can act on (bad credentials, no such bucket, endpoint unreachable, access
denied). Exit 0 when every step passed, 1 otherwise; never a traceback, never a secret. A command
above the layers: it drives the object store (`razorfs.store`) as the CLI's other commands drive
the mount daemon."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from razorfs.errors import UsageError
from razorfs.store.errors import (
    AccessDenied,
    BucketNotFound,
    InvalidCredentials,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
    Throttled,
    TlsFailure,
)
from razorfs.store.location import S3Url, parse_s3_url
from razorfs.store.retry import RetryPolicy
from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import S3Settings

# A user waiting on `check` wants a verdict in seconds, not the daemon's patient retry budget.
CHECK_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.2, max_delay_s=1.0)
PROBE_BYTES = 4096
CHECK_METADATA = {"mode": "33188", "razorfs-check": "1"}


class CheckFailed(Exception):
    """A step saw something other than what it wrote (content or metadata mismatch)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="round-trip test of a bucket: list, put, head, ranged get, copy, delete",
        description="Writes, reads, copies and deletes two small objects under the prefix and "
        "says what is wrong if a step fails. Credentials come from the standard AWS chain "
        "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile, instance role).",
        epilog="example:\n  razorfs check s3://my-bucket/vol1 --endpoint-url http://127.0.0.1:8333",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="s3://BUCKET[/PREFIX]")
    parser.add_argument("--endpoint-url", help="S3 endpoint, e.g. http://127.0.0.1:8333 (default: AWS)")
    parser.add_argument("--region")
    parser.add_argument("--force-path-style", action="store_true", help="path-style bucket addressing")
    parser.add_argument("--ca-bundle", help="PEM file of CAs to trust for the endpoint")
    parser.add_argument("--sse", choices=["AES256", "aws:kms"], help="server-side encryption for the probe")
    parser.add_argument("--sse-kms-key-id")
    parser.set_defaults(run=run_check)


@dataclass(frozen=True)
class Step:
    name: str
    action: Callable[[], str]  # returns a short detail for the ✓ line


def run_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    location = parse_s3_url(args.url)  # InvalidS3Url for a bad URL, printed by the CLI
    if args.sse_kms_key_id and args.sse != "aws:kms":
        raise UsageError("--sse-kms-key-id needs --sse aws:kms")
    settings = S3Settings(
        bucket=location.bucket,
        endpoint_url=args.endpoint_url,
        region=args.region,
        force_path_style=bool(args.force_path_style),
        ca_bundle=Path(args.ca_bundle) if args.ca_bundle else None,
        sse=args.sse,
        sse_kms_key_id=args.sse_kms_key_id,
        connect_timeout_s=3.0,
        read_timeout_s=15.0,
        retry=CHECK_RETRY,
    )
    return check_store(S3Store(settings), location, args.endpoint_url, out)


def check_store(store: S3Store, location: S3Url, endpoint_url: str | None, out: TextIO | None = None) -> int:
    stream = out if out is not None else sys.stdout
    probe_key = location.key_for(f".razorfs-check-{uuid.uuid4().hex[:12]}")
    copy_key = probe_key + ".copy"
    data = os.urandom(PROBE_BYTES)

    def list_bucket() -> str:
        page = next(iter(store.list_pages(location.prefix, delimiter="/")))
        n = len(page.objects) + len(page.prefixes)
        return f"{n}{'+' if n >= 1000 else ''} entries under {location.url}"

    def put() -> str:
        store.put_bytes(probe_key, data, CHECK_METADATA)
        return f"{probe_key} ({PROBE_BYTES} bytes)"

    def head() -> str:
        info = store.head(probe_key)
        if info.size != PROBE_BYTES:
            raise CheckFailed(f"head says {info.size} bytes, {PROBE_BYTES} were written")
        missing = {k: v for k, v in CHECK_METADATA.items() if info.metadata.get(k) != v}
        if missing:
            raise CheckFailed(f"user metadata did not round-trip: sent {CHECK_METADATA}, got {dict(info.metadata)}")
        return f"size {info.size}, metadata {dict(info.metadata)}"

    def ranged_get() -> str:
        start, length = 1000, 1500
        got = store.get_range(probe_key, start, length)
        if got != data[start : start + length]:
            raise CheckFailed(f"bytes {start}-{start + length - 1} differ from what was written")
        return f"bytes {start}-{start + length - 1} match"

    def copy() -> str:
        store.copy(probe_key, copy_key)
        if store.get_range(copy_key, 0, PROBE_BYTES) != data:
            raise CheckFailed("the server-side copy's bytes differ from the original")
        return f"{probe_key} -> {copy_key}"

    def delete() -> str:
        store.delete_many([probe_key, copy_key])
        try:
            store.head(probe_key)
        except ObjectNotFound:
            return "both objects gone"
        raise CheckFailed(f"{probe_key} is still there after delete")

    steps = [
        Step("list bucket", list_bucket),
        Step("put object", put),
        Step("head with metadata", head),
        Step("ranged get", ranged_get),
        Step("server-side copy", copy),
        Step("delete", delete),
    ]
    where = endpoint_url or "AWS"
    print(f"checking {location.url} at {where}", file=stream)
    for index, step in enumerate(steps):
        started = time.monotonic()
        try:
            detail = step.action()
        except (StoreError, CheckFailed) as err:
            print(f"  ✗ {step.name}: {err}", file=stream)
            print(f"diagnosis: {diagnose(err, location, where)}", file=stream)
            if index >= 1:  # something may have been written: leave nothing behind
                _remove_quietly(store, [probe_key, copy_key])
            return 1
        elapsed_ms = (time.monotonic() - started) * 1000
        print(f"  ✓ {step.name}: {detail} ({elapsed_ms:.0f} ms)", file=stream)
    print(f"all {len(steps)} steps passed: {location.url} is usable", file=stream)
    return 0


def diagnose(err: Exception, location: S3Url, where: str) -> str:
    if isinstance(err, InvalidCredentials):
        return (
            "the S3 credentials were rejected (unknown access key or wrong secret); check "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS profile in use"
        )
    if isinstance(err, BucketNotFound):
        return f"bucket {location.bucket!r} does not exist at {where}; create it or fix the URL"
    if isinstance(err, AccessDenied):
        return (
            f"the credentials are valid but not allowed to do this on {location.url}; "
            "grant s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on it"
        )
    if isinstance(err, Throttled):
        return f"{where} keeps throttling requests (SlowDown); try again later"
    if isinstance(err, TlsFailure):
        return (
            f"the TLS certificate of {where} is not trusted or does not match its address; "
            "pass the CA that signed it with --ca-bundle FILE"
        )
    if isinstance(err, StoreUnavailable):
        return (
            f"the endpoint {where} is unreachable or failing; check --endpoint-url, the network, "
            "and for https the certificate (--ca-bundle)"
        )
    if isinstance(err, CheckFailed):
        return "the server accepted the requests but returned different data; it is not a faithful S3"
    return f"the server refused the round trip ({type(err).__name__})"


def _remove_quietly(store: S3Store, keys: list[str]) -> None:
    with contextlib.suppress(StoreError):  # the failure already reported is the one that matters
        store.delete_many(keys)
