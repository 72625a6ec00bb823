"""Real workload traces: per-second request counts, from either of the two formats DESIGN.md names.

- `counts`: whitespace-separated non-negative integers; value i = requests in second i.
- `timestamps`: CSV with a header; the first column is an arrival time, either a number of seconds
  or `YYYY-MM-DD HH:MM:SS[.fffffff]` (the Azure LLM 2023 trace has 100 ns digits).
"""

from __future__ import annotations

import csv
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np

from kubeagora.model import FloatArray

TRACE_FORMATS = ("counts", "timestamps")


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
    counts = _load_counts(path, max_seconds) if fmt == "counts" else _load_timestamps(path)
    if max_seconds is not None:
        counts = counts[:max_seconds]
    if counts.size == 0 or not np.any(counts > 0):
        raise TraceError(f"{path}: trace holds no requests")
    return counts


def _load_counts(path: Path, max_seconds: int | None) -> FloatArray:
    values: list[float] = []
    with path.open() as f:
        for line_no, line in enumerate(f, start=1):
            for token in line.split():
                try:
                    v = int(token)
                except ValueError:
                    raise TraceError(f"{path}, line {line_no}: {token[:40]!r} is not a request count") from None
                if v < 0:
                    raise TraceError(f"{path}, line {line_no}: negative request count {v}")
                values.append(float(v))
                if max_seconds is not None and len(values) >= max_seconds:
                    return np.asarray(values)
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
                times.append(_parse_time(row[0]))
            except ValueError:
                raise TraceError(
                    f"{path}, line {reader.line_num}: {row[0][:40]!r} in column {header[0]!r} is not a timestamp"
                ) from None
    if not times:
        raise TraceError(f"{path}: no arrivals after the header")
    t = np.asarray(times)
    seconds = np.floor(t - t.min()).astype(np.int64)
    return np.bincount(seconds).astype(np.float64)
