"""A FaultProxy that also records which access key signed each request (the `Credential=` of
the SigV4 Authorization header, or the `X-Amz-Credential` of a presigned request's query, as the
daemon sends its HEADs), to check at the wire whose credentials a mount daemon uses."""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import parse_qs, urlsplit

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
        key_id = _signing_key_id(head)
        with self._signers_lock:
            self._signers.append(key_id)
        return await super()._serve_request(head, client_r, client_w, upstream)


def _signing_key_id(head: _Head) -> str:
    authorization = head.get("authorization") or ""
    if "Credential=" in authorization:
        return authorization.split("Credential=", 1)[1].split("/", 1)[0]
    parts = head.first_line.split(" ")
    query = parse_qs(urlsplit(parts[1]).query) if len(parts) > 1 else {}
    credential = query.get("X-Amz-Credential", [""])[0]  # presigned: "<key id>/<date>/<region>/..."
    return credential.split("/", 1)[0]
