"""Prometheus text expositions as plain data, and quantiles from histogram bucket deltas: pure functions.

`parse_exposition` turns a ``/metrics`` body into `Series` with ``prometheus_client``'s own text parser (no
hand-written exposition parser). `histogram_quantile` is PromQL's ``histogram_quantile`` (linear interpolation
within the bucket that holds the rank, as ``promql/quantile.go`` ``bucketQuantile`` in prometheus/prometheus
does), applied to the *increase* of each cumulative bucket between two scrapes (`bucket_deltas`), so a
quantile describes only the requests observed in that interval. It also returns the bounds of the bucket that
holds the quantile: the quantile is only known to lie in that bucket, so the bounds are its resolution.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
"""A sample's labels as a sorted tuple of (name, value) pairs: hashable, order-free."""


@dataclass(frozen=True)
class Sample:
    name: str
    """The sample name as exposed (``vllm:prompt_tokens_total``, ``x_bucket``); counters are also indexed without
    their ``_total`` suffix (`Exposition.values`), since engines differ on it."""
    labels: Labels
    value: float


@dataclass
class Exposition:
    """One scrape: every sample by name (counters also under their name without ``_total``)."""

    samples: dict[str, list[Sample]]
    families: dict[str, str]
    """family name -> type (``counter``, ``gauge``, ``histogram``, ``unknown`` ...), as the parser reports it."""

    def names(self) -> set[str]:
        return set(self.samples)

    def values(self, name: str) -> list[Sample]:
        return self.samples.get(name, [])


class ExpositionError(ValueError):
    """The body is not a Prometheus text exposition."""


def select_families(text: str, prefixes: tuple[str, ...]) -> str:
    """The lines of ``text`` that belong to metric families whose name starts with one of ``prefixes`` (samples,
    and their ``# HELP`` / ``# TYPE`` lines): a large exposition (vLLM with 8 data-parallel engines has thousands of
    lines) is then parsed only where it matters. A selection, not a parser: each kept line goes to
    ``prometheus_client``'s parser unchanged."""
    kept = []
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and parts[2].startswith(prefixes):
                kept.append(line)
        elif line.lstrip().startswith(prefixes):
            kept.append(line)
    return "\n".join(kept) + "\n"


def parse_exposition(text: str, prefixes: tuple[str, ...] | None = None) -> Exposition:
    """Parse a Prometheus text exposition (format 0.0.4) with ``prometheus_client.parser``; with ``prefixes``, only
    the families whose names start with one of them (`select_families`).

    Raises `ExpositionError` (one line) when the text does not parse or holds no sample at all (an HTML page,
    a JSON body, an empty answer)."""
    if prefixes is not None:
        text = select_families(text, prefixes)
    samples: dict[str, list[Sample]] = {}
    families: dict[str, str] = {}
    try:
        for family in text_string_to_metric_families(text):
            families[family.name] = family.type
            for s in family.samples:
                sample = Sample(s.name, tuple(sorted(s.labels.items())), float(s.value))
                samples.setdefault(s.name, []).append(sample)
                if s.name.endswith("_total") and family.type in ("counter", "unknown"):
                    samples.setdefault(s.name[: -len("_total")], []).append(sample)
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExpositionError(f"not a Prometheus text exposition ({first[:160]})") from None
    if not samples:
        raise ExpositionError("no metric samples in the answer (empty body, or not a Prometheus exposition)")
    return Exposition(samples, families)


def only(labels: Labels, keep: Iterable[str]) -> Labels:
    """``labels`` restricted to the names in ``keep``."""
    kept = set(keep)
    return tuple((k, v) for k, v in labels if k in kept)


def label(labels: Labels, name: str) -> str | None:
    for k, v in labels:
        if k == name:
            return v
    return None


