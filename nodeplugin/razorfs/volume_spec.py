"""Shared vocabulary of the operator and the node plugin: RazorVolume spec and status models,
the CSI volume-context keys that carry a volume's settings to the node, the Secret's key names,
and size/duration parsing. Nothing else crosses between operator/ and nodeplugin/."""

from __future__ import annotations

import re

CSI_DRIVER_NAME = "razorfs.csi.io"

# Keys of the CSI volume context (PV volumeAttributes, StorageClass parameters).
class ContextKey:
    ENDPOINT = "endpoint"
    BUCKET = "bucket"
    PREFIX = "prefix"
    REGION = "region"
    FORCE_PATH_STYLE = "forcePathStyle"
    SSE = "sse"  # "", "AES256" or "aws:kms"
    SSE_KMS_KEY_ID = "sseKmsKeyId"
    CACHE_MODE = "cacheMode"
    CACHE_SIZE = "cacheSize"
    METADATA_TTL = "metadataTTL"
    UID = "uid"
    GID = "gid"
    FILE_MODE = "fileMode"
    DIR_MODE = "dirMode"
    READ_ONLY = "readOnly"


# Keys of the credentials Secret (and so of the CSI stage / provisioner secrets).
class SecretKey:
    ACCESS_KEY_ID = "accessKeyID"
    SECRET_ACCESS_KEY = "secretAccessKey"
    SESSION_TOKEN = "sessionToken"
    CA_BUNDLE = "caBundle"


CACHE_MODES = ("writeback", "writethrough", "readonly")

_SIZE_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
    "pi": 1024**5,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]i?)?b?\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_size(text: str) -> int:
    """Bytes from a size like `10GiB`, `10Gi`, `512M`, `4096`. Raises ValueError with a message
    fit for a user."""
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"invalid size {text!r}: expected a number with an optional unit like 10GiB, 512Mi or 4096")
    number, unit = match.groups()
    bytes_ = float(number) * _SIZE_UNITS[(unit or "").lower()]
    return int(bytes_)


def parse_duration(text: str) -> float:
    """Seconds from a duration like `1s`, `500ms`, `2m`, `0`."""
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"invalid duration {text!r}: expected a number with an optional unit ms, s, m or h")
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[unit]


def parse_mode(text: str) -> int:
    """A permission mode from octal text like `0644` or `755`."""
    if not re.fullmatch(r"0?[0-7]{3,4}", text.strip()):
        raise ValueError(f"invalid mode {text!r}: expected octal like 0644")
    return int(text, 8) & 0o7777
