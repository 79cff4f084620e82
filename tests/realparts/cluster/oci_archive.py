"""Single-layer OCI image archives written without a registry or a container engine.

`containerd` imports them (`ctr images import`) under the name given in the index's
`io.containerd.image.name` annotation; buildah pulls them as a local base (`oci-archive:FILE`).
The layer is an uncompressed tar, so its digest is also its diff id.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"
CHUNK_BYTES = 1 << 20
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CREATED = "2026-01-01T00:00:00Z"  # fixed, so the same inputs give the same digests


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an OCI image config a local test image needs."""

    entrypoint: list[str]
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    user: str = ""
    cmd: list[str] = field(default_factory=list)


def _digest_file(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            sha.update(chunk)
            size += len(chunk)
    return f"sha256:{sha.hexdigest()}", size


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _blob(archive: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    _add_bytes(archive, f"blobs/sha256/{digest.removeprefix('sha256:')}", data)
    return digest, len(data)


def write_image_archive(layer_tar: Path, reference: str, config: ImageConfig, out: Path) -> Path:
    """Packs `layer_tar` (a root filesystem as a tar) into an OCI archive named `reference`."""
    layer_digest, layer_size = _digest_file(layer_tar)
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": config.entrypoint,
            "Cmd": config.cmd or None,
            "Env": config.env,
            "User": config.user,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        # One history entry per layer: buildah checks the two agree when it commits on top.
        "created": CREATED,
        "history": [{"created": CREATED, "created_by": f"tests/realparts/cluster/oci_archive.py ({reference})"}],
    }
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, "w") as archive:
        _add_bytes(archive, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        archive.add(layer_tar, arcname=f"blobs/sha256/{layer_digest.removeprefix('sha256:')}")
        config_digest, config_size = _blob(archive, json.dumps(image_config).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer_size}],
        }
        manifest_digest, manifest_size = _blob(archive, json.dumps(manifest).encode())
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": MANIFEST_MEDIA_TYPE,
                    "digest": manifest_digest,
                    "size": manifest_size,
                    "annotations": {
                        "io.containerd.image.name": reference,
                        "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[1],
                    },
                }
            ],
        }
        _add_bytes(archive, "index.json", json.dumps(index).encode())
    tmp.rename(out)
    return out


def binary_image(binary: Path, reference: str, out: Path) -> Path:
    """An image holding one static binary at `/<name>`, which is also its entry point."""
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer.tar"
        with tarfile.open(layer, "w") as archive:
            info = archive.gettarinfo(str(binary), arcname=binary.name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o755
            with binary.open("rb") as handle:
                archive.addfile(info, handle)
        return write_image_archive(layer, reference, ImageConfig(entrypoint=[f"/{binary.name}"]), out)


def rootfs_image(rootfs: Path, reference: str, out: Path) -> Path:
    """An image whose single layer is the directory tree `rootfs` (owners kept as numbers)."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        layer = Path(tmp) / "layer.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(layer), "."], check=True)
        return write_image_archive(layer, reference, ImageConfig(entrypoint=[], cmd=["/bin/bash"]), out)
