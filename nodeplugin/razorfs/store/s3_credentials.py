"""Where an S3 client's credentials come from, and keys that can be swapped while it runs.

`StaticKeys` are a volume's own keys. `SwappableCredentials` hands botocore's signer the current
keys on every request, so new keys (a rotated Secret's session token) are used from the next
request on without a new client. `explicit_session` builds a boto3 session that signs only with
such keys: its credential chain is empty and it reads no AWS config or credentials file, so it
can never fall back to the environment, a profile or the instance metadata service."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import boto3
import botocore.credentials
import botocore.session

CredentialSource = Literal["default-chain", "explicit"]
CREDENTIAL_SOURCES: tuple[CredentialSource, ...] = ("default-chain", "explicit")

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


# botocore session variables: name -> (config file key, environment variables, default, conversion).
_FIXED_SESSION_VARS = {
    "profile": (None, None, None, None),
    "config_file": (None, None, os.devnull, None),
    "credentials_file": (None, None, os.devnull, None),
    "ignore_configured_endpoint_urls": (None, None, True, None),
}


def explicit_session(credentials: SwappableCredentials, region: str | None) -> boto3.session.Session:
    """A boto3 session that signs with `credentials` only and never walks the default chain."""
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
