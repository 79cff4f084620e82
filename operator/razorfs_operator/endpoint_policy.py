"""Which S3 endpoints the operator may call for a RazorVolume (chart value
`operator.allowedEndpoints`). The operator signs requests with a volume's Secret to whatever
endpoint the volume names; without a list any namespace user could make it call internal
addresses. Patterns are shell-style (`https://*.amazonaws.com`, `http://minio.storage:9000`),
matched against the endpoint's `scheme://host[:port]` in lower case; no pattern allows all."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import EndpointNotAllowed


def endpoint_origin(endpoint: str) -> str:
    """`scheme://host[:port]` of an endpoint URL; refuses what could hide the real host."""
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointNotAllowed(f"endpoint {endpoint!r} is not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise EndpointNotAllowed(f"endpoint of host {parts.hostname} carries user information")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}".lower()


@dataclass(frozen=True)
class EndpointPolicy:
    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> EndpointPolicy:
        """From a comma-separated list (the operator's --allowed-endpoints)."""
        return cls(tuple(p.strip().lower() for p in text.split(",") if p.strip()))

    def check(self, endpoint: str) -> None:
        """Raises EndpointNotAllowed unless `endpoint` matches a pattern (or there are none)."""
        if not self.patterns:
            return
        origin = endpoint_origin(endpoint)
        if not any(fnmatch.fnmatchcase(origin, pattern) for pattern in self.patterns):
            raise EndpointNotAllowed(
                f"endpoint {origin} is not allowed by this operator (operator.allowedEndpoints: "
                f"{', '.join(self.patterns)}); no request was sent to it"
            )
