"""The local tier of a volume: cached file data in sparse files, the SQLite journal, metadata.

Modules, one noun each:
- `file_cache`: `FileCache`, the one door the filesystem and the uploader use (create, open,
  revalidate, forget, move, read, write, truncate, commit); it wires the modules below.
- `registry`: `FileRegistry`, every `CachedFile` by path and id, and the change event.
- `space`: `CacheSpace`, the byte budget: present-bytes accounting, LRU eviction, back-pressure.
- `fetcher`: `RangeFetcher`, range GETs into cache files, readahead, single-flight units.
- `sync_rounds`: `SyncRounds`, journal rows and the group-commit rounds close() waits for.
- `upload_builder`: `UploadBuilder`, one upload of a file (PUT or compose) and its bookkeeping.
- `uploader`: `Uploader`, the background workers that run uploads with retries, and flush.
- `saved_heads`: `SavedHeads`, HEAD answers kept across mounts in their own SQLite file.
- `cached_file`, `range_map`, `readahead`, `journal`, `metadata_cache`, `metered_store`, `errors`.

Concurrency contract
--------------------
Threads. Everything above runs on the mount daemon's trio thread, except:
- S3 calls (`MeteredStore`): boto3 on a bounded pool of worker threads. They see only their
  arguments and the store's counters (under `MeteredStore._lock`). An upload's worker reads the
  cache file through a pinned fd (`UploadBuilder`); the trio thread never changes that inode
  while it is pinned (a change first gives the file a private copy: `detach_from_upload`).
- Local file work handed to `trio.to_thread.run_sync`: `_write_gaps` (a fetch's bytes into the
  cache file, while its task holds the file's `write_lock`), `_copy_ranges` (a private copy or an
  upload snapshot, also under `write_lock`), `fsync_directory` (after a row's content is
  preserved, under `write_lock`), `_fsync_paths` and `Journal.sync_wal` (a sync round;
  they touch only files and the WAL, and take no SQLite lock, so the trio thread keeps
  journaling meanwhile). None of them reads or writes the cache's Python state.
- `SavedHeads`' reads (`_read_parent`) and batched writes (`_write`): its own SQLite connection,
  used by one worker thread at a time under `SavedHeads._lock`; the trio thread only fills and
  swaps the queue of rows to write, which the worker gets as an argument.
- The metrics HTTP thread calls the daemon's `stats()`: it reads `cached_bytes`,
  `uploading_bytes`, `counters`, `files_under("")`, `dirty_files()` and `dirty_bytes` without a
  lock. Those copy the registry's dict before iterating; the numbers are a best-effort snapshot.
  Nothing else leaves the trio thread.

State without locks (trio thread only; atomic between awaits). Each owner below is the only
writer; a check and the change it guards happen with no await in between:
- `FileRegistry`: the path and id maps and the next id (changed by `FileCache`).
- `CacheSpace`: `cached_bytes`, `uploading_bytes` (written by `UploadBuilder`), the LRU. A
  fetch makes room and counts its bytes present without awaiting in between.
- `RangeFetcher`: the in-flight units. A GET's units are claimed when it is planned (before any
  await) and released by whoever runs it, in `finally`; eviction skips claimed blocks.
- `SyncRounds`: the unsynced and inline sets, the preserved files to delete after the next WAL
  sync, each file's `row_version` and `preserved_version`, the waiting round and `sync_wanted`.
  A round takes and clears the unsynced set before its first await; files journaled during the
  round go to the next one. One round runs at a time (the uploader's sync loop is the only caller).
- `CachedFile` fields: changed by `FileCache`, `RangeFetcher`, `UploadBuilder` and the
  filesystem, under the locks below where listed. Its file I/O (pread/pwrite) runs on the trio
  thread, so each write is atomic with the range-map update describing it.
- `Uploader`: its queue, `last_error` and retry events.

Locks (trio.Lock, per `CachedFile`); take `upload_lock` before `write_lock`, never the reverse:
- `write_lock` guards the content and what describes it (cache file bytes, `present`,
  `written`, `size`, `version`, the pinned state): held by write, truncate, a fetch landing its
  bytes, and an upload while it fixes what it sends.
- `upload_lock` is held by the uploader for a whole upload. The filesystem takes it before it
  forgets or moves a file that may be uploading (unlink, rename of the file and of one it
  replaces, create over a cached file; revalidation forgets only clean files), so an upload
  never lands at a stale key or re-creates an unlinked object.

Tasks and their owners: readahead GETs (`RangeFetcher`) and HEAD prefetches (`fs.listings`) run in
the nursery the daemon binds (`bind_nursery`); the upload workers and the sync loop run in
`Uploader.run`, and the saved-HEADs writer in `SavedHeads.run`, both started by the daemon. The
daemon cancels and awaits them all on shutdown (then `SavedHeads.close` writes what is left).
Waiters (back-pressure, fsync, flush) sleep on the registry's change event, which is set by
create, commit, forget, a revalidation that dropped data, and every finished upload."""
