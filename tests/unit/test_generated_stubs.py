"""The generated gRPC stubs in proto/razorfs_wire match what the .proto sources generate now."""

from __future__ import annotations

import filecmp
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["proto_generate"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = _load_generator().generate(tmp_path)
    current = ROOT / "proto" / "razorfs_wire"
    assert current.is_dir(), "proto/razorfs_wire is missing: run `make proto`"
    fresh_files = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    current_files = sorted(
        p.relative_to(current) for p in current.rglob("*") if p.is_file() and p.suffix != ".pyc"
    )
    assert fresh_files == current_files, "stub set differs from the .proto sources: run `make proto`"
    stale = [str(p) for p in fresh_files if not filecmp.cmp(fresh / p, current / p, shallow=False)]
    assert not stale, f"stale generated stubs {stale}: run `make proto`"


def test_every_proto_source_has_stubs() -> None:
    sources = [p for p in (ROOT / "proto").rglob("*.proto") if "razorfs_wire" not in p.parts]
    assert sources
    for src in sources:
        rel = src.relative_to(ROOT / "proto").with_suffix("")
        assert (ROOT / "proto" / "razorfs_wire" / rel.parent / f"{rel.name}_pb2.py").exists(), src
