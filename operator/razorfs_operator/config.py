"""The operator's settings. One source of truth: environment variables (RAZORFS_OPERATOR_*), which
`razorfs-operator`'s command-line flags fill in, so `kopf run -m razorfs_operator.handlers` and the
wrapper read the same values."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

ENV_PREFIX = "RAZORFS_OPERATOR_"


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no", ""):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


@dataclass(frozen=True)
class OperatorConfig:
    # How often each RazorVolume's usage, node state and claim use are refreshed.
    resync_interval_s: float = 60.0
    # Delay before retrying a RazorVolume that is not Ready yet (bad credentials, S3 down).
    retry_delay_s: float = 15.0
    # Delay between checks while deletion waits for pods or for the PVC/PV to go away.
    deletion_retry_delay_s: float = 5.0
    # S3 usage: at most one scan per interval per volume, listing at most this many keys (cost
    # bound: one LIST request per 1000 keys).
    usage_interval_s: float = 300.0
    usage_max_objects: int = 100_000
    # Threads for blocking boto3 and Kubernetes client calls.
    worker_threads: int = 8
    s3_timeout_s: float = 10.0
    # Node plugins: found as pods with this label selector in this namespace, reached at podIP:port.
    node_namespace: str = "razorfs-system"
    node_selector: str = "app.kubernetes.io/name=razorfs,app.kubernetes.io/component=node"
    node_admin_port: int = 9810
    # A projected ServiceAccount token bound to the NodeAdmin audience (the chart's), re-read for
    # every call since kubelet rotates it; a shared token file works the same way (development).
    node_admin_token_file: str = "/var/run/secrets/razorfs/node-admin/token"
    # NodeAdmin over TLS (the node plugins' --admin-tls).
    node_admin_tls: bool = False
    node_admin_timeout_s: float = 5.0
    warmup_timeout_s: float = 600.0
    # Comma-separated shell patterns of the S3 endpoints RazorVolumes may name (scheme://host[:port],
    # e.g. "https://*.amazonaws.com,http://minio.storage:9000"); empty allows every endpoint.
    allowed_endpoints: str = ""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorConfig:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is None:
                continue
            kind: Any = parse_bool if isinstance(field.default, bool) else type(field.default)
            try:
                values[field.name] = kind(raw)
            except ValueError as exc:
                raise ValueError(f"{ENV_PREFIX}{field.name.upper()}={raw!r}: {exc}") from exc
        return cls(**values)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        return {ENV_PREFIX + field.name.upper(): str(getattr(self, field.name)) for field in fields(self)}

    def node_admin_token(self) -> str:
        """The bearer token for NodeAdmin, read now: RAZORFS_NODE_ADMIN_TOKEN, else the token
        file, else ""."""
        token = os.environ.get("RAZORFS_NODE_ADMIN_TOKEN")
        if token:
            return token.strip()
        try:
            with open(self.node_admin_token_file, encoding="utf-8") as handle:
                return handle.read().strip()
        except FileNotFoundError:
            return ""
