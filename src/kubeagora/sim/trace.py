"""Real workload traces: per-second request counts, from either of the two formats `--trace-format` takes.

- `counts`: whitespace-separated non-negative integers; value i = requests in second i.
- `timestamps`: CSV with a header; the first column is an arrival time, either a number of seconds
  or `YYYY-MM-DD HH:MM:SS[.fffffff]` (the Azure LLM 2023 trace has 100 ns digits).

A trace is bounded before anything is allocated for it: at most `MAX_TRACE_SECONDS` seconds long
(the counts it holds, or the span of its timestamps) and at most `MAX_REQUESTS_PER_SECOND` in a
second. An error names the file, the line and the limit, never the file's content: a scenario's
`trace.path` may name any file the user can read, and its first words must not end up in a message.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from kubeagora.model import FloatArray

TRACE_FORMATS = ("counts", "timestamps")
MAX_TRACE_SECONDS = 90 * 86_400
"""The longest trace read: 90 days of per-second counts (62 MB as float64). The NASA 1995 trace is
5.06 million seconds (58.6 days)."""
MAX_REQUESTS_PER_SECOND = 10**9


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file and the line."""


def load_trace(path: Path, fmt: str, max_seconds: int | None = None) -> FloatArray:
    """Requests per second, index 0 = the trace's first second (cached per file version: a bench
    matrix replays the same trace in every run)."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1
    return _load_trace_cached(path.resolve(), stamp, fmt, max_seconds).copy()


def moving_average(counts: FloatArray, window_s: int) -> FloatArray:
    """Centred moving average (over fewer samples at the ends), the same length as `counts`."""
    if window_s <= 1:
        return counts
    n = counts.shape[0]
    csum = np.concatenate([[0.0], np.cumsum(counts)])
    idx = np.arange(n)
    lo = np.maximum(idx - window_s // 2, 0)
    hi = np.minimum(idx - window_s // 2 + window_s, n)
    return np.asarray((csum[hi] - csum[lo]) / (hi - lo), dtype=np.float64)


@lru_cache(maxsize=8)
def _load_trace_cached(path: Path, stamp: int, fmt: str, max_seconds: int | None) -> FloatArray:
    if fmt not in TRACE_FORMATS:
        raise TraceError(f"{path}: unknown trace format {fmt!r} (use one of {', '.join(TRACE_FORMATS)})")
    if not path.is_file():
        raise TraceError(f"{path}: trace file not found")
    try:
        counts = _load_counts(path, max_seconds) if fmt == "counts" else _load_timestamps(path)
    except OSError as e:
        raise TraceError(f"{path}: cannot read it ({e.strerror or type(e).__name__})") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not a text file (byte {e.start} is not UTF-8)") from None
    except csv.Error:
        raise TraceError(f"{path}: not a CSV file (a line is malformed or longer than "
                         f"{csv.field_size_limit():,} characters)") from None
    if max_seconds is not None:
        counts = counts[:max_seconds]
    if counts.size == 0 or not np.any(counts > 0):
        raise TraceError(f"{path}: trace holds no requests")
    return counts


def _load_counts(path: Path, max_seconds: int | None) -> FloatArray:
    values: list[float] = []
    with path.open() as f:
        for line_no, line in enumerate(f, start=1):
            for word, token in enumerate(line.split(), start=1):
                try:
                    v = int(token)
                except ValueError:
                    raise TraceError(f"{path}, line {line_no}, word {word}: not a request count "
                                     "(expected a whole number ≥ 0)") from None
                if not 0 <= v <= MAX_REQUESTS_PER_SECOND:
                    raise TraceError(f"{path}, line {line_no}, word {word}: a request count must be in "
                                     f"0..{MAX_REQUESTS_PER_SECOND:,} per second")
                values.append(float(v))
                if max_seconds is not None and len(values) >= max_seconds:
                    return np.asarray(values)
                if len(values) > MAX_TRACE_SECONDS:
                    raise TraceError(f"{path}: more than {MAX_TRACE_SECONDS:,} seconds of counts "
                                     f"(the limit, {MAX_TRACE_SECONDS // 86_400} days)")
    return np.asarray(values)


def _parse_time(text: str) -> float:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if "." in text:  # Python's %f takes at most 6 digits; the Azure trace has 7
        head, frac = text.split(".", 1)
        return datetime.fromisoformat(head).timestamp() + float("0." + frac)
    return datetime.fromisoformat(text).timestamp()


def _load_timestamps(path: Path) -> FloatArray:
    times: list[float] = []
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise TraceError(f"{path}: empty file (expected a CSV header)")
        for row in reader:
            if not row or not row[0].strip():
                continue
            try:
                t_s = _parse_time(row[0])
            except (ValueError, OverflowError):
                t_s = math.nan
            if not math.isfinite(t_s):
                raise TraceError(f"{path}, line {reader.line_num}, column 1: not a timestamp "
                                 "(expected seconds or YYYY-MM-DD HH:MM:SS[.fff])")
            times.append(t_s)
    if not times:
        raise TraceError(f"{path}: no arrivals after the header")
    t = np.asarray(times)
    span_s = float(t.max() - t.min())
    if span_s >= MAX_TRACE_SECONDS:
        raise TraceError(f"{path}: the arrivals span {span_s:.3g} s, more than the limit of {MAX_TRACE_SECONDS:,} s "
                         f"({MAX_TRACE_SECONDS // 86_400} days)")
    seconds = np.floor(t - t.min()).astype(np.int64)
    return np.bincount(seconds).astype(np.float64)
