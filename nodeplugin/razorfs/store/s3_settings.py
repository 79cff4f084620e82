"""`S3Settings`: everything needed to talk to one bucket (endpoint, addressing, TLS, encryption,
transfer sizes, pool and retry bounds). Credentials come from boto3's default chain only when
`credential_source` says "default-chain" (the CLI's default, for a person at a shell); with
"explicit" they are `credentials` and nothing else; with "web-identity" they are the keys STS
issues for `web_identity`'s token, and nothing else. Secrets are kept out of `repr`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from razorfs.store.part_plan import MAX_PART_BYTES, MIN_PART_BYTES
from razorfs.store.retry import RetryPolicy
from razorfs.store.s3_credentials import CredentialSource, StaticKeys, WebIdentity

MiB = 1024 * 1024
GiB = 1024 * MiB

SseMode = Literal["AES256", "aws:kms"]


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None  # None: AWS's endpoint for `region`
    region: str | None = None
    force_path_style: bool = False
    ca_bundle: Path | None = None
    verify_tls: bool = True
    sse: SseMode | None = None
    sse_kms_key_id: str | None = None
    multipart_threshold_bytes: int = 16 * MiB
    part_size_bytes: int = 8 * MiB
    copy_part_size_bytes: int = 1 * GiB
    # Objects larger than this are copied with multipart copy (S3's CopyObject limit is 5 GiB).
    max_single_copy_bytes: int = 5 * GiB
    multipart_concurrency: int = 4
    max_pool_connections: int = 16
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    credential_source: CredentialSource = "default-chain"
    # With credential_source "explicit": the only keys requests are signed with.
    credentials: StaticKeys | None = field(default=None, repr=False)
    # With credential_source "web-identity": the token file, role and STS endpoint.
    web_identity: WebIdentity | None = None

    def __post_init__(self) -> None:
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise ValueError("sse_kms_key_id needs sse='aws:kms'")
        if not MIN_PART_BYTES <= self.part_size_bytes <= MAX_PART_BYTES - MIN_PART_BYTES:
            raise ValueError(f"part size must be between 5 MiB and 5 GiB, got {self.part_size_bytes}")
        if self.multipart_concurrency < 1 or self.max_pool_connections < 1:
            raise ValueError("multipart concurrency and pool connections must be at least 1")
        if self.credential_source == "explicit" and self.credentials is None:
            raise ValueError("credential_source 'explicit' needs credentials")
        if (self.credential_source == "web-identity") != (self.web_identity is not None):
            raise ValueError("credential_source 'web-identity' needs web_identity, and web_identity needs it")
        if self.credential_source == "web-identity" and (self.credentials or self.access_key_id):
            raise ValueError("credential_source 'web-identity' signs with STS's keys only: no static keys")
