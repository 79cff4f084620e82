"""A seeded random sequence of store operations through the fault proxy (30% of requests fail),
checked after every step against an in-memory model of the bucket. Short in `make test`; the
`slow` variant runs many more operations."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from razorfs.store.base import CopyRange, FileRange
from razorfs.store.errors import ObjectNotFound
from razorfs.store.s3 import S3Store
from razorfs.store.s3_settings import MiB
from tests.integration.store.conftest import make_store
from tests.realparts.faultproxy import FaultProxy
from tests.realparts.s3server import S3Server

pytestmark = pytest.mark.s3

KEYS = ["f0", "f1", "d/f2", "d/e/f3"]
SIZES = [0, 1, 4096, 300_000, 6 * MiB + 11]


def run_random_ops(proxied: S3Store, direct: S3Store, tmp_path: Path, seed: int, operations: int) -> None:
    rng = random.Random(seed)
    model: dict[str, bytes] = {}
    for step in range(operations):
        op = rng.choice(["put", "put_file", "compose", "copy", "delete", "read", "delete_many"])
        key = rng.choice(KEYS)
        context = f"step {step} (seed {seed}): {op} {key}"
        if op == "put":
            data = rng.randbytes(rng.choice(SIZES[:4]))
            proxied.put_bytes(key, data, {"step": str(step)})
            model[key] = data
        elif op == "put_file":
            data = rng.randbytes(rng.choice(SIZES))
            path = tmp_path / f"src{step}"
            path.write_bytes(data)
            proxied.put_file(key, path, {"step": str(step)})
            path.unlink()
            model[key] = data
        elif op == "compose" and key in model and len(model[key]) > 10:
            old = model[key]
            cut = rng.randrange(1, len(old))
            patch = rng.randbytes(rng.randrange(1, 5000))
            path = tmp_path / f"patch{step}"
            path.write_bytes(patch)
            proxied.compose(key, [CopyRange(key, 0, cut), FileRange(path, 0, len(patch))], {})
            model[key] = old[:cut] + patch
        elif op == "copy" and key in model:
            dest = rng.choice(KEYS)
            proxied.copy(key, dest)
            model[dest] = model[key]
        elif op == "delete":
            proxied.delete(key)
            model.pop(key, None)
        elif op == "delete_many":
            doomed = rng.sample(KEYS, 2)
            proxied.delete_many(doomed)
            for k in doomed:
                model.pop(k, None)
        elif op == "read" and key in model:
            start = rng.randrange(0, len(model[key]) + 1)
            assert proxied.get_range(key, start, 70_000) == model[key][start : start + 70_000], context
        for k in KEYS:  # the bucket, read without faults, equals the model after every step
            if k in model:
                assert direct.head(k).size == len(model[k]), context
            else:
                with pytest.raises(ObjectNotFound):
                    direct.head(k)
    for k, data in model.items():
        assert direct.get_range(k, 0, len(data) + 1) == data, f"final content of {k} (seed {seed})"


@pytest.fixture
def stores(s3_server: S3Server, bucket: str, fault_proxy: FaultProxy) -> tuple[S3Store, S3Store]:
    fault_proxy.set_chaos(0.3, seed=2026)
    return make_store(s3_server, bucket, endpoint_url=fault_proxy.endpoint_url), make_store(s3_server, bucket)


def test_random_operations_under_30_percent_faults_match_the_model(
    stores: tuple[S3Store, S3Store], tmp_path: Path, fault_proxy: FaultProxy
) -> None:
    run_random_ops(*stores, tmp_path, seed=1, operations=80)
    assert fault_proxy.faults_injected() >= 10  # faults really hit the run


@pytest.mark.slow
def test_many_random_operations_under_30_percent_faults_match_the_model(
    stores: tuple[S3Store, S3Store], tmp_path: Path
) -> None:
    if os.environ.get("RAZORFS_SOAK") != "1":
        pytest.skip("long variant: runs under `make soak` (RAZORFS_SOAK=1)")
    operations = int(os.environ.get("RAZORFS_STORE_RANDOM_OPS", "3000"))
    run_random_ops(*stores, tmp_path, seed=int(os.environ.get("RAZORFS_SEED", "7")), operations=operations)
