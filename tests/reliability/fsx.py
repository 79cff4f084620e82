"""An fsx-style exerciser: a seeded sequence of operations on a small tree under one directory of a
mount (write / append / truncate / read / fsync / rename / unlink of files, mkdir / rmdir, symlink
/ readlink, chmod / utime), each checked against an in-memory model of the tree. Files are small
(up to 512 KiB) except a few large ones that grow to several multipart parts (up to 40 MiB).

Reads never come from the kernel's page cache: the file's cached pages are dropped first
(POSIX_FADV_DONTNEED), so every check reads what the daemon serves. Any difference raises
`Mismatch` naming the seed, the step, the operation and the first differing byte, so a failing
seed can be replayed."""

from __future__ import annotations

import os
import random
import stat
from dataclasses import dataclass, field
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
MAX_FILE_BYTES = 512 * KiB
MAX_LARGE_FILE_BYTES = 40 * MiB  # five 8 MiB parts: a multipart upload of several parts
MULTIPART_THRESHOLD_BYTES = 16 * MiB
MAX_IO_BYTES = 64 * KiB
MAX_LARGE_IO_BYTES = 1 * MiB
FULL_CHECK_EVERY = 2500
MAX_DEPTH = 3
# The tree stays small (each lookup below a directory whose listing expired costs a LIST): the
# operations churn the same few names instead of piling up new ones.
MAX_DIRS = 10
MAX_SYMLINKS = 12
FILE_NAMES = tuple(f"f{i}" for i in range(6))
LARGE_NAMES = ("big0", "big1")
LARGE_OP_SHARE = 0.04  # of the operations on files: few large uploads, many small ones
FILE_MODES = (0o600, 0o640, 0o644, 0o664, 0o700, 0o755)


class Mismatch(AssertionError):
    pass


