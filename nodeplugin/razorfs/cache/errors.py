"""The cache layer's own errors. The FUSE layer (`fs.errno_map`) translates them to errno; the
uploader treats them as a reason to retry."""

from __future__ import annotations


class CacheConflict(Exception):
    """The object changed in S3 while this node holds unsaved changes to missing ranges of it."""


class UploadStalled(Exception):
    """fsync() gave up: its file's upload kept failing for longer than the mount's fsync timeout.
    The data stays dirty in the cache and the uploader keeps retrying it."""
