"""Client of a mount daemon's control socket (`<cache-dir>/control.sock`): one JSON object per
line each way; the last reply line carries `ok` (see docs/mount-daemon-contract.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from razorfs.csi.errors import DaemonFailed, Unavailable
from razorfs.csi.mount_settings import Credentials
from razorfs.mount.control import CONTROL_SOCKET_NAME, ControlOp, socket_address

_LINE_LIMIT_BYTES = 1024 * 1024


def control_socket(cache_dir: Path) -> Path:
    return cache_dir / CONTROL_SOCKET_NAME


class ControlClient:
    def __init__(self, cache_dir: Path):
        self.socket_path = control_socket(cache_dir)

    async def _exchange(
        self,
        request: dict[str, Any],
        timeout_s: float | None,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        try:
            with socket_address(self.socket_path) as path:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(path, limit=_LINE_LIMIT_BYTES), 5.0
                )
        except (OSError, TimeoutError) as exc:
            raise Unavailable(f"mount daemon control socket {self.socket_path} does not answer: {exc}") from None
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            async with asyncio.timeout(timeout_s):
                while True:
                    line = await reader.readline()
                    if not line:
                        raise DaemonFailed(f"mount daemon closed the control connection during {request['op']}")
                    reply = json.loads(line)
                    if "ok" in reply:
                        if not reply["ok"]:
                            raise DaemonFailed(f"mount daemon {request['op']} failed: {reply.get('error', '?')}")
                        return dict(reply)
                    if on_progress is not None and "progress" in reply:
                        on_progress(reply["progress"])
        except TimeoutError:
            raise Unavailable(f"mount daemon {request['op']} timed out after {timeout_s}s") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise DaemonFailed(f"mount daemon control socket failed during {request['op']}: {exc}") from None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def stats(self, timeout_s: float = 5.0) -> dict[str, Any]:
        reply = await self._exchange({"op": ControlOp.STATS}, timeout_s)
        return dict(reply.get("stats", {}))

    async def flush(self, timeout_s: float | None = None) -> int:
        request: dict[str, Any] = {"op": ControlOp.FLUSH}
        if timeout_s:
            request["timeout_s"] = timeout_s
        reply = await self._exchange(request, None if not timeout_s else timeout_s + 5.0)
        return int(reply.get("flushed_bytes", 0))

    async def shutdown(self, flush_timeout_s: float) -> None:
        """Flush everything, unmount, exit. Raises DaemonFailed when the flush fails or does not
        finish within `flush_timeout_s`; the daemon then keeps running with the data."""
        await self._exchange({"op": ControlOp.SHUTDOWN, "timeout_s": flush_timeout_s}, flush_timeout_s + 15.0)

    async def replace_credentials(self, credentials: Credentials, timeout_s: float = 5.0) -> None:
        """Hands the daemon new keys for its next S3 requests (never logged, never in argv)."""
        request = {
            "op": ControlOp.CREDENTIALS,
            "access_key_id": credentials.access_key_id,
            "secret_access_key": credentials.secret_access_key,
            "session_token": credentials.session_token,
        }
        await self._exchange(request, timeout_s)

    async def warm(self, paths: list[str]) -> AsyncIterator[dict[str, Any]]:
        """Yields progress records while the daemon prefetches `paths`."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        task = asyncio.create_task(self._exchange({"op": ControlOp.WARM, "paths": paths}, None, queue.put_nowait))
        task.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (progress := await queue.get()) is not None:
                yield progress
            await task
        finally:
            if not task.done():
                task.cancel()
