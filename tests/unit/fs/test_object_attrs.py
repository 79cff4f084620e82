"""Attributes <-> s3fs/rclone object metadata."""

from __future__ import annotations

import stat

from razorfs.store.object_attrs import AttrDefaults, ObjectAttrs, attrs_from_metadata, metadata_from_attrs

DEFAULTS = AttrDefaults(uid=1000, gid=2000, file_mode=0o640, dir_mode=0o750)


def test_s3fs_headers_round_trip_with_file_type_bits() -> None:
    attrs = ObjectAttrs(mode=stat.S_IFREG | 0o600, uid=7, gid=8, mtime=1_700_000_000)
    meta = metadata_from_attrs(attrs)
    assert meta == {"mode": str(0o100600), "uid": "7", "gid": "8", "mtime": "1700000000"}
    assert attrs_from_metadata(meta, 5.0, DEFAULTS) == attrs


def test_object_without_headers_gets_mount_defaults_and_last_modified() -> None:
    attrs = attrs_from_metadata({}, 1234.5, DEFAULTS)
    assert attrs == ObjectAttrs(stat.S_IFREG | 0o640, 1000, 2000, 1234.5)
    marker = attrs_from_metadata({}, 1.0, DEFAULTS, directory=True)
    assert marker.mode == stat.S_IFDIR | 0o750


def test_rclone_fractional_mtime_and_symlink_mode_are_read() -> None:
    attrs = attrs_from_metadata({"Mtime": "1700000000.25", "mode": str(stat.S_IFLNK | 0o777)}, 1.0, DEFAULTS)
    assert attrs.mtime == 1700000000.25
    assert attrs.is_symlink


def test_garbled_headers_fall_back_to_defaults() -> None:
    attrs = attrs_from_metadata({"mode": "rw-r--r--", "uid": "x", "mtime": "soon"}, 9.0, DEFAULTS)
    assert attrs == ObjectAttrs(stat.S_IFREG | 0o640, 1000, 2000, 9.0)


def test_attrs_equal_as_stored_ignore_sub_second_mtime() -> None:
    a = ObjectAttrs(stat.S_IFREG | 0o644, 1, 2, 1_700_000_000.75)
    assert a.stored_equal(a.replace(mtime=1_700_000_000.0))
    assert not a.stored_equal(a.replace(mtime=1_700_000_001.0))
    assert not a.stored_equal(a.replace(mode=stat.S_IFREG | 0o600))
