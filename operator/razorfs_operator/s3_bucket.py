"""The operator's view of a volume's S3 location, through the node side's object store
(`razorfs.store`: its shared clients, retries, error translation and prefix deletion): is the
bucket reachable and the prefix writable, how much is stored under the prefix (bounded listing),
and deleting everything under the prefix. Calls block; callers run them on the worker pool. The
store's typed errors become the VolumeProblems of razorfs_operator.errors here and nowhere else."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from razorfs.store.errors import (
    AccessDenied,
    BucketNotFound,
    InvalidCredentials,
    StoreError,
    StoreUnavailable,
)
from razorfs.store.prefix_delete import delete_prefix
from razorfs.store.retry import RetryPolicy
from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import S3Settings
from razorfs.volume_spec import S3Location, VolumeUsage

from .credentials import S3Credentials
from .errors import (
    CredentialsRejected,
    S3AccessDenied,
    S3BucketMissing,
    S3RequestFailed,
    S3Unreachable,
)

PROBE_KEY_NAME = ".razorfs-write-check"
# A reconcile should report an unreachable endpoint soon and try again at its next run: three
# attempts, not the eight a mount daemon makes before failing a file operation.
OPERATOR_RETRY = RetryPolicy(max_attempts=3)


def _ca_bundle_file(pem: str) -> Path:
    """A file holding the CA bundle (boto3 wants a path), named by its content and kept for the
    life of the process, as long as clients using it may live."""
    path = os.path.join(tempfile.gettempdir(), f"razorfs-ca-{hashlib.sha256(pem.encode()).hexdigest()[:24]}.pem")
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(prefix="razorfs-ca-", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(pem)
        os.replace(tmp, path)
    return Path(path)


class VolumeBucket:
    def __init__(
        self,
        location: S3Location,
        credentials: S3Credentials,
        timeout_s: float,
        ca_bundle_pem: str | None = None,
        credentials_from: str = "the Secret",
        connections: int = 10,
    ) -> None:
        self.location = location
        self._credentials_from = credentials_from
        settings = S3Settings(
            bucket=location.bucket,
            endpoint_url=location.endpoint,
            region=location.region,
            force_path_style=location.force_path_style,
            ca_bundle=_ca_bundle_file(ca_bundle_pem) if ca_bundle_pem else None,
            # One connection per worker thread that may use the shared client at once.
            max_pool_connections=max(10, connections),
            connect_timeout_s=timeout_s,
            read_timeout_s=timeout_s,
            retry=OPERATOR_RETRY,
            access_key_id=credentials.access_key_id,
            secret_access_key=credentials.secret_access_key,
            session_token=credentials.session_token,
        )
        self._store = S3Store(settings, reuse_client=True)

    def check_writable(self) -> None:
        """The bucket answers with these credentials and a probe object can be written under the
        prefix (and is removed again)."""
        # A fixed key: a probe left behind by a killed operator is overwritten and removed by the
        # next check instead of piling up; S3 deletes are idempotent, so concurrent checks agree.
        key = f"{self.location.key_prefix}{PROBE_KEY_NAME}"
        with self._translated():
            # LIST rather than HEAD: a HEAD error has no body, so bad credentials and a denied
            # bucket would look the same.
            self._store.check_bucket(self.location.key_prefix)
            self._store.put_bytes(key, b"", {})
            self._store.delete(key)

    def measure_usage(self, max_objects: int) -> VolumeUsage:
        """Objects and bytes under the prefix, listing at most `max_objects` keys."""
        objects = bytes_ = 0
        truncated = False
        with self._translated():
            for page in self._store.list_pages(self.location.key_prefix, delimiter=None):
                for info in page.objects:
                    if objects >= max_objects:
                        truncated = True
                        break
                    objects += 1
                    bytes_ += info.size
                if truncated:
                    break
        return VolumeUsage(
            objects=objects,
            bytes=bytes_,
            truncated=truncated,
            scanned_at=datetime.now(UTC).replace(microsecond=0),
        )

    def delete_everything(self) -> int:
        """Deletes every object under the prefix; returns the count (0 when the bucket is gone)."""
        if not self.location.key_prefix:
            # The CRD forbids reclaimPolicy Delete with an empty prefix; refuse here too.
            raise S3AccessDenied("refusing to delete the objects of a whole bucket (empty prefix)")
        with self._translated():
            return delete_prefix(self._store, self.location.key_prefix)

    @contextmanager
    def _translated(self) -> Iterator[None]:
        what = f"bucket {self.location.bucket}"
        try:
            yield
        except InvalidCredentials as err:
            raise CredentialsRejected(
                f"S3 rejected the credentials in Secret {self._credentials_from} for {what}: {err}"
            ) from None
        except BucketNotFound:
            raise S3BucketMissing(f"{what} does not exist") from None
        except AccessDenied as err:
            raise S3AccessDenied(f"S3 denied access to {what}: {err}") from None
        except StoreUnavailable as err:
            raise S3Unreachable(f"cannot reach the S3 endpoint for {what}: {err}") from None
        except StoreError as err:
            raise S3RequestFailed(f"S3 request on {what} failed: {err}") from None
