"""A FaultProxy that also records which access key signed each request (the `Credential=` of
the SigV4 Authorization header), to check at the wire whose credentials a mount daemon uses."""

from __future__ import annotations

import asyncio
import threading

from tests.realparts.faultproxy import FaultProxy, _Head


class SigningProxy(FaultProxy):
    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url)
        self._signers_lock = threading.Lock()
        self._signers: list[str] = []

    @property
    def signers(self) -> list[str]:
        """The access key ID of every request so far, in order ("" for an unsigned request)."""
        with self._signers_lock:
            return list(self._signers)

    async def _serve_request(
        self,
        head: _Head,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        authorization = head.get("authorization") or ""
        key_id = authorization.split("Credential=", 1)[1].split("/", 1)[0] if "Credential=" in authorization else ""
        with self._signers_lock:
            self._signers.append(key_id)
        return await super()._serve_request(head, client_r, client_w, upstream)
