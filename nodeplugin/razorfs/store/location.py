"""`S3Url`: where a volume lives in S3 (`s3://BUCKET[/PREFIX]`), and how a file path inside the
volume becomes a full object key. `razorfs mount` and `razorfs check` parse the same URL form here;
a malformed URL raises `InvalidS3Url`, which the CLI boundary prints as a usage error."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lenient on purpose (S3-compatible servers accept more than AWS does), but never a slash,
# whitespace or an empty name.
_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$")


class InvalidS3Url(ValueError):
    """Not an `s3://BUCKET[/PREFIX]` URL; the message is one line saying why."""


@dataclass(frozen=True)
class S3Url:
    bucket: str
    prefix: str = ""  # "" (whole bucket) or ends with "/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key_for(self, path: str) -> str:
        """The full key of `path` (relative to the volume root; a leading "/" is ignored)."""
        return join_key(self.prefix, path)


def join_key(prefix: str, path: str) -> str:
    """`prefix` + `path` with exactly one "/" between them (`prefix` "" means the bucket root)."""
    path = path.lstrip("/")
    if not prefix:
        return path
    return prefix if not path else prefix.rstrip("/") + "/" + path


def parse_s3_url(url: str) -> S3Url:
    """`s3://bucket`, `s3://bucket/`, `s3://bucket/vol`, `s3://bucket/a/b/` -> bucket and a prefix
    that is empty or ends with "/". Raises InvalidS3Url with a one-line reason."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "s3":
        raise InvalidS3Url(f"expected an s3://BUCKET[/PREFIX] URL, got {url!r}")
    bucket, _, prefix = rest.partition("/")
    if not _BUCKET_RE.match(bucket):
        raise InvalidS3Url(f"invalid bucket name {bucket!r} in {url!r}")
    if "//" in prefix or any(seg in (".", "..") for seg in prefix.split("/")):
        raise InvalidS3Url(f"invalid prefix {prefix!r} in {url!r}: empty, '.' or '..' path segments")
    prefix = prefix.strip("/")
    return S3Url(bucket, prefix + "/" if prefix else "")
