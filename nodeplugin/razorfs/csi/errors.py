"""Typed errors of the CSI plugin and their one translation to gRPC status codes.

Every servicer method is wrapped by `translate_errors`, the only place an exception becomes a
status. Messages name volumes and paths, never secrets."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from razorfs.store import errors as store_errors

log = logging.getLogger(__name__)


# A status message travels in gRPC trailers (8 KiB by default): user input is quoted cut short.
QUOTED_MAX_CHARS = 64


def quoted(text: str, limit: int = QUOTED_MAX_CHARS) -> str:
    """`text` for a message: repr (control characters escaped), cut to `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class CsiError(Exception):
    """Base of the plugin's typed errors; `code` is the gRPC status it becomes."""

    code = grpc.StatusCode.INTERNAL


class InvalidArgument(CsiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(CsiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CsiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(CsiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(CsiError):
    """Transient: the caller should retry (S3 unreachable, a daemon still starting)."""

    code = grpc.StatusCode.UNAVAILABLE


class PermissionDenied(CsiError):
    code = grpc.StatusCode.PERMISSION_DENIED


class DeadlineExceeded(CsiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(CsiError):
    code = grpc.StatusCode.UNAUTHENTICATED


class DaemonFailed(CsiError):
    """A mount daemon did not start, did not answer, or refused an operation."""

    code = grpc.StatusCode.INTERNAL


_STORE_CODES: dict[type[store_errors.StoreError], grpc.StatusCode] = {
    store_errors.BucketNotFound: grpc.StatusCode.FAILED_PRECONDITION,
    store_errors.AccessDenied: grpc.StatusCode.PERMISSION_DENIED,
    store_errors.InvalidCredentials: grpc.StatusCode.UNAUTHENTICATED,
    store_errors.Throttled: grpc.StatusCode.UNAVAILABLE,
    store_errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    store_errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    store_errors.ObjectNotFound: grpc.StatusCode.NOT_FOUND,
}


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status code and message for an exception raised by a servicer."""
    if isinstance(exc, CsiError):
        return exc.code, str(exc)
    if isinstance(exc, store_errors.StoreError):
        for kind, code in _STORE_CODES.items():
            if isinstance(exc, kind):
                return code, f"{type(exc).__name__}: {exc}"
        return grpc.StatusCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}"
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"


_Servicer = TypeVar("_Servicer")
_Method = Callable[..., Awaitable[Any]]


def translate_errors(method: _Method) -> _Method:
    """Wraps an async servicer method: typed errors become their status, anything else INTERNAL
    (logged once with its traceback, since it is a bug)."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except (CsiError, store_errors.StoreError) as exc:
            code, message = status_of(exc)
            log.info("%s failed: %s %s", method.__name__, code.name, message)
            await _abort(context, code, message)
        except Exception as exc:
            code, message = status_of(exc)
            log.exception("%s failed unexpectedly", method.__name__)
            await _abort(context, code, message)

    return wrapper


async def _abort(context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("context.abort returned")  # abort always raises
