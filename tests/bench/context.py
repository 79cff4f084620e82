"""What every workload gets: the S3 server and bucket, sizes, results, and `session()`, the one
way to mount a system (so profiling and RazorFS's own counters hook in at a single place)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.realparts.s3server import S3Server

from .control import read_stats
from .counting_proxy import CountingProxy
from .mounters import Mounter, RazorFSMounter
from .profiler import Profiler
from .results import ResultSet
from .sizes import BenchSizes


@dataclass
class BenchContext:
    sizes: BenchSizes
    server: S3Server
    s3: Any  # a boto3 S3 client talking to the server directly, never through the proxy
    bucket: str
    workdir: Path
    out_dir: Path
    results: ResultSet
    proxy: CountingProxy
    profiler: Profiler | None = None

    @contextmanager
    def session(
        self, mounter: Mounter, label: str, through_proxy: bool = False, cache: Path | None = None
    ) -> Iterator[Path]:
        """`cache`: a cache dir that outlives the session (`Mounter.kept_cache_dir`)."""
        endpoint = self.proxy.endpoint_url if through_proxy else self.server.endpoint_url
        with mounter.mounted(endpoint, cache) as root:
            profiling = self.profiler is not None and isinstance(mounter, RazorFSMounter) and mounter.pid
            if profiling and self.profiler is not None and mounter.pid is not None:
                self.profiler.start(mounter.pid, label)
            try:
                yield root
            finally:
                if profiling and self.profiler is not None:
                    self.profiler.stop()
                if isinstance(mounter, RazorFSMounter):
                    self._keep_razorfs_stats(mounter, label)

    def _keep_razorfs_stats(self, mounter: RazorFSMounter, label: str) -> None:
        try:
            stats = read_stats(mounter.control_socket())
        except Exception as exc:  # the figure is a note; the measurement itself already succeeded
            print(f"bench: could not read RazorFS stats for {label}: {exc}", file=sys.stderr)
            return
        self.results.notes.setdefault("razorfs_stats", {})[label] = stats
