"""The workload pod's identity a publish carries for an `authentication: pod` volume: its
namespace and ServiceAccount (podInfoOnMount) and the projected ServiceAccount token kubelet asked
for on our behalf (the CSIDriver's tokenRequests; JSON `{"<audience>": {"token", "expirationTimestamp"}}`).

The token is a credential: it is kept out of repr, and no message here ever quotes it or the JSON
that holds it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from razorfs.csi.errors import InvalidArgument

POD_NAMESPACE_KEY = "csi.storage.k8s.io/pod.namespace"
SERVICE_ACCOUNT_KEY = "csi.storage.k8s.io/serviceAccount.name"
TOKENS_KEY = "csi.storage.k8s.io/serviceAccount.tokens"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


@dataclass(frozen=True)
class PodIdentity:
    namespace: str
    service_account: str
    token: str = field(repr=False)

    @property
    def name(self) -> str:
        """ "<namespace>/<service account>": whose mount this is."""
        return f"{self.namespace}/{self.service_account}"


def pod_identity(context: Mapping[str, str], audience: str) -> PodIdentity | None:
    """The identity of a publish's pod, None when kubelet passed no tokens at all. `audience` ""
    takes the only token there is. Raises InvalidArgument for a malformed context, naming keys
    and audiences only."""
    raw = context.get(TOKENS_KEY, "").strip()
    if not raw:
        return None
    tokens = _tokens(raw)
    if not audience:
        if len(tokens) != 1:
            raise InvalidArgument(
                f"{TOKENS_KEY} holds tokens for {len(tokens)} audiences ({', '.join(sorted(tokens))}): "
                "the volume must name its audience (webIdentity.audience)"
            )
        (audience,) = tokens
    token = tokens.get(audience)
    if not token:
        raise InvalidArgument(
            f"{TOKENS_KEY} has no token for the volume's audience {audience!r} (it has {', '.join(sorted(tokens))}): "
            "the CSIDriver's tokenRequests must include that audience"
        )
    namespace = context.get(POD_NAMESPACE_KEY, "").strip()
    service_account = context.get(SERVICE_ACCOUNT_KEY, "").strip()
    for key, value in ((POD_NAMESPACE_KEY, namespace), (SERVICE_ACCOUNT_KEY, service_account)):
        if not _NAME.fullmatch(value):
            raise InvalidArgument(f"{key} must be a Kubernetes object name, got {value[:64]!r}")
    return PodIdentity(namespace, service_account, token)


def _tokens(raw: str) -> dict[str, str]:
    """audience -> token, from kubelet's JSON."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidArgument(f"{TOKENS_KEY} must be a JSON object of audiences") from None
    tokens: dict[str, str] = {}
    for audience, entry in parsed.items():
        token = entry.get("token") if isinstance(entry, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise InvalidArgument(f"{TOKENS_KEY}: the entry for audience {str(audience)[:253]!r} has no token")
        tokens[str(audience)] = token.strip()
    return tokens
