"""`delete_prefix`: removing every object under a key prefix, the one routine behind a volume
deleted with its data (the operator's reclaim policy Delete, the CSI controller's DeleteVolume).

Each round lists from the start of the prefix and deletes what the page holds (1000 keys per
request), so no continuation token outlives the keys it pointed past; a bucket that is gone holds
nothing more to delete. An empty prefix (a whole bucket) is refused, and so is a round that lists
exactly the keys the previous one deleted."""

from __future__ import annotations

from razorfs.store.base import ObjectStore
from razorfs.store.errors import BucketNotFound, InvalidRequest, StoreError


def delete_prefix(store: ObjectStore, prefix: str) -> int:
    """Deletes every object whose key starts with `prefix`; returns how many were deleted."""
    if not prefix:
        raise InvalidRequest(f"{store.description}: refusing to delete the objects of a whole bucket (empty prefix)")
    deleted = 0
    previous: list[str] = []
    try:
        while True:
            page = next(iter(store.list_pages(prefix, delimiter=None)), None)
            keys = [info.key for info in page.objects] if page is not None else []
            if not keys:
                return deleted
            if keys == previous:
                # Deleted and listed again: never loop on a server that keeps them.
                raise StoreError(f"{store.description}: {keys[0]!r} and others under {prefix!r} remain after deletion")
            store.delete_many(keys)
            deleted += len(keys)
            previous = keys
    except BucketNotFound:
        return deleted
