"""Direct S3 access for the suite: seeding objects, deleting prefixes, and waiting until what a
mount wrote is really in S3 (the "durable" end of every write figure)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

POLL_INTERVAL_S = 0.05
DURABLE_TIMEOUT_S = 900.0
SEED_THREADS = 16


class NotDurable(TimeoutError):
    """What a system wrote did not reach S3 within the timeout."""


def wait_object_durable(s3: Any, bucket: str, key: str, size: int, timeout_s: float = DURABLE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == size:
                return
        except s3.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        if time.monotonic() > deadline:
            raise NotDurable(f"s3://{bucket}/{key} did not reach {size} bytes within {timeout_s:.0f}s")
        time.sleep(POLL_INTERVAL_S)


def count_objects(s3: Any, bucket: str, prefix: str, size: int | None = None) -> int:
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        count += sum(1 for o in page.get("Contents", []) if size is None or o["Size"] == size)
    return count


def wait_prefix_durable(
    s3: Any, bucket: str, prefix: str, count: int, size: int, timeout_s: float = DURABLE_TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while count_objects(s3, bucket, prefix, size) < count:
        if time.monotonic() > deadline:
            raise NotDurable(f"fewer than {count} objects under s3://{bucket}/{prefix} after {timeout_s:.0f}s")
        time.sleep(0.2)


def wait_files_durable(s3: Any, bucket: str, prefix: str, count: int, timeout_s: float = DURABLE_TIMEOUT_S) -> None:
    """Until `count` objects under `prefix` are files (directory markers, keys ending in "/", not counted)."""
    deadline = time.monotonic() + timeout_s
    while True:
        files = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            files += sum(1 for o in page.get("Contents", []) if not o["Key"].endswith("/"))
        if files >= count:
            return
        if time.monotonic() > deadline:
            raise NotDurable(f"fewer than {count} files under s3://{bucket}/{prefix} after {timeout_s:.0f}s")
        time.sleep(0.2)


def delete_prefix(s3: Any, bucket: str, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def put_many(s3: Any, bucket: str, keys: list[str], body: bytes, threads: int = SEED_THREADS) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(s3.put_object, Bucket=bucket, Key=k, Body=body) for k in keys]:
            future.result()


def object_size(s3: Any, bucket: str, key: str) -> int | None:
    try:
        size: int = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        return size
    except s3.exceptions.ClientError:
        return None
