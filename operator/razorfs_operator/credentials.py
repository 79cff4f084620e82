"""S3 credentials read from a RazorVolume's Secret. The values never leave this object except into
boto3: repr() hides them and no message built here quotes them."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from razorfs.volume_spec import SecretKey

from .errors import SecretIncomplete


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def credentials_from_secret_data(secret_name: str, data: dict[str, str] | None) -> S3Credentials:
    """Credentials from a Secret's base64 `data`; names the missing keys, never the values."""
    values = _decode(secret_name, data or {})
    missing = [key for key in (SecretKey.ACCESS_KEY_ID, SecretKey.SECRET_ACCESS_KEY) if not values.get(key)]
    if missing:
        raise SecretIncomplete(f"Secret {secret_name} lacks the key(s) {', '.join(missing)}")
    return S3Credentials(
        access_key_id=values[SecretKey.ACCESS_KEY_ID],
        secret_access_key=values[SecretKey.SECRET_ACCESS_KEY],
        session_token=values.get(SecretKey.SESSION_TOKEN) or None,
    )


def ca_bundle_from_secret_data(secret_name: str, key: str, data: dict[str, str] | None) -> str:
    values = _decode(secret_name, data or {})
    if not values.get(key):
        raise SecretIncomplete(f"Secret {secret_name} lacks the key {key} (the CA bundle)")
    return values[key]


def _decode(secret_name: str, data: dict[str, str]) -> dict[str, str]:
    decoded: dict[str, str] = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(value).decode("utf-8").strip()
        except (binascii.Error, UnicodeDecodeError):
            raise SecretIncomplete(f"Secret {secret_name} key {key} is not valid base64 UTF-8 text") from None
    return decoded
