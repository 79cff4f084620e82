"""The issue's workloads, one module each; `WORKLOADS` lists them in the order they run."""

from __future__ import annotations

from .base import Workload
from .listing import Listing
from .random_read import RandomRead
from .seq_read import SeqRead
from .seq_write import SeqWrite
from .small_files import SmallFiles
from .stream_rss import StreamRss
from .untar import Untar

WORKLOADS: tuple[type[Workload], ...] = (SeqWrite, SeqRead, SmallFiles, Listing, RandomRead, Untar, StreamRss)
