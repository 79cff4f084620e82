"""Where an S3 client's credentials come from, and keys that can be swapped while it runs.

`StaticKeys` are a volume's own keys. `SwappableCredentials` hands botocore's signer the current
keys on every request, so new keys (a rotated Secret's session token) are used from the next
request on without a new client. `WebIdentityCredentials` are short-lived keys that STS issues
for a projected ServiceAccount token (AssumeRoleWithWebIdentity), fetched again before they
expire, each time with the token file as it is then (kubelet rotates it). `explicit_session`
builds a boto3 session that signs only with such credentials: its credential chain is empty and
it reads no AWS config or credentials file, so it can never fall back to the environment, a
profile or the instance metadata service. No key, session token or identity token ever appears
in a repr, a log line or an exception message."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config

log = logging.getLogger(__name__)

# "web-identity": WebIdentityCredentials (S3Settings.web_identity), nothing else.
CredentialSource = Literal["default-chain", "explicit", "web-identity"]
# What `razorfs mount --credential-source` offers.
CREDENTIAL_SOURCES: tuple[CredentialSource, ...] = ("default-chain", "explicit", "web-identity")

# The environment variables an explicit-credential daemon reads its first keys from (the node
# plugin sets them; nothing else of the environment is consulted).
ACCESS_KEY_ENV = "AWS_ACCESS_KEY_ID"
SECRET_KEY_ENV = "AWS_SECRET_ACCESS_KEY"
SESSION_TOKEN_ENV = "AWS_SESSION_TOKEN"


class MissingCredentials(ValueError):
    """Explicit credentials were asked for but are incomplete; the message names what is missing,
    never a value."""


@dataclass(frozen=True)
class StaticKeys:
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        missing = [
            name
            for name, value in (("access key id", self.access_key_id), ("secret access key", self.secret_access_key))
            if not value
        ]
        if missing:
            raise MissingCredentials(f"explicit S3 credentials lack the {' and the '.join(missing)}")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> StaticKeys:
        env = os.environ if environ is None else environ
        missing = [name for name in (ACCESS_KEY_ENV, SECRET_KEY_ENV) if not env.get(name, "").strip()]
        if missing:
            raise MissingCredentials(f"explicit S3 credentials: {' and '.join(missing)} not set")
        token = env.get(SESSION_TOKEN_ENV, "").strip() or None
        return cls(env[ACCESS_KEY_ENV].strip(), env[SECRET_KEY_ENV].strip(), token)


class SwappableCredentials(botocore.credentials.Credentials):  # type: ignore[misc]
    """botocore credentials whose keys `replace` changes atomically; every request signs with the
    keys current when it is signed (botocore calls `get_frozen_credentials` per request)."""

    def __init__(self, keys: StaticKeys) -> None:
        self._lock = threading.Lock()
        super().__init__(keys.access_key_id, keys.secret_access_key, keys.session_token, method="razorfs-explicit")

    def replace(self, keys: StaticKeys) -> None:
        with self._lock:
            self.access_key = keys.access_key_id
            self.secret_key = keys.secret_access_key
            self.token = keys.session_token

    def get_frozen_credentials(self) -> botocore.credentials.ReadOnlyCredentials:
        with self._lock:
            return botocore.credentials.ReadOnlyCredentials(self.access_key, self.secret_key, self.token, None)


# STS's bounds for AssumeRoleWithWebIdentity's DurationSeconds and RoleSessionName.
MIN_SESSION_DURATION_S = 900
MAX_SESSION_DURATION_S = 43200
DEFAULT_SESSION_DURATION_S = 3600
_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
# Fetch new keys when this much of their life is left: a third of it, at most botocore's usual
# 15 minutes; a refresh that fails is retried on later requests until half of that is left,
# then requests fail rather than sign with keys about to expire.
MAX_REFRESH_BEFORE_S = 900.0
DEFAULT_STS_REGION = "us-east-1"
STS_CONNECT_TIMEOUT_S = 5.0
STS_READ_TIMEOUT_S = 15.0


class WebIdentityFailed(RuntimeError):
    """STS did not issue credentials for the token: it refused it (`refused`), or could not be
    reached (worth another try); the message names the endpoint, role and STS's error code, never
    the token."""

    def __init__(self, message: str, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(frozen=True)
class WebIdentity:
    """How to get keys for a ServiceAccount token: which file holds the token (read anew at every
    fetch), which role to assume, at which STS endpoint, for how long."""

    token_file: Path
    role_arn: str
    sts_endpoint_url: str | None = None  # None: AWS's regional STS endpoint for `region`
    region: str | None = None
    session_name: str = "razorfs"
    duration_s: int = DEFAULT_SESSION_DURATION_S
    # None: a third of the keys' lifetime, at most MAX_REFRESH_BEFORE_S.
    refresh_before_s: float | None = None
    sts_ca_bundle: Path | None = None

    def __post_init__(self) -> None:
        if not self.role_arn.startswith("arn:") or ":role/" not in self.role_arn:
            raise ValueError(f"{self.role_arn!r} is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)")
        if not MIN_SESSION_DURATION_S <= self.duration_s <= MAX_SESSION_DURATION_S:
            raise ValueError(
                f"web identity session duration must be {MIN_SESSION_DURATION_S} to {MAX_SESSION_DURATION_S} s, "
                f"got {self.duration_s}"
            )
        if not _SESSION_NAME.match(self.session_name):
            raise ValueError("session name must be 2 to 64 letters, digits or any of + = , . @ _ -")
        if self.refresh_before_s is not None and not 0 < self.refresh_before_s < self.duration_s:
            raise ValueError("refresh_before_s must be positive and shorter than the session duration")

    def read_token(self) -> str:
        try:
            token = self.token_file.read_text().strip()
        except OSError as err:
            raise MissingCredentials(f"web identity token file {self.token_file}: {err.strerror}") from None
        if not token:
            raise MissingCredentials(f"web identity token file {self.token_file} is empty")
        return token

    @property
    def where(self) -> str:
        return f"STS {self.sts_endpoint_url or f'of AWS {self.region or DEFAULT_STS_REGION}'} for role {self.role_arn}"


class WebIdentityCredentials(botocore.credentials.RefreshableCredentials):  # type: ignore[misc]
    """Keys from AssumeRoleWithWebIdentity, fetched once here (so a refused token fails the caller
    at once, with WebIdentityFailed or MissingCredentials) and again by botocore whenever a request
    is signed with less than the refresh margin of their life left."""

    def __init__(self, identity: WebIdentity) -> None:
        self._identity = identity
        self._sts = _sts_client(identity)
        first = self._fetch()
        super().__init__(
            first["access_key"],
            first["secret_key"],
            first["token"],
            datetime.fromisoformat(first["expiry_time"]),
            refresh_using=self._fetch,
            method="razorfs-web-identity",
        )
        margin = identity.refresh_before_s
        if margin is None:
            margin = min(MAX_REFRESH_BEFORE_S, identity.duration_s / 3)
        # botocore's names: past the advisory margin a refresh is tried and a failure tolerated;
        # past the mandatory one a failed refresh fails the request.
        self._advisory_refresh_timeout = margin
        self._mandatory_refresh_timeout = margin / 2

    @property
    def identity(self) -> WebIdentity:
        return self._identity

    def _fetch(self) -> dict[str, str]:
        identity = self._identity
        token = identity.read_token()
        try:
            reply = self._sts.assume_role_with_web_identity(
                RoleArn=identity.role_arn,
                RoleSessionName=identity.session_name,
                WebIdentityToken=token,
                DurationSeconds=identity.duration_s,
            )
        except botocore.exceptions.ClientError as err:
            code = err.response.get("Error", {}).get("Code", "Unknown")
            raise WebIdentityFailed(f"{identity.where} refused the token: {code}", refused=True) from None
        except botocore.exceptions.BotoCoreError as err:
            message = f"{identity.where} could not be asked: {type(err).__name__}"
            raise WebIdentityFailed(message, refused=False) from None
        keys = reply["Credentials"]
        expiry: datetime = keys["Expiration"]
        log.info("web identity credentials from %s; they expire at %s", identity.where, expiry.isoformat())
        return {
            "access_key": keys["AccessKeyId"],
            "secret_key": keys["SecretAccessKey"],
            "token": keys["SessionToken"],
            "expiry_time": expiry.isoformat(),
        }

    def __repr__(self) -> str:
        return f"WebIdentityCredentials({self._identity.where})"


def _sts_client(identity: WebIdentity) -> Any:  # an STS client (no stubs installed for STS)
    """An STS client that sends AssumeRoleWithWebIdentity unsigned (the token is the proof) and,
    like explicit_session, reads nothing from the environment or config files."""
    core = botocore.session.Session(session_vars=_FIXED_SESSION_VARS)
    core.register_component("credential_provider", botocore.credentials.CredentialResolver(providers=[]))
    config = Config(
        signature_version=UNSIGNED,
        connect_timeout=STS_CONNECT_TIMEOUT_S,
        read_timeout=STS_READ_TIMEOUT_S,
        retries={"total_max_attempts": 3, "mode": "standard"},
    )
    return core.create_client(
        "sts",
        region_name=identity.region or DEFAULT_STS_REGION,
        endpoint_url=identity.sts_endpoint_url,
        verify=str(identity.sts_ca_bundle) if identity.sts_ca_bundle else True,
        config=config,
    )


# botocore session variables: name -> (config file key, environment variables, default, conversion).
_FIXED_SESSION_VARS = {
    "profile": (None, None, None, None),
    "config_file": (None, None, os.devnull, None),
    "credentials_file": (None, None, os.devnull, None),
    "ignore_configured_endpoint_urls": (None, None, True, None),
}


def explicit_session(credentials: botocore.credentials.Credentials, region: str | None) -> boto3.session.Session:
    """A boto3 session that signs with `credentials` (swappable keys or web identity ones) only and
    never walks the default chain."""
    # No profile, config or credentials file is read (they could name credential_process, SSO or
    # web identity settings) and no endpoint is taken from the environment, whatever AWS_*
    # variables the process has: these settings are fixed, not looked up (env name None).
    core = botocore.session.Session(session_vars=_FIXED_SESSION_VARS)
    # An empty resolver: were our credentials ever dropped, the client would sign nothing
    # rather than ask the environment or the instance metadata service.
    core.register_component("credential_provider", botocore.credentials.CredentialResolver(providers=[]))
    # What get_credentials() returns from now on: no resolver is ever consulted.
    core._credentials = credentials  # type: ignore[attr-defined]
    return boto3.session.Session(botocore_session=core, region_name=region)
