"""Files the node plugin writes that nobody else may read (a volume's CA bundle, daemon logs):
created with their final mode, never chmodded after, and never written through a symlink."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PRIVATE_FILE_MODE = 0o600


def write_private_file(path: Path, data: bytes) -> None:
    """Replaces `path` with a new 0600 file holding `data`. O_EXCL|O_NOFOLLOW: a file or link
    planted at the path is removed first, never written through."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
