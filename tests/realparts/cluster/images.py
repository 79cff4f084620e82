"""The local node's images, built without a registry and cached in ~/.cache/razorfs/images:

- a pause image (a static C binary) for pod sandboxes;
- the CSI sidecars from ../shared/csi-sidecars (checked against their SHA256SUMS);
- a Debian base from debootstrap, and the project's image built `FROM` it with buildah from the
  project's own Dockerfile, offline: Python dependencies come as wheels built on the host.

Every archive is named after a hash of what went into it, so a rebuild happens only on change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..processes import RealPartMissing
from .oci_archive import binary_image, rootfs_image

REPO = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("RAZORFS_IMAGE_CACHE", Path.home() / ".cache" / "razorfs" / "images"))
SIDECARS_DIR = Path(os.environ.get("RAZORFS_SIDECARS_DIR", REPO.parent / "shared" / "csi-sidecars"))
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SUITE = "bookworm"
# What the project's image needs at run time; the Dockerfile installs them only when a base lacks them.
BASE_PACKAGES = ["python3", "python3-venv", "libfuse3-3", "fuse3", "ca-certificates"]
PAUSE_IMAGE = "localhost/pause:3.10"
BASE_IMAGE = "localhost/razorfs-base:bookworm"
PROJECT_IMAGE = "localhost/razorfs"
# Sidecar binary name -> the tag its local image gets (the upstream release it was built from).
SIDECARS = {
    "csi-node-driver-registrar": "v2.17.0",
    "livenessprobe": "v2.19.0",
    "csi-provisioner": "v6.2.1",
    "csi-resizer": "v2.2.1",
}
# The sources the Dockerfile copies: everything else stays out of the build context.
CONTEXT_PATHS = ["Dockerfile", "pyproject.toml", "README.md", "proto/generate.py", "proto/csi", "proto/razorfs",
                 "nodeplugin", "operator"]
BUILD_TOOLS = ["grpcio-tools>=1.60", "hatchling>=1.24"]


@dataclass(frozen=True)
class LocalImages:
    """Archives ready for `ctr images import`, and the references they carry."""

    archives: list[Path]
    project: str
    sidecars: dict[str, str]
    pause: str = PAUSE_IMAGE


def _log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def _hash_paths(paths: list[Path], extra: str = "") -> str:
    sha = hashlib.sha256(extra.encode())
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            sha.update(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path.name).encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def _require(command: str, package: str) -> None:
    if shutil.which(command) is None:
        raise RealPartMissing(f"{command} not found: install Debian's {package} (`make setup` does)")


def pause_image() -> Path:
    source = Path(__file__).with_name("pause.c")
    out = CACHE / f"pause-{_hash_paths([source])}.tar"
    if out.exists():
        return out
    _require("gcc", "gcc")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "pause"
        subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(source)], check=True)
        subprocess.run(["strip", str(binary)], check=True)
        return binary_image(binary, PAUSE_IMAGE, out)


def _sidecar_binaries() -> Path:
    """The sidecar binaries extracted into the build cache and checked against SHA256SUMS."""
    tarball, sums = SIDECARS_DIR / "csi-sidecars.tar.xz", SIDECARS_DIR / "SHA256SUMS"
    if not tarball.exists():
        raise RealPartMissing(f"the CSI sidecars are missing: {tarball} (see ../shared/csi-sidecars/README.md)")
    out = CACHE.parent / "bin" / "sidecars" / _hash_paths([tarball, sums])
    if not (out / ".verified").exists():
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(out, filter="data")
        subprocess.run(["sha256sum", "--check", "--quiet", str(sums)], cwd=out, check=True)
        (out / ".verified").touch()
    return out


def sidecar_images() -> tuple[list[Path], dict[str, str]]:
    binaries = _sidecar_binaries()
    archives, references = [], {}
    for name, tag in SIDECARS.items():
        reference = f"localhost/{name}:{tag}"
        out = CACHE / f"{name}-{tag}-{binaries.name}.tar"
        if not out.exists():
            binary_image(binaries / name, reference, out)
        archives.append(out)
        references[name] = reference
    return archives, references


def base_image() -> Path:
    """Debian minbase with the runtime packages, from debootstrap (about 2 minutes, once)."""
    out = CACHE / f"base-{DEBIAN_SUITE}-{hashlib.sha256(' '.join(BASE_PACKAGES).encode()).hexdigest()[:12]}.tar"
    if out.exists():
        return out
    _require("debootstrap", "debootstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    _log(f"debootstrap {DEBIAN_SUITE} for the base image (takes a few minutes once)")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", DEBIAN_SUITE,
             str(rootfs), DEBIAN_MIRROR],
            check=True, stdout=subprocess.DEVNULL,
        )
        for package in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
            package.unlink()
        return rootfs_image(rootfs, BASE_IMAGE, out)


def _requirements() -> list[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *BUILD_TOOLS]


def _installed_versions() -> str:
    """The versions this virtualenv runs, as pip constraints: the image gets what the tests test."""
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                            capture_output=True, text=True).stdout
    return "".join(line + "\n" for line in frozen.splitlines() if "==" in line)


def wheelhouse() -> Path:
    """Wheels for every dependency and build tool, built by the host's pip (it reaches PyPI; the
    image build does not need to), pinned to the versions installed here."""
    requirements, constraints = _requirements(), _installed_versions()
    key = hashlib.sha256("\n".join([*requirements, constraints]).encode()).hexdigest()[:12]
    out = CACHE / f"wheelhouse-{key}"
    if (out / ".complete").exists():
        return out
    _log("building the wheelhouse for the image")
    out.mkdir(parents=True, exist_ok=True)
    pins = out / "constraints.txt"
    pins.write_text(constraints)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(out), "--constraint", str(pins),
                    *requirements], check=True)
    pins.unlink()
    (out / ".complete").touch()
    for stale in CACHE.glob("wheelhouse-*"):
        if stale != out:
            shutil.rmtree(stale, ignore_errors=True)
    return out


def _build_context(target: Path, wheels: Path) -> None:
    for relative in CONTEXT_PATHS:
        source, dest = REPO / relative, target / relative
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest)
    shutil.copytree(wheels, target / "wheelhouse", ignore=shutil.ignore_patterns(".complete"))


class Buildah:
    """buildah with its storage, run state and CNI folder under the image cache (vfs, chroot)."""

    def __init__(self, root: Path) -> None:
        _require("buildah", "buildah")
        self.root = root
        (root / "cni").mkdir(parents=True, exist_ok=True)

    def __call__(self, *args: str, cwd: Path | None = None) -> None:
        subprocess.run(
            ["buildah", "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
             "--storage-driver", "vfs", *args],
            check=True, cwd=cwd, stdout=subprocess.DEVNULL,
        )


def project_image(tag: str = "dev") -> tuple[Path, str]:
    """The project's image from its Dockerfile, tagged `localhost/razorfs:<tag>`."""
    reference = f"{PROJECT_IMAGE}:{tag}"
    base = base_image()
    wheels = wheelhouse()
    digest = _hash_paths([REPO / p for p in CONTEXT_PATHS], extra=f"{base.name} {wheels.name} {tag}")
    out = CACHE / f"razorfs-{tag}-{digest}.tar"
    if out.exists():
        return out, reference
    buildah = Buildah(CACHE / "buildah")
    buildah("pull", "-q", f"oci-archive:{base}")
    _log(f"building {reference} from the Dockerfile with buildah")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        context = Path(tmp)
        _build_context(context, wheels)
        buildah(
            "bud", "--isolation", "chroot", "--pull-never", "--layers",
            "--cni-config-dir", str(CACHE / "buildah" / "cni"),
            "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", reference, ".",
            cwd=context,
        )
    partial = out.with_suffix(".partial")
    buildah("push", "-q", reference, f"oci-archive:{partial}:{reference}")
    partial.rename(out)
    # The archive is what the node loads. The build's images go from buildah's storage: vfs keeps
    # a full copy of every layer, so a few builds left behind fill the disk (seen: 45 GB).
    buildah("rmi", "--all", "--force")
    for stale in CACHE.glob(f"razorfs-{tag}-*.tar"):
        if stale != out:
            stale.unlink()
    return out, reference


def local_images(extra_project_tags: tuple[str, ...] = ()) -> LocalImages:
    """Everything the local node runs: pause, sidecars, and the project's image (plus extra tags)."""
    archives = [pause_image()]
    sidecar_archives, sidecars = sidecar_images()
    archives += sidecar_archives
    project, reference = project_image()
    archives.append(project)
    for tag in extra_project_tags:
        archives.append(project_image(tag)[0])
    return LocalImages(archives=archives, project=reference, sidecars=sidecars)
