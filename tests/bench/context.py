"""What every workload gets: the S3 server and bucket, sizes, results, and `session()`, the one
way to mount a system (so profiling and RazorFS's own counters hook in at a single place).

S3 requests are counted in a separate, untimed counting run per system (`counting`): every
session and the raw-boto3 client then talk through the counting proxy, and the workloads mark
where a group of requests starts (`count_requests_from_here`) and ends (`requests_of`). Outside
a counting run both are no-ops, so the timed runs keep the direct path (the Python relay costs
the throughput workloads about 10-15% on this machine)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.realparts.s3server import S3Server

from .control import read_stats
from .counting_proxy import CountingProxy
from .metrics import request_figures
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
    counting: bool = False  # the untimed run that counts S3 requests (see the module's docstring)
    _proxied_s3: Any = None

    def workload_s3(self) -> Any:
        """The client raw-boto3 measurements use: direct, or through the proxy in a counting run.
        Setup, clean-up and durability polls use `s3`, which the proxy never sees."""
        if not self.counting:
            return self.s3
        return self.proxied_s3()

    def proxied_s3(self) -> Any:
        """A boto3 client like `s3` (path-style, same retries) that talks through the proxy."""
        if self._proxied_s3 is None:
            import boto3
            from botocore.config import Config

            self._proxied_s3 = boto3.client(
                "s3",
                endpoint_url=self.proxy.endpoint_url,
                aws_access_key_id=self.server.access_key,
                aws_secret_access_key=self.server.secret_key,
                region_name=self.server.region,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
            )
        return self._proxied_s3

    def count_requests_from_here(self) -> None:
        if self.counting:
            self.proxy.reset()

    def requests_of(self, group: str, settle_s: float = 0.0) -> dict[str, float]:
        """The requests since `count_requests_from_here()` as figures of `group` (metrics.REQUEST_GROUPS),
        after `settle_s` for requests a system still sends on its own (readahead, verification)."""
        if not self.counting:
            return {}
        if settle_s:
            time.sleep(settle_s)
        if self.proxy.unparsed_streams:
            print(f"bench: {self.proxy.unparsed_streams} S3 streams did not parse as HTTP in {group}", file=sys.stderr)
        return request_figures(group, self.proxy.requests_by_kind())

    @contextmanager
    def session(
        self, mounter: Mounter, label: str, through_proxy: bool = False, cache: Path | None = None
    ) -> Iterator[Path]:
        """`cache`: a cache dir that outlives the session (`Mounter.kept_cache_dir`)."""
        endpoint = self.proxy.endpoint_url if through_proxy or self.counting else self.server.endpoint_url
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
