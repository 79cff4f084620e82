"""Generates the Python gRPC stubs for every .proto under proto/ into proto/razorfs_wire/.

The sources keep their wire packages (`csi.v1`, `razorfs.v1`); only the Python import path is
namespaced under `razorfs_wire` so generated modules cannot collide with our own packages.
Usage: python proto/generate.py [OUTPUT_DIR]   (default: proto/razorfs_wire's parent)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = "razorfs_wire"


def proto_sources() -> list[Path]:
    return sorted(p for p in PROTO_ROOT.rglob("*.proto") if PACKAGE not in p.parts)


def generate(output_parent: Path) -> Path:
    """Writes `<output_parent>/razorfs_wire/...` and returns that package directory."""
    out_pkg = output_parent / PACKAGE
    if out_pkg.exists():
        shutil.rmtree(out_pkg)
    with tempfile.TemporaryDirectory() as staging:
        include = Path(staging)
        for src in proto_sources():
            dest = include / PACKAGE / src.relative_to(PROTO_ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, dest)
        well_known = Path(protoc.__file__).parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"-I{include}",
            f"-I{well_known}",
            f"--python_out={output_parent}",
            f"--pyi_out={output_parent}",
            f"--grpc_python_out={output_parent}",
        ]
        args += [str(p.relative_to(include)) for p in sorted(include.rglob("*.proto"))]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
    for directory in [out_pkg, *[d for d in out_pkg.rglob("*") if d.is_dir()]]:
        (directory / "__init__.py").touch()
    return out_pkg


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT)
