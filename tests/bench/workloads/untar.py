"""Workload 6: untar a real source tree (headers from /usr/include) into the mount, then read
every file back after dropping the kernel's page cache (so reads hit the mount, not the kernel)."""

from __future__ import annotations

import os
import subprocess
import tarfile
import time
from pathlib import Path

from ..context import BenchContext
from ..mounters import Mounter
from ..pagecache import drop_page_cache
from ..s3objects import delete_prefix, wait_files_durable
from .base import FS_SYSTEMS, REQUESTS_SETTLE_S, Workload, read_whole_file

PREFIX = "untar/"
SOURCE_ROOT = Path("/usr/include")
# Ownership and modes are not what this workload measures: as root, tar would chown and chmod
# every directory afterwards, which s3fs 1.90 answers with ENOENT.
UNTAR_ARGV = ("tar", "--no-same-owner", "--no-same-permissions", "-xf")


class Untar(Workload):
    name = "untar"
    systems = FS_SYSTEMS

    def tarball(self, ctx: BenchContext) -> Path:
        return ctx.workdir / "tree.tar"

    def prepare(self, ctx: BenchContext, local_root: Path) -> None:
        ctx.s3.put_object(Bucket=ctx.bucket, Key=PREFIX, Body=b"")
        (local_root / PREFIX).mkdir(parents=True, exist_ok=True)
        missing = [d for d in ctx.sizes.tree_dirs if not (SOURCE_ROOT / d).is_dir()]
        if missing:
            raise FileNotFoundError(f"source tree folders missing under {SOURCE_ROOT}: {missing}")
        # Symlinks and hard links would measure link support, not the tree; keep regular files.
        subprocess.run(
            ["tar", "-cf", str(self.tarball(ctx)), "--hard-dereference", "--dereference",
             "-C", str(SOURCE_ROOT), *ctx.sizes.tree_dirs],
            check=True,
        )  # fmt: skip
        with tarfile.open(self.tarball(ctx)) as tar:
            members = tar.getmembers()
        files = [m for m in members if m.isfile()]
        ctx.results.notes["untar_tree"] = {
            "dirs": list(ctx.sizes.tree_dirs),
            "files": len(files),
            "bytes": sum(m.size for m in files),
        }

    def measure_fs(self, ctx: BenchContext, mounter: Mounter, run: int) -> dict[str, float]:
        folder = f"{mounter.name}-r{run}"
        expected = ctx.results.notes["untar_tree"]["files"]
        with ctx.session(mounter, f"untar-{mounter.name}-r{run}") as root:
            target = root / PREFIX / folder
            ctx.count_requests_from_here()
            target.mkdir()
            start = time.monotonic()
            untar = subprocess.run([*UNTAR_ARGV, str(self.tarball(ctx)), "-C", str(target)], capture_output=True)
            if untar.returncode != 0:
                raise RuntimeError(f"tar exited {untar.returncode}: {untar.stderr.decode()[-300:]}")
            untar_s = time.monotonic() - start
            drop_page_cache()
            start = time.monotonic()
            files = 0
            for dirpath, _, filenames in os.walk(target):
                for name in filenames:
                    read_whole_file(Path(dirpath) / name)
                    files += 1
            readback_s = time.monotonic() - start
            if ctx.counting:  # uploads still running after the read-back are the untar's too
                wait_files_durable(ctx.s3, ctx.bucket, f"{PREFIX}{folder}/", expected)
            requests = ctx.requests_of("untar", settle_s=REQUESTS_SETTLE_S)
        if files != expected:
            raise AssertionError(f"read back {files} files, the tarball has {expected}")
        return {"untar_s": untar_s, "untar_readback_s": readback_s, **requests}

    def cleanup(self, ctx: BenchContext, local_root: Path) -> None:
        delete_prefix(ctx.s3, ctx.bucket, PREFIX)
        self.tarball(ctx).unlink(missing_ok=True)
