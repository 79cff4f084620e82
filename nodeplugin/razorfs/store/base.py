"""The object-store interface every backend implements, and the records it returns.

Calls are synchronous and thread-safe: the FUSE daemon runs them on a bounded worker pool
(never on the trio loop). Keys are full keys (the volume prefix already applied by the caller)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str  # without the quotes S3 puts around it on the wire; `if_match` takes either form
    last_modified: float  # Unix seconds
    # User metadata without the `x-amz-meta-` prefix, lower-case names. Empty when the record
    # comes from a listing (S3 listings carry no user metadata); `head` fills it.
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListingPage:
    objects: Sequence[ObjectInfo]
    # With a delimiter: the common prefixes ("subdirectories"), each ending in the delimiter.
    prefixes: Sequence[str]


@dataclass(frozen=True)
class CopyRange:
    """A part of a composed upload that is copied server-side from an existing object."""

    source_key: str
    start: int
    length: int


@dataclass(frozen=True)
class FileRange:
    """A part of a composed upload that is read from a local file."""

    path: Path
    start: int
    length: int


class ObjectStore(Protocol):
    @property
    def description(self) -> str:
        """Human-readable location, e.g. `s3://bucket/prefix at http://127.0.0.1:9000` (no secrets)."""
        ...

    def head(self, key: str) -> ObjectInfo:
        """Raises ObjectNotFound."""
        ...

    def get_range(self, key: str, start: int, length: int, if_match: str | None = None) -> bytes:
        """Bytes [start, start+length) (fewer at the end of the object). With `if_match`, raises
        PreconditionFailed when the object's ETag differs."""
        ...

    def get_object(self, key: str, if_match: str | None = None) -> bytes:
        """The whole object, checked against the checksum stored with it when it has one (raises
        ChecksumMismatch if the bytes stay corrupted through retries). `if_match` as in get_range."""
        ...

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> ObjectInfo: ...

    def put_file(self, key: str, path: Path, metadata: Mapping[str, str]) -> ObjectInfo:
        """Uploads a local file; multipart with parallel parts above the multipart threshold.
        The object appears whole or not at all."""
        ...

    def compose(
        self, key: str, parts: Sequence[CopyRange | FileRange], metadata: Mapping[str, str]
    ) -> ObjectInfo:
        """Builds an object from server-side copied ranges and local file ranges (multipart
        upload with UploadPartCopy), so unchanged ranges of a large object are not re-uploaded."""
        ...

    def copy(self, source_key: str, dest_key: str, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Server-side copy (multipart copy above 5 GiB). `metadata` None keeps the source's."""
        ...

    def delete(self, key: str) -> None:
        """Deleting a missing key is not an error."""
        ...

    def delete_many(self, keys: Sequence[str]) -> None:
        """Batched delete (1000 keys per request)."""
        ...

    def list_pages(
        self,
        prefix: str,
        delimiter: str | None = "/",
        start_after: str | None = None,
        page_keys: int | None = None,
    ) -> Iterator[ListingPage]:
        """Paginated listing under `prefix`, in key order, at most `page_keys` keys and prefixes a
        page (default: the store's usual page, 1000 on S3). (Without a delimiter SeaweedFS walks its
        directory tree instead: `a/x` comes before `a-c`; do not rely on a flat listing's order.)"""
        ...

    def check_bucket(self, prefix: str = "") -> None:
        """One cheap listing (under `prefix`, which a policy may scope access to); raises
        BucketNotFound, AccessDenied, InvalidCredentials or StoreUnavailable."""
        ...
