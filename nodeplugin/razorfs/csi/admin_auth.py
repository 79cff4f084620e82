"""Who may call NodeAdmin. Every call carries `authorization: Bearer <token>`; an authenticator
decides. `TokenReviewAuth` (the chart's choice) asks the API server to review the token for the
NodeAdmin audience and accepts only the operator's ServiceAccount: no secret is shared between
nodes, and the operator's projected token expires within minutes. `SharedTokenAuth` compares with
one configured token (development clusters and tests). Tokens are never logged."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from razorfs.csi.errors import PermissionDenied, Unauthenticated, Unavailable

log = logging.getLogger(__name__)

DEFAULT_AUDIENCE = "razorfs-node-admin"
# A reviewed token is trusted this long (never past its own expiry, which the review reports
# only indirectly: kubelet rotates projected tokens at 80% of their lifetime, minutes at least).
REVIEW_CACHE_S = 30.0
REVIEW_CACHE_ENTRIES = 64
REVIEW_TIMEOUT_S = 5.0


class AdminAuth(Protocol):
    async def check(self, token: str) -> None:
        """Returns if `token` may call NodeAdmin; raises Unauthenticated or PermissionDenied."""


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            text = value.decode() if isinstance(value, bytes) else value
            if text.startswith("Bearer "):
                return text.removeprefix("Bearer ").strip()
    raise Unauthenticated("NodeAdmin needs an authorization: Bearer token")


class SharedTokenAuth:
    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("NodeAdmin needs a non-empty token")
        self._expected = token.encode()

    async def check(self, token: str) -> None:
        if not hmac.compare_digest(token.encode(), self._expected):
            raise Unauthenticated("wrong NodeAdmin token")


@dataclass(frozen=True)
class Review:
    authenticated: bool
    username: str
    audiences: tuple[str, ...]
    error: str = ""


# (token, audience) -> the API server's verdict; blocking, run on a worker thread.
Reviewer = Callable[[str, str], Review]


class TokenReviewAuth:
    def __init__(self, reviewer: Reviewer, service_account: str, audience: str = DEFAULT_AUDIENCE) -> None:
        namespace, _, name = service_account.partition("/")
        if not namespace or not name:
            raise ValueError(f"expected NAMESPACE/NAME for the allowed ServiceAccount, got {service_account!r}")
        self._reviewer = reviewer
        self._audience = audience
        self.allowed_user = f"system:serviceaccount:{namespace}:{name}"
        self._accepted: dict[bytes, float] = {}

    async def check(self, token: str) -> None:
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        if self._accepted.get(digest, 0.0) > now:
            return
        try:
            async with asyncio.timeout(REVIEW_TIMEOUT_S):
                review = await asyncio.to_thread(self._reviewer, token, self._audience)
        except TimeoutError:
            raise Unavailable("the API server did not review the NodeAdmin token in time") from None
        if not review.authenticated:
            raise Unauthenticated(f"the API server did not authenticate the token: {review.error or 'rejected'}")
        if self._audience not in review.audiences:
            raise Unauthenticated(f"the token is not meant for NodeAdmin (audience {self._audience})")
        if review.username != self.allowed_user:
            raise PermissionDenied(f"{review.username} may not call NodeAdmin; only {self.allowed_user} may")
        if len(self._accepted) >= REVIEW_CACHE_ENTRIES:
            self._accepted = {k: v for k, v in self._accepted.items() if v > now}
        self._accepted[digest] = now + REVIEW_CACHE_S


def kubernetes_reviewer(kubeconfig: Path | None) -> Reviewer:
    """A Reviewer calling the TokenReview API with the plugin's own identity (in-cluster
    ServiceAccount, or a kubeconfig); it needs `create tokenreviews` (system:auth-delegator)."""
    from kubernetes import client, config

    if kubeconfig is not None:
        api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api_client = client.ApiClient()
    api = client.AuthenticationV1Api(api_client)

    def review(token: str, audience: str) -> Review:
        body = client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token, audiences=[audience]))
        try:
            status: Any = api.create_token_review(body, _request_timeout=REVIEW_TIMEOUT_S).status
        except Exception as exc:  # the API server's reply never contains the token
            log.warning("TokenReview failed: %s", type(exc).__name__)
            return Review(False, "", (), f"TokenReview failed: {type(exc).__name__}")
        user = status.user
        return Review(
            authenticated=bool(status.authenticated),
            username=(user.username if user is not None else "") or "",
            audiences=tuple(status.audiences or ()),
            error=status.error or "",
        )

    return review
