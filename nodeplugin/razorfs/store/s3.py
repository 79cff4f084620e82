"""`S3Store`: the object store on a real S3 bucket, through one shared boto3 client.

Every request goes through `_request`, which counts it, retries throttling, 5xx and connection
failures (including a response body cut short, which botocore's own retries never see) with
exponential backoff and jitter, and translates what is left into the typed errors of `errors.py`.
Large uploads and `compose` are multipart uploads with parallel parts; unchanged ranges of an
existing object are copied server-side (UploadPartCopy) instead of re-uploaded. HEADs, the
request a cold `ls -l` sends per entry, are presigned by the client and sent on a kept-alive
connection (`s3_head.PresignedHeads`) at a third of botocore's CPU.

End-to-end checksums: a single PUT carries the body's CRC32 (`x-amz-checksum-crc32`), which the
server checks on arrival and keeps; `get_object` (a whole, unranged GET) asks for it back and
botocore checks the body against it; a mismatch is `ChecksumMismatch`, retried. Each multipart part
carries its Content-MD5, checked on arrival only. Ranged GETs and multipart objects are not checked
when read (docs/architecture.md, "End-to-end checksums").

Somewhat over 450 lines on purpose: it is the ObjectStore protocol on S3, one short method per
operation around the one `_request` that retries and translates errors; split, each half would
need the other's client and error handling."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions

from razorfs.store.base import CopyRange, FileRange, ListingPage, ObjectInfo, ObjectStore
from razorfs.store.counters import StoreCounters
from razorfs.store.errors import InvalidRequest, ObjectNotFound, PreconditionFailed, StoreError
from razorfs.store.part_plan import CopyPart, DataPart, Part, part_size_for, plan_parts
from razorfs.store.retry import RetryableFailure
from razorfs.store.s3_clients import new_client, shared_client, signing_credentials
from razorfs.store.s3_credentials import StaticKeys, SwappableCredentials
from razorfs.store.s3_errors import describe_target, translate
from razorfs.store.s3_head import PresignedHeads, usable
from razorfs.store.s3_settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

T = TypeVar("T")

DELETE_BATCH_KEYS = 1000
# Replies the filesystem asks for all the time (lookup of a missing name, revalidation of a changed
# object): not failures of the store, so not counted in `errors`.
ANSWERS_NOT_ERRORS = (ObjectNotFound, PreconditionFailed)
LIST_PAGE_KEYS = 1000


def crc32_checksum(data: bytes) -> str:
    """CRC32 in S3's `x-amz-checksum-crc32` form (base64 of the big-endian 4 bytes)."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def content_md5(data: bytes) -> str:
    """The `Content-MD5` header's value: base64 of the body's MD5."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def strip_etag(etag: str) -> str:
    return etag.strip().strip('"')


def quote_etag(etag: str) -> str:
    return f'"{strip_etag(etag)}"'


class S3Store:
    def __init__(
        self, settings: S3Settings, counters: StoreCounters | None = None, *, reuse_client: bool = False
    ) -> None:
        """`reuse_client`: take the shared client for these connection settings (for callers that
        build a store per request); never with explicit credentials, which the store swaps."""
        self.settings = settings
        self.bucket = settings.bucket
        self.counters = counters or StoreCounters()
        self._credentials = signing_credentials(settings)
        self._client = shared_client(settings) if reuse_client else new_client(settings, self._credentials)
        # A store of its own (a mount daemon) keeps its HEAD connections; stores built per request
        # share the client's pooled ones instead.
        self._heads = PresignedHeads(settings) if usable() and not reuse_client else None
        # What backoff sleeps wait on: `retry_now` sets it (and puts a fresh one in its place).
        self._backoff_over = threading.Event()
        self._backoff_lock = threading.Lock()

    @property
    def description(self) -> str:
        where = self.settings.endpoint_url or f"AWS {self.settings.region or 'default region'}"
        return f"s3://{self.bucket} at {where}"

    def replace_credentials(self, keys: StaticKeys) -> None:
        """Signs every request from now on with `keys` (a rotated Secret's keys or session token).
        Only a store built with explicit credentials has keys to replace."""
        if not isinstance(self._credentials, SwappableCredentials):
            raise InvalidRequest("this store does not sign with explicit keys: nothing to replace")
        self._credentials.replace(keys)

    # -- the one way a request is made --------------------------------------------------------

    def _request(self, operation: str, key: str | None, call: Callable[[], T]) -> T:
        """Runs `call` (one HTTP request, including reading its body) under the retry policy."""

        def attempt() -> T:
            self.counters.count_request()
            try:
                return call()
            except Exception as exc:
                translated = translate(exc, operation, self.bucket, key)
                if not isinstance(translated.error, ANSWERS_NOT_ERRORS):
                    self.counters.count_error(f"{type(translated.error).__name__}: {translated.error}")
                if translated.retryable:
                    raise RetryableFailure(translated.error) from None
                raise translated.error from None

        def on_retry(error: Exception, delay_s: float) -> None:
            self.counters.count_retry()
            log.info("retrying in %.2fs after %s: %s", delay_s, type(error).__name__, error)

        return self.settings.retry.run(attempt, on_retry, self._backoff_sleep)

    def _backoff_sleep(self, delay_s: float) -> None:
        with self._backoff_lock:
            over = self._backoff_over
        over.wait(delay_s)

    def retry_now(self) -> None:
        """Cuts short the backoff of every request in progress: each tries again at once (a flush
        after S3 came back must not wait out a sleep of several seconds begun while it was down)."""
        with self._backoff_lock:
            over, self._backoff_over = self._backoff_over, threading.Event()
        over.set()

    # -- reads --------------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo:
        def fetch() -> Any:
            resp: Mapping[str, Any]
            if self._heads is not None:
                resp = self._heads.head_object(self._client, self.bucket, key)
            else:
                resp = self._client.head_object(Bucket=self.bucket, Key=key)
            if "ContentLength" not in resp:
                raise IncompleteResponse("HEAD reply without Content-Length")
            return resp

        resp = self._request("head", key, fetch)
        return ObjectInfo(
            key=key,
            size=int(resp["ContentLength"]),
            etag=strip_etag(resp.get("ETag", "")),
            last_modified=resp["LastModified"].timestamp(),
            metadata={k.lower(): v for k, v in resp.get("Metadata", {}).items()},
        )

    def get_range(self, key: str, start: int, length: int, if_match: str | None = None) -> bytes:
        if start < 0 or length < 0:
            raise InvalidRequest(f"{describe_target('get', self.bucket, key)}: bad range {start}+{length}")
        if length == 0:
            if if_match is not None:
                info = self.head(key)  # still honour the precondition
                if info.etag != strip_etag(if_match):
                    raise PreconditionFailed(f"{describe_target('get', self.bucket, key)}: ETag changed")
            return b""
        extra: dict[str, Any] = {"IfMatch": quote_etag(if_match)} if if_match is not None else {}

        def fetch() -> bytes:
            try:
                resp = self._client.get_object(
                    Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}", **extra
                )
            except botocore.exceptions.ClientError as exc:
                # A range starting at or past the end: S3 says 416; the contract says "fewer bytes".
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if exc.response.get("Error", {}).get("Code") in ("InvalidRange", "416") or status == 416:
                    return b""
                raise
            body = resp["Body"]
            try:
                data = body.read()  # raises IncompleteReadError if the body is cut short
            finally:
                body.close()
            if resp["ResponseMetadata"]["HTTPStatusCode"] == 200:  # a server that ignored Range
                data = data[start : start + length]
            return data

        data = self._request("get", key, fetch)
        self.counters.count_downloaded(len(data))
        return data

    def get_object(self, key: str, if_match: str | None = None) -> bytes:
        # Not ranged: S3 returns the stored checksum only with a whole object, and botocore then
        # checks the body against it as it is read (FlexibleChecksumError -> ChecksumMismatch,
        # retried like a broken body).
        extra: dict[str, Any] = {"IfMatch": quote_etag(if_match)} if if_match is not None else {}

        def fetch() -> bytes:
            resp = self._client.get_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED", **extra)
            body = resp["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        data = self._request("get", key, fetch)
        self.counters.count_downloaded(len(data))
        return data

    # -- writes -------------------------------------------------------------------------------

    def _sse_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.settings.sse:
            args["ServerSideEncryption"] = self.settings.sse
        if self.settings.sse_kms_key_id:
            args["SSEKMSKeyId"] = self.settings.sse_kms_key_id
        return args

    # Records returned by writes carry this node's clock as `last_modified` (S3 does not return
    # the server's time on writes); `head` and listings give the server's.

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo:
        resp = self._request(
            "put",
            key,
            lambda: _with_etag(
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=data,
                    Metadata=dict(metadata),
                    # The server checks the body against it (BadDigest, retried) and keeps it
                    # for readers; the algorithm header is what makes moto keep it too.
                    ChecksumAlgorithm="CRC32",
                    ChecksumCRC32=crc32_checksum(data),
                    **self._sse_args(),
                )
            ),
        )
        self.counters.count_uploaded(len(data))
        return ObjectInfo(key, len(data), strip_etag(resp["ETag"]), time.time(), _lower(metadata))

    def put_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> ObjectInfo:
        size = os.stat(path).st_size
        if size < self.settings.multipart_threshold_bytes:
            return self.put_bytes(key, path.read_bytes(), metadata)
        return self.compose(key, [FileRange(path, 0, size)], metadata)

    def copy(self, source_key: str, dest_key: str, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        # Head first: it gives the size (multipart copy above 5 GiB), the metadata to keep, and
        # an ETag that pins the copy to the version we looked at.
        source = self.head(source_key)
        new_metadata = dict(source.metadata if metadata is None else metadata)
        if source.size > self.settings.max_single_copy_bytes:
            return self._multipart(
                dest_key, [CopyRange(source_key, 0, source.size)], new_metadata, {source_key: source.etag}
            )
        resp = self._request(
            "copy",
            dest_key,
            lambda: self._client.copy_object(
                Bucket=self.bucket,
                Key=dest_key,
                CopySource={"Bucket": self.bucket, "Key": source_key},
                CopySourceIfMatch=quote_etag(source.etag),
                MetadataDirective="REPLACE",
                Metadata=new_metadata,
                **self._sse_args(),
            ),
        )
        etag = strip_etag(resp["CopyObjectResult"]["ETag"])
        return ObjectInfo(dest_key, source.size, etag, time.time(), _lower(new_metadata))

    def compose(
        self, key: str, parts: Sequence[CopyRange | FileRange], metadata: Mapping[str, str]
    ) -> ObjectInfo:
        return self._multipart(key, parts, dict(metadata), {})

    def _multipart(
        self,
        key: str,
        segments: Sequence[CopyRange | FileRange],
        metadata: dict[str, str],
        source_etags: dict[str, str],
    ) -> ObjectInfo:
        total = sum(s.length for s in segments)
        part_size = part_size_for(total, self.settings.part_size_bytes)
        plan = plan_parts(segments, part_size, max(self.settings.copy_part_size_bytes, part_size))
        if not plan:
            return self.put_bytes(key, b"", metadata)
        created = self._request(
            "create-multipart",
            key,
            lambda: self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, Metadata=metadata, **self._sse_args()
            ),
        )
        upload_id = created["UploadId"]
        try:
            with ThreadPoolExecutor(
                max_workers=min(self.settings.multipart_concurrency, len(plan)),
                thread_name_prefix="s3-part",
            ) as pool:
                futures = [
                    pool.submit(self._upload_part, key, upload_id, number, part, source_etags)
                    for number, part in enumerate(plan, start=1)
                ]
                try:
                    etags = [f.result() for f in futures]
                except BaseException:
                    for future in futures:  # parts not started yet are pointless now
                        future.cancel()
                    raise
            etag = self._complete(key, upload_id, etags, total)
        except BaseException:
            self._abort(key, upload_id)
            raise
        return ObjectInfo(key, total, etag, time.time(), _lower(metadata))

    def _upload_part(
        self, key: str, upload_id: str, number: int, part: Part, source_etags: dict[str, str]
    ) -> str:
        if isinstance(part, CopyPart):
            extra: dict[str, Any] = {}
            if part.source_key in source_etags:
                extra["CopySourceIfMatch"] = quote_etag(source_etags[part.source_key])
            resp = self._request(
                "upload-part-copy",
                key,
                lambda: self._client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": part.source_key},
                    CopySourceRange=f"bytes={part.start}-{part.start + part.length - 1}",
                    **extra,
                ),
            )
            return strip_etag(resp["CopyPartResult"]["ETag"])
        data = self._read_data_part(part, source_etags)
        resp_put = self._request(
            "upload-part",
            key,
            lambda: _with_etag(
                self._client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    # Checked by the server on arrival (BadDigest, retried). Not a CRC32: S3
                    # refuses part checksums on an upload created without that algorithm.
                    ContentMD5=content_md5(data),
                )
            ),
        )
        self.counters.count_uploaded(len(data))
        return strip_etag(resp_put["ETag"])

    def _read_data_part(self, part: DataPart, source_etags: dict[str, str]) -> bytes:
        chunks: list[bytes] = []
        for seg in part.segments:
            if isinstance(seg, CopyRange):
                chunk = self.get_range(seg.source_key, seg.start, seg.length, source_etags.get(seg.source_key))
            else:
                with open(seg.path, "rb") as f:
                    f.seek(seg.start)
                    chunk = f.read(seg.length)
            if len(chunk) != seg.length:
                raise InvalidRequest(
                    f"compose: range {seg.start}+{seg.length} of "
                    f"{seg.source_key if isinstance(seg, CopyRange) else seg.path} has only {len(chunk)} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _complete(self, key: str, upload_id: str, etags: list[str], total: int) -> str:
        parts: list[CompletedPartTypeDef] = [
            {"PartNumber": n, "ETag": quote_etag(e)} for n, e in enumerate(etags, start=1)
        ]
        attempts = 0

        def complete() -> str:
            nonlocal attempts
            attempts += 1
            try:
                resp = self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
            except botocore.exceptions.ClientError as exc:
                # A retry after a completion whose reply was lost finds the upload gone; the
                # object is there if it has the size we built.
                if attempts > 1 and exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    info = self._client.head_object(Bucket=self.bucket, Key=key)
                    if int(info["ContentLength"]) == total:
                        return strip_etag(info["ETag"])
                raise
            return strip_etag(resp["ETag"])

        return self._request("complete-multipart", key, complete)

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self._request(
                "abort-multipart",
                key,
                lambda: self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id),
            )
        except StoreError as err:
            # The original failure is what the caller must see; a leftover upload only costs
            # storage until the bucket's lifecycle rule (or a later abort) removes it.
            log.warning("could not abort multipart upload of %s: %s", key, err)

    # -- deletes ------------------------------------------------------------------------------

    def delete(self, key: str) -> None:
        with contextlib.suppress(ObjectNotFound):  # S3 says 204 anyway; some servers say 404
            self._request("delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=key))

    def delete_many(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), DELETE_BATCH_KEYS):
            batch: list[ObjectIdentifierTypeDef] = [{"Key": k} for k in keys[i : i + DELETE_BATCH_KEYS]]
            resp = self._request(
                "delete-many",
                batch[0]["Key"],
                functools.partial(
                    self._client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                ),
            )
            for failure in resp.get("Errors", []):
                if failure.get("Code") in ("NoSuchKey", "NotFound"):
                    continue
                error = botocore.exceptions.ClientError(
                    {"Error": {"Code": failure.get("Code", ""), "Message": failure.get("Message", "")}},
                    "DeleteObjects",
                )
                raise translate(error, "delete-many", self.bucket, failure.get("Key")).error

    # -- listing ------------------------------------------------------------------------------

    def list_pages(
        self,
        prefix: str,
        delimiter: str | None = "/",
        start_after: str | None = None,
        page_keys: int | None = None,
    ) -> Iterator[ListingPage]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_keys or LIST_PAGE_KEYS}
        if delimiter:
            args["Delimiter"] = delimiter
        if start_after:
            args["StartAfter"] = start_after
        while True:
            resp = self._request("list", prefix, functools.partial(self._client.list_objects_v2, **args))
            objects = [
                ObjectInfo(
                    key=o["Key"],
                    size=int(o["Size"]),
                    etag=strip_etag(o.get("ETag", "")),
                    last_modified=o["LastModified"].timestamp(),
                )
                for o in resp.get("Contents", [])
            ]
            prefixes = [p["Prefix"] for p in resp.get("CommonPrefixes", [])]
            yield ListingPage(objects, prefixes)
            token = resp.get("NextContinuationToken")
            if not resp.get("IsTruncated") or not token:
                return
            args = {**args, "ContinuationToken": token}
            args.pop("StartAfter", None)

    def check_bucket(self, prefix: str = "") -> None:
        self._request(
            "list", prefix or None, lambda: self._client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        )


class IncompleteResponse(ConnectionError):
    """A reply that parsed but lacks what every real reply has (a connection cut inside the
    headers looks like this to http.client); treated like any broken connection: retried."""


R = TypeVar("R", bound=Mapping[str, Any])


def _with_etag(resp: R) -> R:
    if not resp.get("ETag"):
        raise IncompleteResponse("reply without an ETag header")
    return resp


def _lower(metadata: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in metadata.items()}


def _conforms_to_protocol(store: S3Store) -> ObjectStore:
    return store  # mypy proves S3Store implements ObjectStore
