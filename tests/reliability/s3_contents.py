"""What the bucket really holds under a prefix, read straight from the S3 server (never through
the mount or the fault proxy): the final judge of the reliability tests."""

from __future__ import annotations

from typing import Any

from razorfs.fs.dir_marker import FOLDER_SUFFIX


def objects_under(client: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` (directory markers excluded: `<dir>/`, and the `<dir>_$folder$`
    companion that carries a directory's attributes where the server drops marker metadata),
    keyed by the rest of the key."""
    found: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(("/", FOLDER_SUFFIX)):
                continue
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            found[obj["Key"][len(prefix) :]] = body
    return found
