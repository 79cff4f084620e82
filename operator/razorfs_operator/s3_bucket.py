"""The operator's view of a volume's S3 location, through boto3: is the bucket reachable and the
prefix writable, how much is stored under the prefix (bounded listing), and deleting everything
under the prefix in batches. Calls block; callers run them on the worker pool. botocore failures
become the typed errors of razorfs_operator.errors here and nowhere else."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from razorfs.volume_spec import S3Location, VolumeUsage

from .credentials import S3Credentials
from .errors import (
    AccessDenied,
    BucketNotFound,
    CredentialsRejected,
    S3RequestFailed,
    S3Unreachable,
    VolumeProblem,
)

DELETE_BATCH_KEYS = 1000  # the most DeleteObjects accepts per request
LIST_PAGE_KEYS = 1000
PROBE_KEY_NAME = ".razorfs-write-check"

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AuthorizationHeaderMalformed",
}
_DENIED_CODES = {"AccessDenied", "Forbidden", "AllAccessDisabled"}
_MISSING_BUCKET_CODES = {"NoSuchBucket", "404", "NotFound"}


MAX_CACHED_CLIENTS = 64
# Building a boto3 client loads and parses botocore's service model (most of a reconcile's CPU
# when done per call), so clients are built once per endpoint and credentials and reused; they
# are thread-safe. A Session is not, hence the lock around client creation.
_SESSION = boto3.session.Session()
_CLIENTS: OrderedDict[tuple[object, ...], Any] = OrderedDict()
_CLIENTS_LOCK = threading.Lock()


def preload_client_model() -> None:
    """Loads botocore's S3 model and endpoint rules into the shared session (a second or so of
    CPU) at startup, so the first reconciles of a burst do not all queue behind it."""
    with _CLIENTS_LOCK:
        _SESSION.client("s3", region_name="us-east-1", aws_access_key_id="-", aws_secret_access_key="-")


def _ca_bundle_file(pem: str) -> str:
    """A file holding the CA bundle (boto3 wants a path), named by its content and kept for the
    life of the process, as long as clients using it may live."""
    path = os.path.join(tempfile.gettempdir(), f"razorfs-ca-{hashlib.sha256(pem.encode()).hexdigest()[:24]}.pem")
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(prefix="razorfs-ca-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        os.replace(tmp, path)
    return path


def _shared_client(
    endpoint: str,
    region: str,
    force_path_style: bool,
    credentials: S3Credentials,
    timeout_s: float,
    ca_bundle_pem: str | None,
    connections: int,
) -> Any:
    key = (
        endpoint,
        region,
        force_path_style,
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
        timeout_s,
        ca_bundle_pem,
        connections,
    )
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is not None:
            _CLIENTS.move_to_end(key)
            return client
        config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
            # One connection per worker thread that may use this client at once.
            max_pool_connections=max(10, connections),
            s3={"addressing_style": "path" if force_path_style else "auto"},
        )
        client = _SESSION.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            verify=_ca_bundle_file(ca_bundle_pem) if ca_bundle_pem else True,
            config=config,
        )
        _CLIENTS[key] = client
        while len(_CLIENTS) > MAX_CACHED_CLIENTS:
            _CLIENTS.popitem(last=False)
        return client


class VolumeBucket:
    def __init__(
        self,
        location: S3Location,
        credentials: S3Credentials,
        timeout_s: float,
        ca_bundle_pem: str | None = None,
        credentials_from: str = "the Secret",
        connections: int = 10,
    ) -> None:
        self._connections = connections
        self.location = location
        self._credentials_from = credentials_from
        self._credentials = credentials
        self._timeout_s = timeout_s
        self._ca_bundle_pem = ca_bundle_pem

    @contextmanager
    def _client(self) -> Iterator[Any]:
        yield _shared_client(
            self.location.endpoint,
            self.location.region,
            self.location.force_path_style,
            self._credentials,
            self._timeout_s,
            self._ca_bundle_pem,
            self._connections,
        )

    def check_writable(self) -> None:
        """The bucket answers with these credentials and a probe object can be written under the
        prefix (and is removed again)."""
        bucket = self.location.bucket
        # A fixed key: a probe left behind by a killed operator is overwritten and removed by the
        # next check instead of piling up; S3 deletes are idempotent, so concurrent checks agree.
        key = f"{self.location.key_prefix}{PROBE_KEY_NAME}"
        with self._client() as s3, _translated(f"bucket {bucket}", self._credentials_from):
            # LIST rather than HEAD: a HEAD error has no body, so bad credentials and a denied
            # bucket would look the same.
            s3.list_objects_v2(Bucket=bucket, Prefix=self.location.key_prefix, MaxKeys=1)
            s3.put_object(Bucket=bucket, Key=key, Body=b"")
            s3.delete_object(Bucket=bucket, Key=key)

    def measure_usage(self, max_objects: int) -> VolumeUsage:
        """Objects and bytes under the prefix, listing at most `max_objects` keys."""
        objects = bytes_ = 0
        truncated = False
        with self._client() as s3, _translated(f"bucket {self.location.bucket}", self._credentials_from):
            paginator = s3.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=self.location.bucket,
                Prefix=self.location.key_prefix,
                PaginationConfig={"PageSize": LIST_PAGE_KEYS},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    if objects >= max_objects:
                        truncated = True
                        break
                    objects += 1
                    bytes_ += int(item.get("Size", 0))
                if truncated:
                    break
        return VolumeUsage(
            objects=objects,
            bytes=bytes_,
            truncated=truncated,
            scanned_at=datetime.now(UTC).replace(microsecond=0),
        )

    def delete_everything(self) -> int:
        """Deletes every object under the prefix, DELETE_BATCH_KEYS per request; returns the count."""
        if not self.location.key_prefix:
            # The CRD forbids reclaimPolicy Delete with an empty prefix; refuse here too.
            raise AccessDenied("refusing to delete the objects of a whole bucket (empty prefix)")
        deleted = 0
        with self._client() as s3, _translated(f"bucket {self.location.bucket}", self._credentials_from):
            while True:
                page = s3.list_objects_v2(
                    Bucket=self.location.bucket, Prefix=self.location.key_prefix, MaxKeys=DELETE_BATCH_KEYS
                )
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not keys:
                    return deleted
                reply = s3.delete_objects(Bucket=self.location.bucket, Delete={"Objects": keys, "Quiet": True})
                errors = reply.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise S3RequestFailed(
                        f"could not delete {len(errors)} object(s) under {self.location.key_prefix!r}, "
                        f"first {first.get('Key')!r}: {first.get('Code')}"
                    )
                deleted += len(keys)


@contextmanager
def _translated(what: str, credentials_from: str) -> Iterator[None]:
    try:
        yield
    except VolumeProblem:
        raise
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _CREDENTIAL_CODES:
            raise CredentialsRejected(
                f"S3 rejected the credentials in Secret {credentials_from} for {what} ({code})"
            ) from None
        if code in _MISSING_BUCKET_CODES:
            raise BucketNotFound(f"{what} does not exist") from None
        if code in _DENIED_CODES or status == 403:
            raise AccessDenied(f"S3 denied access to {what} ({code or status})") from None
        raise S3RequestFailed(f"S3 request on {what} failed: {code or status}") from None
    except EndpointConnectionError as exc:
        raise S3Unreachable(f"cannot reach the S3 endpoint for {what}: {exc.kwargs.get('endpoint_url', '')}") from None
    except BotoCoreError as exc:
        raise S3Unreachable(f"S3 request on {what} failed: {type(exc).__name__}") from None
