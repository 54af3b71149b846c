"""Latency percentiles in constant memory, mergeable across processes."""

from __future__ import annotations

import math


class LatencyHistogram:
    """Log-linear histogram of non-negative microseconds, HDR style.

    Values below 256 µs have their own bucket; above, each power of two is split into 128
    buckets, so a reported percentile is within 1/128 (0.8 %) of the true value. About 5,000
    counters cover up to 2**48 µs whatever the number of samples.
    """

    SUB_BITS = 8
    FULL = 1 << SUB_BITS
    HALF = FULL >> 1
    MAX_SHIFT = 40

    def __init__(self) -> None:
        self.counts = [0] * (self.FULL + self.MAX_SHIFT * self.HALF)
        self.count = 0
        self.total_us = 0
        self.max_us = 0

    def add(self, value_us: int) -> None:
        if value_us < self.FULL:
            index = value_us
        else:
            shift = min(value_us.bit_length() - self.SUB_BITS, self.MAX_SHIFT)
            top = min(value_us >> shift, self.FULL - 1)
            index = self.FULL + (shift - 1) * self.HALF + top - self.HALF
        self.counts[index] += 1
        self.count += 1
        self.total_us += value_us
        if value_us > self.max_us:
            self.max_us = value_us

    def _bucket_middle_us(self, index: int) -> float:
        if index < self.FULL:
            return float(index)
        shift = (index - self.FULL) // self.HALF + 1
        top = (index - self.FULL) % self.HALF + self.HALF
        return (top << shift) + ((1 << shift) - 1) / 2

    def percentile_us(self, fraction: float) -> float:
        """Nearest-rank percentile (the middle of its bucket, never above the maximum)."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(fraction * self.count))
        seen = 0
        for index, bucket in enumerate(self.counts):
            seen += bucket
            if seen >= rank:
                return min(self._bucket_middle_us(index), float(self.max_us))
        return float(self.max_us)

    def summary_ms(self) -> dict[str, float]:
        def ms(value_us: float) -> float:
            return round(value_us / 1000, 3)

        return {
            "p50": ms(self.percentile_us(0.50)),
            "p95": ms(self.percentile_us(0.95)),
            "p99": ms(self.percentile_us(0.99)),
            "max": ms(self.max_us),
            "mean": ms(self.total_us / self.count) if self.count else 0.0,
            "count": self.count,
        }

    def sparse(self) -> dict[str, int]:
        """The counts as ``{bucket: count}`` without the empty buckets, plus the total and
        maximum (``"t"``, ``"m"``): what a child process hands its parent as JSON."""
        counts = {str(index): n for index, n in enumerate(self.counts) if n}
        return {**counts, "t": self.total_us, "m": self.max_us}

    def merge_sparse(self, sparse: dict[str, int]) -> None:
        """Add another histogram's ``sparse()`` to this one."""
        for key, n in sparse.items():
            if key == "t":
                self.total_us += n
            elif key == "m":
                self.max_us = max(self.max_us, n)
            else:
                self.counts[int(key)] += n
                self.count += n