@dataclass
class FsxRun:
    root: Path  # a directory on the mount, created empty
    seed: int
    model: dict[str, bytearray] = field(default_factory=dict, repr=False)  # file path -> content
    links: dict[str, str] = field(default_factory=dict)  # symlink path -> target
    dirs: set[str] = field(default_factory=lambda: {""})
    modes: dict[str, int] = field(default_factory=dict)  # file path -> permission bits
    mtimes: dict[str, int] = field(default_factory=dict)  # file path -> mtime set by utime
    step: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    last_op: str = ""
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.root.mkdir(parents=True, exist_ok=True)

    # -- choosing ---------------------------------------------------------------------------------

    def run(self, operations: int) -> None:
        for _ in range(operations):
            self.one_step()

    def one_step(self) -> None:
        self.step += 1
        kind = self.rng.choices(
            ["write", "append", "read", "truncate", "fsync_write", "rename", "unlink", "mkdir", "rmdir",
             "symlink", "chmod", "utime"],
            weights=[24, 8, 24, 6, 4, 3, 2, 3, 2, 3, 3, 2],
        )[0]  # fmt: skip
        if kind in ("append", "read", "truncate", "rename", "unlink", "chmod", "utime") and not self.model:
            kind = "write"
        if kind == "mkdir" and len(self.dirs) > MAX_DIRS:
            kind = "rmdir"
        if kind == "rmdir" and not self._empty_dirs():
            kind = "mkdir" if len(self.dirs) <= MAX_DIRS else "read"
        if kind == "symlink" and len(self.links) >= MAX_SYMLINKS:
            kind = "unlink_symlink"
        if kind == "read" and not self.model:
            kind = "write"
        if kind == "unlink" and self.links and self.rng.random() < 0.4:
            kind = "unlink_symlink"
        self.counts[kind] = self.counts.get(kind, 0) + 1
        getattr(self, f"_op_{kind}")()
        if self.step % FULL_CHECK_EVERY == 0:
            self.check_all()

    def _existing_file(self) -> str:
        large = [p for p in self.model if _is_large(p)]
        if large and self.rng.random() < LARGE_OP_SHARE:
            return self.rng.choice(sorted(large))
        small = sorted(p for p in self.model if not _is_large(p))
        return self.rng.choice(small or sorted(large))

    def _any_file_name(self) -> str:
        """A file path to write: usually an existing file, else a new name in some directory."""
        if self.model and self.rng.random() < 0.6:
            return self._existing_file()
        names = LARGE_NAMES if self.rng.random() < LARGE_OP_SHARE else FILE_NAMES
        return self._join(self.rng.choice(sorted(self.dirs)), self.rng.choice(names))

    def _join(self, parent: str, name: str) -> str:
        path = f"{parent}/{name}" if parent else name
        return path if path not in self.dirs and path not in self.links else f"{path}x"

    def _empty_dirs(self) -> list[str]:
        used = {p.rsplit("/", 1)[0] for p in [*self.model, *self.links, *self.dirs] if "/" in p}
        return sorted(d for d in self.dirs if d and d not in used)

    def _data(self, length: int) -> bytes:
        return self.rng.randbytes(length)

    # -- operations (each updates the model, then checks what it touched) -------------------------

    def _op_write(self, sync: bool = False) -> None:
        name = self._any_file_name()
        if name in self.dirs or name in self.links:
            return
        current = self.model.get(name, bytearray())
        limit, io = (MAX_LARGE_FILE_BYTES, MAX_LARGE_IO_BYTES) if _is_large(name) else (MAX_FILE_BYTES, MAX_IO_BYTES)
        offset = self.rng.randint(0, min(len(current) + (limit // 4 if _is_large(name) else io), limit - 1))
        if _is_large(name) and name not in self.model:  # born above the multipart threshold
            offset = self.rng.randint(MULTIPART_THRESHOLD_BYTES, limit // 2)
        data = self._data(self.rng.randint(1, min(io, limit - offset)))
        self.last_op = f"write {name} offset={offset} len={len(data)} sync={sync}"
        if name not in self.model:
            self.modes[name] = 0o644
        if offset > len(current):
            current.extend(bytes(offset - len(current)))
        current[offset : offset + len(data)] = data
        self.model[name] = current
        self.mtimes.pop(name, None)
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _write_all(fd, data, offset)
            if sync:
                os.fsync(fd)
            self.check_range(name, offset, len(data), fd)  # read back through the same descriptor
        finally:
            os.close(fd)

    def _op_fsync_write(self) -> None:
        self._op_write(sync=True)

    def _op_append(self) -> None:
        name = self._existing_file()
        current = self.model[name]
        limit, io = (MAX_LARGE_FILE_BYTES, MAX_LARGE_IO_BYTES) if _is_large(name) else (MAX_FILE_BYTES, MAX_IO_BYTES)
        room = limit - len(current)
        if room <= 0:
            return self._op_truncate(name)
        data = self._data(self.rng.randint(1, min(io, room)))
        self.last_op = f"append {name} len={len(data)} at={len(current)}"
        fd = os.open(self.root / name, os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise Mismatch(f"seed {self.seed} step {self.step}: short append {written}/{len(data)}")
        finally:
            os.close(fd)
        start = len(current)
        current.extend(data)
        self.mtimes.pop(name, None)
        self.check_range(name, start, len(data))
        return None

    def _op_truncate(self, name: str | None = None) -> None:
        name = name or self._existing_file()
        current = self.model[name]
        limit = MAX_LARGE_FILE_BYTES if _is_large(name) else MAX_FILE_BYTES
        size = self.rng.randint(0, min(limit, len(current) + (limit // 4 if _is_large(name) else MAX_IO_BYTES)))
        self.last_op = f"truncate {name} {len(current)}->{size}"
        os.truncate(self.root / name, size)
        old = len(current)
        if size < old:
            del current[size:]
        else:
            current.extend(bytes(size - old))
        self.mtimes.pop(name, None)
        self.check_range(name, max(0, min(old, size) - 16), 32 + abs(size - old) if size > old else 32)

    def _op_read(self) -> None:
        name = self._existing_file()
        current = self.model[name]
        io = MAX_LARGE_IO_BYTES if _is_large(name) else MAX_IO_BYTES
        offset = self.rng.randint(0, len(current) + 10)
        self.last_op = f"read {name} offset={offset}"
        self.check_range(name, offset, self.rng.randint(1, io))

    def _op_rename(self) -> None:
        name = self._existing_file()
        if _is_large(name):
            target = self._join(self.rng.choice(sorted(self.dirs)), self.rng.choice(LARGE_NAMES))
        else:
            target = self._join(self.rng.choice(sorted(self.dirs)), self.rng.choice(FILE_NAMES))
        self.last_op = f"rename {name} -> {target}"
        os.rename(self.root / name, self.root / target)
        if target != name:
            self.model[target] = self.model.pop(name)
            self.modes[target] = self.modes.pop(name)
            self.mtimes.pop(target, None)
            if name in self.mtimes:
                self.mtimes[target] = self.mtimes.pop(name)
            if os.path.lexists(self.root / name):
                raise Mismatch(f"seed {self.seed} step {self.step} ({self.last_op}): {name} still exists")
        self.check_attrs(target)
        self.check_range(target, 0, MAX_IO_BYTES)

    def _op_unlink(self) -> None:
        name = self._existing_file()
        self.last_op = f"unlink {name}"
        os.unlink(self.root / name)
        del self.model[name]
        self.modes.pop(name, None)
        self.mtimes.pop(name, None)
        if os.path.lexists(self.root / name):
            raise Mismatch(f"seed {self.seed} step {self.step} ({self.last_op}): {name} still exists")

    def _op_unlink_symlink(self) -> None:
        name = self.rng.choice(sorted(self.links))
        self.last_op = f"unlink symlink {name}"
        os.unlink(self.root / name)
        del self.links[name]

    def _op_mkdir(self) -> None:
        parents = sorted(d for d in self.dirs if d.count("/") < MAX_DEPTH - 1)
        path = self._join(self.rng.choice(parents), f"d{self.step}")
        self.last_op = f"mkdir {path}"
        os.mkdir(self.root / path)
        self.dirs.add(path)

    def _op_rmdir(self) -> None:
        path = self.rng.choice(self._empty_dirs())
        self.last_op = f"rmdir {path}"
        os.rmdir(self.root / path)
        self.dirs.discard(path)

    def _op_symlink(self) -> None:
        path = self._join(self.rng.choice(sorted(self.dirs)), f"l{self.step}")
        target = self.rng.choice([*sorted(self.model)[:3], "../elsewhere", f"no-such-{self.step}", "a/b/c"])
        self.last_op = f"symlink {path} -> {target}"
        os.symlink(target, self.root / path)
        self.links[path] = target
        got = os.readlink(self.root / path)
        if got != target:
            raise Mismatch(f"seed {self.seed} step {self.step} ({self.last_op}): readlink gave {got!r}")

    def _op_chmod(self) -> None:
        name = self._existing_file()
        mode = self.rng.choice(FILE_MODES)
        self.last_op = f"chmod {name} {mode:o}"
        os.chmod(self.root / name, mode)
        self.modes[name] = mode
        self.check_attrs(name)

    def _op_utime(self) -> None:
        name = self._existing_file()
        mtime = self.rng.randint(1_000_000_000, 1_900_000_000)
        self.last_op = f"utime {name} {mtime}"
        os.utime(self.root / name, (mtime, mtime))
        self.mtimes[name] = mtime
        self.check_attrs(name)

    # -- checks -----------------------------------------------------------------------------------

    def _fail(self, what: str) -> Mismatch:
        return Mismatch(f"seed {self.seed} step {self.step} ({self.last_op}): {what}")

    def check_range(self, name: str, offset: int, length: int, open_fd: int | None = None) -> None:
        """The file's size and the bytes of [offset, offset+length), read past the page cache
        (through `open_fd` when given, else a descriptor of its own)."""
        want_all = self.model[name]
        fd = os.open(self.root / name, os.O_RDONLY) if open_fd is None else open_fd
        try:
            size = os.fstat(fd).st_size
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the next read asks the daemon
            got = os.pread(fd, length, offset)
        finally:
            if open_fd is None:
                os.close(fd)
        want = bytes(want_all[offset : offset + length])
        if size != len(want_all) or got != want:
            raise self._fail(
                f"{name} st_size={size} model={len(want_all)}; at {offset}: {_first_difference(got, want)}"
            )

    def check_attrs(self, name: str) -> None:
        st = os.stat(self.root / name)
        if stat.S_IMODE(st.st_mode) != self.modes[name]:
            raise self._fail(f"{name} mode {stat.S_IMODE(st.st_mode):o}, model {self.modes[name]:o}")
        if name in self.mtimes and int(st.st_mtime) != self.mtimes[name]:
            raise self._fail(f"{name} mtime {st.st_mtime}, model {self.mtimes[name]}")

    def check_file(self, name: str) -> None:
        self.check_range(name, 0, len(self.model[name]) + 1)
        self.check_attrs(name)

    def check_all(self) -> None:
        found_files, found_links, found_dirs = set(), {}, {""}
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            prefix = "" if rel == "." else rel + "/"
            found_dirs.update(prefix + d for d in dirnames)
            for name in filenames:
                path = Path(dirpath, name)
                if path.is_symlink():
                    found_links[prefix + name] = os.readlink(path)
                else:
                    found_files.add(prefix + name)
        if found_dirs != self.dirs or found_files != set(self.model) or found_links != self.links:
            raise self._fail(
                f"tree differs: dirs {sorted(found_dirs ^ self.dirs)}, files {sorted(found_files ^ set(self.model))}, "
                f"symlinks found {found_links} model {self.links}"
            )
        for name in self.model:
            self.check_file(name)

    def expected_objects(self) -> dict[str, bytes]:
        """What the bucket must hold below the run's root: files' content, symlinks' targets."""
        return {**{p: bytes(c) for p, c in self.model.items()}, **{p: t.encode() for p, t in self.links.items()}}


def _is_large(path: str) -> bool:
    return path.rsplit("/", 1)[-1].rstrip("x") in LARGE_NAMES


def _write_all(fd: int, data: bytes, offset: int) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], offset + done)


def _first_difference(got: bytes, want: bytes) -> str:
    if got == want:
        return "equal"
    for index, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"first difference at byte {index} (got {a:#04x}, want {b:#04x}); lengths {len(got)}/{len(want)}"
    return f"one is a prefix of the other; lengths got={len(got)} want={len(want)}"
