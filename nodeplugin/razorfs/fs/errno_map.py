"""The one place where typed errors become errno values for the kernel. Every FUSE operation
runs inside `errno_boundary`; nothing else in the filesystem picks an errno for a store error."""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pyfuse3

from razorfs.cache.errors import CacheConflict, UploadStalled
from razorfs.store import errors as store_errors

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_ERRNO_OF: list[tuple[type[Exception], int]] = [
    (store_errors.ObjectNotFound, errno.ENOENT),
    (store_errors.AccessDenied, errno.EACCES),
    (store_errors.InvalidCredentials, errno.EACCES),
    (store_errors.InvalidRequest, errno.EINVAL),
    (store_errors.PreconditionFailed, errno.ESTALE),
    (CacheConflict, errno.EIO),
    (UploadStalled, errno.EIO),
    (store_errors.StoreError, errno.EIO),  # unavailable, throttled after retries, no bucket
]


def errno_of(err: Exception) -> int:
    for kind, code in _ERRNO_OF:
        if isinstance(err, kind):
            return code
    if isinstance(err, OSError) and err.errno:
        return err.errno
    return errno.EIO


def errno_boundary(op: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(op)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await op(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except (store_errors.StoreError, CacheConflict, UploadStalled, OSError) as err:
            code = errno_of(err)
            log.warning("%s failed: %s: %s -> %s", op.__name__, type(err).__name__, err, errno.errorcode[code])
            raise pyfuse3.FUSEError(code) from err

    return translated