def parse_le(text: str) -> float | None:
    """A bucket's ``le`` label as a float (``+Inf`` -> inf); None when it is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


Buckets = list[tuple[float, float]]
"""A cumulative histogram: (upper bound, count of observations <= bound), ascending bounds, ``inf`` last."""


def cumulative_buckets(pairs: Iterable[tuple[float, float]], count: float | None = None) -> Buckets:
    """Sorted cumulative buckets; adds the ``+Inf`` bucket from ``count`` (the histogram's ``_count``) when the
    exposition left it out, and merges duplicate bounds (several series summed)."""
    merged: dict[float, float] = {}
    for le, c in pairs:
        merged[le] = merged.get(le, 0.0) + c
    out = sorted(merged.items())
    if (not out or not math.isinf(out[-1][0])) and count is not None:
        out.append((math.inf, count))
    return out


def bucket_deltas(now: Buckets, before: Buckets) -> Buckets | None:
    """Per-bound increase of a cumulative histogram between two scrapes (bounds present in both).

    None when any bucket went down (the engine restarted: the counters were reset) or no bound is shared."""
    prev = dict(before)
    out: Buckets = []
    for le, c in now:
        if le not in prev:
            continue
        d = c - prev[le]
        if d < 0:
            return None
        out.append((le, d))
    return out or None


@dataclass(frozen=True)
class Quantile:
    value: float
    """The quantile, in the histogram's unit (seconds for the engines' latency histograms)."""
    bucket_lo: float
    """Lower bound of the bucket holding the quantile (the previous upper bound; 0 for the first bucket)."""
    bucket_hi: float | None
    """Upper bound of that bucket; None when the quantile fell in the ``+Inf`` bucket (then ``value`` is the
    highest finite bound, as Prometheus returns, and only a lower limit)."""


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> Quantile | None:
    """The ``q``-quantile (0 <= q <= 1) of a cumulative histogram, the way PromQL's ``histogram_quantile`` does it.

    ``buckets``: (upper bound, cumulative count) with ascending bounds and ``+Inf`` last (the counts of one
    interval: `bucket_deltas`). The rank is ``q * total``; the quantile lies in the first bucket whose cumulative
    count reaches the rank and is interpolated linearly between that bucket's lower and upper bound, assuming the
    observations are spread evenly inside it. The first bucket's lower bound is 0 (or its upper bound when that
    is <= 0). A rank in the ``+Inf`` bucket returns the highest finite bound. Counts that decrease from one
    bound to the next (a scrape torn between two updates) are clamped up to be monotonic, as Prometheus does.

    None when there is no observation, no ``+Inf`` bucket, fewer than two buckets, or ``q`` is outside [0, 1].

    Known answer: buckets (0.1, 10), (0.5, 60), (1.0, 90), (+Inf, 100): the median's rank is 50, in the
    (0.1, 0.5] bucket that holds observations 11..60, so p50 = 0.1 + 0.4 * (50 - 10) / 50 = 0.42.
    """
    if not 0.0 <= q <= 1.0 or len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    bounds = [b for b, _ in buckets]
    counts: list[float] = []
    for _, c in buckets:
        counts.append(max(c, counts[-1]) if counts else c)
    total = counts[-1]
    if not total > 0:
        return None
    rank = q * total
    i = next(k for k, c in enumerate(counts) if c >= rank)
    if i == len(buckets) - 1:
        lo = bounds[-2]
        return Quantile(lo, lo, None)
    hi = bounds[i]
    if i == 0:
        lo = 0.0 if hi > 0 else hi
        below = 0.0
    else:
        lo, below = bounds[i - 1], counts[i - 1]
    if hi == lo:
        return Quantile(hi, lo, hi)
    in_bucket = counts[i] - below
    frac = (rank - below) / in_bucket if in_bucket > 0 else 1.0
    return Quantile(lo + (hi - lo) * frac, lo, hi)


def histogram_series(expo: Exposition, name: str, keep: Iterable[str] = ()) -> dict[Labels, tuple[Buckets, float]]:
    """The histogram ``name`` (family name, without ``_bucket``) per value of the ``keep`` labels (series that differ
    only in other labels, e.g. vLLM's ``engine`` index, are summed): cumulative buckets and the ``_sum``."""
    keep = set(keep) - {"le"}
    pairs: dict[Labels, list[tuple[float, float]]] = {}
    for s in expo.values(f"{name}_bucket"):
        le = parse_le(label(s.labels, "le") or "")
        if le is None:
            continue
        pairs.setdefault(only(s.labels, keep), []).append((le, s.value))
    counts: dict[Labels, float] = {}
    for s in expo.values(f"{name}_count"):
        key = only(s.labels, keep)
        counts[key] = counts.get(key, 0.0) + s.value
    sums: dict[Labels, float] = {}
    for s in expo.values(f"{name}_sum"):
        key = only(s.labels, keep)
        sums[key] = sums.get(key, 0.0) + s.value
    return {key: (cumulative_buckets(p, counts.get(key)), sums.get(key, math.nan)) for key, p in pairs.items()}


def summed(samples: Iterable[Sample], keep: Iterable[str] = ()) -> dict[Labels, float]:
    """Samples summed per value of the ``keep`` labels (other labels, e.g. vLLM's ``engine`` and
    ``finished_reason``, are summed over)."""
    keep = set(keep)
    out: dict[Labels, float] = {}
    for s in samples:
        key = only(s.labels, keep)
        out[key] = out.get(key, 0.0) + s.value
    return out


def gauge_total(samples: Iterable[Sample], keep: Iterable[str], sum_over: Iterable[str]) -> dict[Labels, float]:
    """A gauge per value of the ``keep`` labels: summed over the ``sum_over`` labels (data-parallel replicas, each
    with its own batch: vLLM's ``engine``, SGLang's ``dp_rank``) and the maximum over every other label (ranks that
    report the same batch, e.g. SGLang's ``tp_rank``, would otherwise be counted once per rank)."""
    keep, sum_over = set(keep), set(sum_over)
    per_replica: dict[tuple[Labels, Labels], float] = {}
    for s in samples:
        key = (only(s.labels, keep), only(s.labels, sum_over))
        per_replica[key] = max(per_replica.get(key, s.value), s.value)
    out: dict[Labels, float] = {}
    for (k, _), v in per_replica.items():
        out[k] = out.get(k, 0.0) + v
    return out
