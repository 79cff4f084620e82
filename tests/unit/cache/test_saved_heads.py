"""`SavedHeads` on a real SQLite file: answers saved by one mount come back in the next for the
keys of one directory, a too recent answer is not saved, a change here drops the saved row, the
table stays under its row cap (least recently used go first), and a cache dir reused for another
volume or holding a broken file starts empty. With `MetadataCache`: a saved answer is vouched
for only by a listing entry with the same ETag and LastModified."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from razorfs.cache.metadata_cache import DirEntry, MetadataCache
from razorfs.cache.saved_heads import FILE_NAME, SavedHeads
from razorfs.store.base import ObjectInfo

VOLUME = "s3://bucket/vol/"
OLD = float(int(time.time()) - 3600)  # S3's LastModified (whole seconds) of an object an hour old


def _info(key: str, etag: str = "e1", modified: float = OLD, mode: str = "33188") -> ObjectInfo:
    return ObjectInfo(key, 5, etag, modified, {"mode": mode})


def _saved_under(saved: SavedHeads, parent: str) -> dict[str, ObjectInfo]:
    async def read() -> list[tuple[ObjectInfo, float]]:
        return await saved.saved_under(parent)

    return {info.key: info for info, _ in trio.run(read)}


def test_answers_saved_by_one_mount_come_back_in_the_next_by_directory(tmp_path: Path) -> None:
    first = SavedHeads(tmp_path, VOLUME)
    for key in ("vol/d/a", "vol/d/b", "vol/e/c", "vol/top"):
        assert first.save(_info(key), OLD)
    first.close()

    second = SavedHeads(tmp_path, VOLUME)
    found = _saved_under(second, "vol/d/")
    assert sorted(found) == ["vol/d/a", "vol/d/b"]
    assert found["vol/d/a"] == _info("vol/d/a")
    assert sorted(_saved_under(second, "vol/")) == ["vol/top"]


def test_an_answer_younger_than_a_second_or_two_is_not_saved(tmp_path: Path) -> None:
    saved = SavedHeads(tmp_path, VOLUME)
    now = time.time()
    assert not saved.save(_info("vol/d/new", modified=now), now)
    saved.close()
    assert _saved_under(SavedHeads(tmp_path, VOLUME), "vol/d/") == {}


def test_a_dropped_row_is_gone_before_and_after_it_is_written(tmp_path: Path) -> None:
    saved = SavedHeads(tmp_path, VOLUME)
    saved.save(_info("vol/d/a"), OLD)
    saved.save(_info("vol/d/b"), OLD)
    saved.close()

    saved = SavedHeads(tmp_path, VOLUME)
    saved.drop("vol/d/a")
    assert sorted(_saved_under(saved, "vol/d/")) == ["vol/d/b"]  # queued, not written yet
    saved.close()
    assert sorted(_saved_under(SavedHeads(tmp_path, VOLUME), "vol/d/")) == ["vol/d/b"]


def test_the_table_keeps_at_most_its_cap_dropping_the_least_recently_used(tmp_path: Path) -> None:
    saved = SavedHeads(tmp_path, VOLUME, max_rows=10)
    for i in range(8):
        saved.save(_info(f"vol/old/{i}"), OLD)
    saved.close()
    time.sleep(0.01)
    saved = SavedHeads(tmp_path, VOLUME, max_rows=10)
    for i in range(8):
        saved.save(_info(f"vol/new/{i}"), OLD)
    saved.close()

    reopened = SavedHeads(tmp_path, VOLUME, max_rows=10)
    assert len(_saved_under(reopened, "vol/new/")) == 8
    assert len(_saved_under(reopened, "vol/old/")) == 1  # 16 rows cut back to 9 of the cap of 10


def test_a_cache_dir_reused_for_another_volume_starts_empty(tmp_path: Path) -> None:
    saved = SavedHeads(tmp_path, VOLUME)
    saved.save(_info("vol/d/a"), OLD)
    saved.close()
    assert _saved_under(SavedHeads(tmp_path, "s3://other/vol/"), "vol/d/") == {}


def test_a_broken_file_is_replaced_by_an_empty_one(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not a database" * 100)
    saved = SavedHeads(tmp_path, VOLUME)
    assert saved.enabled
    saved.save(_info("vol/d/a"), OLD)
    saved.close()
    assert sorted(_saved_under(SavedHeads(tmp_path, VOLUME), "vol/d/")) == ["vol/d/a"]


def test_a_saved_answer_is_vouched_for_only_by_the_same_etag_and_last_modified(tmp_path: Path) -> None:
    saved = SavedHeads(tmp_path, VOLUME)
    meta = MetadataCache(1.0, saved)
    meta.adopt_saved(_info("vol/d/a"), OLD)
    assert meta.head("vol/d/a") == (False, None)  # never fresh: a listing has to vouch for it
    assert meta.head_confirmed_by("vol/d/a", DirEntry("a", False, 5, OLD + 0.5, "e1")) == _info("vol/d/a")
    # A metadata-only copy keeps the ETag but moves LastModified; new content changes the ETag.
    assert meta.head_confirmed_by("vol/d/a", DirEntry("a", False, 5, OLD + 2, "e1")) is None
    assert meta.head_confirmed_by("vol/d/a", DirEntry("a", False, 5, OLD, "e2")) is None


def test_what_this_mount_learns_is_saved_and_wins_over_saved_rows(tmp_path: Path) -> None:
    saved = SavedHeads(tmp_path, VOLUME)
    meta = MetadataCache(1.0, saved)
    meta.put_head("vol/d/a", _info("vol/d/a", mode="33216"))  # a HEAD: S3's time
    meta.adopt_saved(_info("vol/d/a"), OLD)
    assert meta.head("vol/d/a") == (True, _info("vol/d/a", mode="33216"))
    meta.put_head("vol/d/b", _info("vol/d/b"), s3_time=False)  # our own write: not saved yet
    meta.put_head("vol/d/", _info("vol/d/"))  # a directory marker: never saved
    saved.close()
    assert _saved_under(SavedHeads(tmp_path, VOLUME), "vol/d/") == {"vol/d/a": _info("vol/d/a", mode="33216")}

    saved = SavedHeads(tmp_path, VOLUME)
    meta = MetadataCache(1.0, saved)
    # Our write is saved once a listing shows its ETag (and gives S3's time of it).
    meta.put_head("vol/d/b", _info("vol/d/b", modified=time.time()), s3_time=False)
    assert meta.head_confirmed_by("vol/d/b", DirEntry("b", False, 5, OLD, "e1")) is not None
    meta.forget_head("vol/d/a")  # unlinked here
    saved.close()
    assert sorted(_saved_under(SavedHeads(tmp_path, VOLUME), "vol/d/")) == ["vol/d/b"]
