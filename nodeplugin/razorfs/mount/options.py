"""`MountOptions`: what `razorfs mount` was asked to do, validated once, and the argparse
arguments that produce it (shared by the CLI and anyone building a mount command line)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from razorfs.errors import UsageError
from razorfs.fs.operations import DEFAULT_FSYNC_TIMEOUT_S
from razorfs.log_format import add_log_format_argument
from razorfs.store.location import S3Url, parse_s3_url
from razorfs.store.object_attrs import AttrDefaults
from razorfs.store.s3_credentials import CREDENTIAL_SOURCES, WebIdentity
from razorfs.volume_spec import CACHE_MODES, parse_duration, parse_mode, parse_size

DEFAULT_CACHE_SIZE = "10GiB"
DEFAULT_METADATA_TTL = "1s"
# How long fsync() waits for its upload while S3 keeps failing before it returns EIO ("0" or
# "block": as long as it takes). The data stays dirty and is uploaded once S3 answers.
DEFAULT_FSYNC_TIMEOUT = f"{DEFAULT_FSYNC_TIMEOUT_S:g}s"
FSYNC_BLOCK = "block"


@dataclass(frozen=True)
class MountOptions:
    location: S3Url
    mountpoint: Path
    cache_dir: Path
    endpoint_url: str | None
    region: str | None
    force_path_style: bool
    ca_bundle: Path | None
    sse: str | None
    sse_kms_key_id: str | None
    cache_size_bytes: int
    cache_mode: str
    metadata_ttl_s: float
    defaults: AttrDefaults
    allow_other: bool
    metrics_port: int | None
    foreground: bool
    local_store: Path | None  # objects in a local directory instead of S3 (demo, tests)
    # "explicit": sign only with the keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and those
    # the control socket's `credentials` op delivers later); never boto3's default chain.
    # "web-identity": only the keys STS issues for `web_identity`'s token file.
    credential_source: str = "default-chain"
    web_identity: WebIdentity | None = None
    log_format: str = "text"
    # Labels of the volume's logs and metrics: "NAMESPACE/NAME" of its RazorVolume (or any name
    # the user picks; default the s3:// URL) and the node it runs on. Never a secret.
    volume_name: str = ""
    node_name: str = ""
    # --fsync-timeout (default DEFAULT_FSYNC_TIMEOUT); None: fsync() waits until the upload succeeds.
    fsync_timeout_s: float | None = DEFAULT_FSYNC_TIMEOUT_S

    @property
    def volume_label(self) -> str:
        return self.volume_name or self.location.url


# The web identity flags (a `pod`-authenticated volume's daemon): one spelling for the CLI and the
# node plugin, which builds and rewrites these arguments.
CREDENTIAL_SOURCE_FLAG = "--credential-source"
ROLE_ARN_FLAG = "--role-arn"
TOKEN_FILE_FLAG = "--web-identity-token-file"
STS_ENDPOINT_FLAG = "--sts-endpoint"
ROLE_SESSION_NAME_FLAG = "--role-session-name"


def add_mount_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", metavar="s3://BUCKET[/PREFIX]")
    parser.add_argument("mountpoint", metavar="MOUNTPOINT")
    parser.add_argument("--endpoint-url", help="S3 endpoint, e.g. http://127.0.0.1:8333")
    parser.add_argument("--cache-dir", required=True, help="local cache directory (one live daemon each)")
    parser.add_argument("--region")
    parser.add_argument("--force-path-style", action="store_true", help="path-style bucket addressing")
    parser.add_argument("--ca-bundle", help="PEM file of CAs to trust for the endpoint")
    parser.add_argument("--sse", choices=["AES256", "aws:kms"], help="server-side encryption")
    parser.add_argument("--sse-kms-key-id")
    parser.add_argument("--cache-size", default=DEFAULT_CACHE_SIZE, help="cache byte limit (default 10GiB)")
    parser.add_argument("--cache-mode", default="writeback", choices=CACHE_MODES)
    parser.add_argument("--metadata-ttl", default=DEFAULT_METADATA_TTL, help="listing/attribute TTL (default 1s)")
    parser.add_argument(
        "--fsync-timeout",
        default=DEFAULT_FSYNC_TIMEOUT,
        metavar="DURATION|block",
        help="fsync() returns EIO after waiting this long while uploads to S3 keep failing; the data stays "
        f"dirty and is uploaded later (default {DEFAULT_FSYNC_TIMEOUT}; 0 or {FSYNC_BLOCK}: wait however long)",
    )
    parser.add_argument("--uid", type=int, default=0, help="owner of objects without uid metadata")
    parser.add_argument("--gid", type=int, default=0, help="group of objects without gid metadata")
    parser.add_argument("--file-mode", default="0644", help="mode of files without mode metadata")
    parser.add_argument("--dir-mode", default="0755", help="mode of directories without mode metadata")
    parser.add_argument("--read-only", action="store_true", help="same as --cache-mode readonly")
    parser.add_argument("--allow-other", action="store_true", help="let other users access the mount")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    parser.add_argument("--foreground", action="store_true", help="stay in the foreground (no daemon)")
    add_log_format_argument(parser)
    parser.add_argument(
        "--volume-name",
        default="",
        metavar="NAMESPACE/NAME",
        help="the volume's name in logs and metrics (the CSI plugin passes its volume id; default: the URL)",
    )
    parser.add_argument(
        "--node-name", default=os.environ.get("NODE_ID", ""), help="the node's name in logs and metrics (env NODE_ID)"
    )
    parser.add_argument("--local-store", help=argparse.SUPPRESS)
    parser.add_argument(
        CREDENTIAL_SOURCE_FLAG,
        choices=CREDENTIAL_SOURCES,
        default="default-chain",
        help="default-chain: boto3's usual chain (environment, config files, instance metadata); "
        "explicit: only AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY[/AWS_SESSION_TOKEN] of the "
        "environment, nothing else (the CSI plugin's choice); web-identity: only the keys STS "
        "issues for --web-identity-token-file (AssumeRoleWithWebIdentity of --role-arn)",
    )
    parser.add_argument(ROLE_ARN_FLAG, help="with web-identity: the IAM role to assume")
    parser.add_argument(
        TOKEN_FILE_FLAG,
        metavar="PATH",
        help="with web-identity: the file holding the ServiceAccount token, read again at every refresh",
    )
    parser.add_argument(STS_ENDPOINT_FLAG, metavar="URL", help="with web-identity: the STS endpoint")
    parser.add_argument(ROLE_SESSION_NAME_FLAG, help="with web-identity: the role session name (default razorfs)")


def mount_options_from_args(args: argparse.Namespace) -> MountOptions:
    try:
        cache_size = parse_size(args.cache_size)
        ttl = parse_duration(args.metadata_ttl)
        fsync_timeout = parse_fsync_timeout(args.fsync_timeout)
        file_mode = parse_mode(args.file_mode)
        dir_mode = parse_mode(args.dir_mode)
    except ValueError as err:
        raise UsageError(str(err)) from err
    if cache_size < 64 * 1024 * 1024:
        raise UsageError(f"--cache-size {args.cache_size} is too small: at least 64MiB")
    if args.sse_kms_key_id and args.sse != "aws:kms":
        raise UsageError("--sse-kms-key-id needs --sse aws:kms")
    if not args.endpoint_url and not args.region and not args.local_store:
        # boto3 would pick a region from its chain; nothing to refuse here.
        pass
    return MountOptions(
        location=parse_s3_url(args.url),
        mountpoint=Path(args.mountpoint).absolute(),
        cache_dir=Path(args.cache_dir).absolute(),
        endpoint_url=args.endpoint_url,
        region=args.region,
        force_path_style=bool(args.force_path_style),
        ca_bundle=Path(args.ca_bundle) if args.ca_bundle else None,
        sse=args.sse,
        sse_kms_key_id=args.sse_kms_key_id,
        cache_size_bytes=cache_size,
        cache_mode="readonly" if args.read_only else args.cache_mode,
        metadata_ttl_s=ttl,
        defaults=AttrDefaults(uid=args.uid, gid=args.gid, file_mode=file_mode, dir_mode=dir_mode),
        allow_other=bool(args.allow_other),
        metrics_port=args.metrics_port,
        foreground=bool(args.foreground),
        local_store=Path(args.local_store).absolute() if args.local_store else None,
        credential_source=args.credential_source,
        web_identity=web_identity_from_args(args),
        log_format=args.log_format,
        volume_name=args.volume_name,
        node_name=args.node_name,
        fsync_timeout_s=fsync_timeout,
    )


def web_identity_from_args(args: argparse.Namespace) -> WebIdentity | None:
    """The web identity of `--credential-source web-identity` (role and token file required, STS
    endpoint and session name optional); its flags are refused with any other source."""
    given = [
        flag
        for flag, value in (
            (ROLE_ARN_FLAG, args.role_arn),
            (TOKEN_FILE_FLAG, args.web_identity_token_file),
            (STS_ENDPOINT_FLAG, args.sts_endpoint),
            (ROLE_SESSION_NAME_FLAG, args.role_session_name),
        )
        if value
    ]
    if args.credential_source != "web-identity":
        if given:
            raise UsageError(f"{' and '.join(given)} need {CREDENTIAL_SOURCE_FLAG} web-identity")
        return None
    missing = [flag for flag in (ROLE_ARN_FLAG, TOKEN_FILE_FLAG) if flag not in given]
    if missing:
        raise UsageError(f"{CREDENTIAL_SOURCE_FLAG} web-identity needs {' and '.join(missing)}")
    if args.sts_endpoint and not args.sts_endpoint.startswith(("http://", "https://")):
        raise UsageError(f"{STS_ENDPOINT_FLAG} must be an http(s) URL")
    try:
        return WebIdentity(
            token_file=Path(args.web_identity_token_file).absolute(),
            role_arn=args.role_arn,
            sts_endpoint_url=args.sts_endpoint or None,
            region=args.region,
            session_name=args.role_session_name or "razorfs",
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def parse_fsync_timeout(text: str) -> float | None:
    """Seconds from `--fsync-timeout`; None for "block" or 0 (fsync waits for S3 however long)."""
    if text.strip().lower() == FSYNC_BLOCK:
        return None
    seconds = parse_duration(text)
    return seconds if seconds > 0 else None


class _RaisingParser(argparse.ArgumentParser):
    """Mount arguments that come from another program (the node plugin): errors raise, never exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_mount_argv(argv: list[str]) -> MountOptions:
    """`["mount", URL, MOUNTPOINT, ...]` as MountOptions: how the plugin and a handed-over daemon
    read one mount's arguments the same way. Raises UsageError (or InvalidS3Url)."""
    if argv[:1] != ["mount"]:
        raise UsageError(f"mount arguments start with `mount`, not {argv[:1]}")
    parser = _RaisingParser(prog="razorfs mount")
    add_mount_arguments(parser)
    return mount_options_from_args(parser.parse_args(argv[1:]))
