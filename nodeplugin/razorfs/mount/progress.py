"""How the CLI shows a transfer in progress (warm-up, dirty data draining): a live tqdm bar (files,
bytes, rate, ETA) when stderr is a terminal, otherwise one plain line per update, at most one a
second, so logs and `kubectl exec` without a tty stay readable."""

from __future__ import annotations

import os
import sys
import time
from typing import Never, TextIO

from tqdm import tqdm

PLAIN_LINE_INTERVAL_S = 1.0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _terminal_columns(stream: TextIO) -> int | None:
    """The terminal's width, or None when it reports no size (a pty nobody sized says 0x0)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError):
        return None
    return size.columns if size.columns and size.lines else None


class TransferProgress:
    """`update(bytes_done, bytes_total, files_done, files_total)` as often as figures arrive;
    `close()` once at the end (prints the last figures in plain mode)."""

    def __init__(self, label: str, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._bar: tqdm[Never] | None = None
        self._started = time.monotonic()
        self._last_line_at = 0.0
        self._last: tuple[int, int, int | None, int | None] | None = None

    def update(
        self, bytes_done: int, bytes_total: int, files_done: int | None = None, files_total: int | None = None
    ) -> None:
        self._last = (bytes_done, bytes_total, files_done, files_total)
        if self.live:
            self._update_bar(bytes_done, bytes_total, files_done, files_total)
        elif time.monotonic() - self._last_line_at >= PLAIN_LINE_INTERVAL_S:
            self._print_line()

    def _update_bar(self, bytes_done: int, bytes_total: int, files_done: int | None, files_total: int | None) -> None:
        if self._bar is None:
            sized = _terminal_columns(self.stream) is not None
            self._bar = tqdm(
                total=bytes_total,
                desc=self.label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.stream,
                # Follow the window's size; a terminal that reports none (a pty nobody sized: tqdm
                # would draw nothing in 0 rows) gets 80x24.
                dynamic_ncols=sized,
                ncols=None if sized else 80,
                nrows=None if sized else 24,
                # The daemon sends figures every half second; redraw on each.
                mininterval=0.1,
            )
        bar = self._bar
        if bytes_total != bar.total:
            bar.total = bytes_total
        bar.update(bytes_done - bar.n)
        if files_total is not None:
            bar.set_postfix_str(f"{files_done}/{files_total} files", refresh=False)
        bar.refresh()

    def _print_line(self) -> None:
        if self._last is None:
            return
        bytes_done, bytes_total, files_done, files_total = self._last
        self._last_line_at = time.monotonic()
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = bytes_done / elapsed
        parts = [f"{self.label}:"]
        if files_total is not None:
            parts.append(f"{files_done}/{files_total} files,")
        percent = 100.0 if bytes_total == 0 else 100.0 * bytes_done / bytes_total
        parts.append(f"{human_bytes(bytes_done)}/{human_bytes(bytes_total)} ({percent:.0f}%),")
        parts.append(f"{human_bytes(rate)}/s,")
        eta = (bytes_total - bytes_done) / rate if rate > 0 else None
        parts.append(f"ETA {tqdm.format_interval(eta) if eta is not None else '?'}")
        print(" ".join(parts), file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif not self.live:
            self._print_line()
