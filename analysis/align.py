"""Alignment: benchmark and telemetry on one time grid (frames in, frames out).

Every frame here is keyed by ``window_start`` (``Datetime("ns", "UTC")``, the window's left edge; windows are
``[window_start, window_start + window_s)``, aligned to the Unix epoch so two frames gridded with the same
``window_s`` join exactly).

Window length (`choose_window_s`) is adaptive: the smallest step of `WINDOW_LADDER_S` at which a window of the
victim's run holds at least ``min_itl_samples`` (default 1000) inter-token latencies on average, so a windowed
p99 ITL rests on ~1k samples. The window length is the same across the whole run, and a window's p99 is kept down to
`MIN_P99_SAMPLES` (100) ITLs: dropping it under a larger count would censor exactly the slow windows (a slowed
victim emits fewer tokens per window), a selection bias. The linear-interpolated p99 of n samples sits near the
(1 - 2/n) quantile, so the p99 of a sparse (slow) window is if anything understated: conservative for harm.
Windows under 100 ITLs (ramp-up, drain) keep their counts, p50 and mean but get a null ``itl_ms_p99``. The
choice is reported in `Grid.notes`.

Frames (all long form; `Grid.wide` pivots them for regressions):

**victim** (`victim_windows`, or any other source through `grid_from_victim`), one row per (run_id, window_start)
of the victim's benchmark runs. This table is the contract a second source fills (e.g. live serving metrics,
`serving` measurement: one row per scrape interval as a window): attribution reads ``window_start``, ``phase``,
``covered_s``, ``tokens``, ``output_tok_s``, ``itl_ms_p99``, ``ttft_ms_p99``, ``requests_per_s`` and the load
columns (``running_requests``, ``prefill_tokens``, ``requests_started``); a column a source cannot fill is null
(a window with a null latency counts through its rate alone), never 0.

==========================  ==============================================================================
run_id, phase, group        the run's tags (one run / one phase / the victim's group for a live source)
window_start                Datetime(ns, UTC), the window's left edge on the epoch grid
covered_s                   seconds of the window inside the run (windows under half covered are dropped)
tokens                      output tokens emitted in the window (per-token emission times)
output_tok_s                tokens / covered_s
itl_n                       ITL samples in the window
itl_ms_p50, itl_ms_p99      windowed ITL quantiles (p99 null when itl_n < MIN_P99_SAMPLES)
itl_ms_mean                 windowed mean ITL (estimable in every window with an ITL)
requests_started            requests dispatched in the window (successful ones: their TTFT is known)
requests_per_s              requests_started / covered_s (live source: requests finished per second)
ttft_ms_p50, ttft_ms_p99    TTFT quantiles of requests dispatched in the window (null if none; p99 null under
                            `MIN_TTFT_P99_SAMPLES` requests: with a handful it is their maximum)
running_requests            mean number of requests in flight (the victim's own load)
prefill_tokens              input tokens of requests whose prefill finished (first token) in the window
==========================  ==============================================================================

**devices** (`device_windows`; in `Grid` only with ``align(per_device=True)``): window_start, node, device, group,
and window means of ``power_w``, ``power_limit_w``, ``util_pct``, then every resource's fields
(`analysis.resources.FIELDS`, in record order; today ``pcie_bytes_per_s`` (rx + tx, else
``pcie_bidir_bytes_per_s``), ``temp_c``, ``sm_clock_mhz``, ``throttle_thermal_share``, ``throttle_power_share``
(share of samples flagged) and ``at_power_cap_share`` (power_w >= 97 % of power_limit_w)).

**groups** (`group_windows`, or `group_windows_direct` from the samples in one pass): the same per
(window_start, group): ``power_w``, ``power_limit_w`` and the resource fields whose ``group_agg`` is ``sum``
(``pcie_bytes_per_s``) summed over the group's devices, the others averaged; ``n_devices``.

**host** (`host_windows`): window_start, node, ``cpu_util_pct``, ``procs_running``, ``load1``, ``cpu_count`` (node
means), then the ``host`` fields of the resource records present in the samples (`analysis.resources.fields_of`:
PSI, vmstat, resctrl MBM).

**sockets** (`socket_windows`): window_start, socket, ``util_pct`` (mean over the socket's cores),
``saturated_core_share`` (share of core-samples at >= 95 % utilisation: CPU contention, not mere use).

**tenants** (`tenant_windows`): window_start, group, ``cpu_pct``, then the records' ``tenant`` fields present
(per-tenant PSI, CFS throttling, memory.stat, resctrl).

**disks** / **nets** / **rdma** (`measurement_windows` of ``host_disk`` / ``host_net`` / ``rdma``; `align` takes
them as ``disk=``, ``net=``, ``rdma=``): window_start, the measurement's tags (node, disk |
node, interface | node, device, port) and the records' fields of that measurement (disk await / busy / queue;
NIC bytes, speed, drops; RDMA xmit wait, congestion notifications, ECN marks, discards).

One mechanism for every measurement: `measurement_windows` averages each record field's per-sample expression
over the window per tag combination; a field absent from the samples is absent from the frame (null, never 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from analysis.resources import FIELDS, MEASUREMENT_KEYS, SATURATED_CORE_PCT, fields_of

TIME_DTYPE = pl.Datetime("ns", "UTC")
WINDOW_LADDER_S: tuple[float, ...] = (1, 2, 5, 10, 15, 30, 60, 120, 300)
MIN_ITL_SAMPLES = 1000
MIN_P99_SAMPLES = 100  # below this a window's p99 is the top order statistic or two: null
MIN_TTFT_P99_SAMPLES = 3  # a window's TTFT p99 needs this many requests (TTFT is one value per request)

Frame = pl.DataFrame | pl.LazyFrame
# telemetry aggregations run on polars' streaming engine: a week of 1 Hz samples never sits in memory at once
ENGINE = "streaming"


def _lazy(frame: Frame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"window_start": TIME_DTYPE})


def window_expr(window_s: float, col: str = "time") -> pl.Expr:
    """``col`` floored to the window grid (epoch-aligned), as ``window_start``."""
    w = round(window_s * 1e9)
    return ((pl.col(col).cast(pl.Int64) // w) * w).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")


@dataclass(frozen=True)
class Grid:
    """Everything on one grid: the victim's windows next to devices, groups, host, sockets, tenants, and the
    victim-side device measurements (disks, NICs, RDMA ports)."""

    window_s: float
    victim: pl.DataFrame
    devices: pl.DataFrame
    groups: pl.DataFrame
    host: pl.DataFrame
    sockets: pl.DataFrame
    tenants: pl.DataFrame
    notes: tuple[str, ...] = field(default=())
    disks: pl.DataFrame = field(default_factory=lambda: _empty())
    nets: pl.DataFrame = field(default_factory=lambda: _empty())
    rdma: pl.DataFrame = field(default_factory=lambda: _empty())

    def measurement(self, name: str) -> pl.DataFrame:
        """The window frame of a telemetry measurement: ``host``, ``tenant``, ``host_disk``, ``host_net`` or
        ``rdma``."""
        frames = {
            "host": self.host,
            "tenant": self.tenants,
            "host_disk": self.disks,
            "host_net": self.nets,
            "rdma": self.rdma,
        }
        return frames[name]

    def wide(self, victim_group: str | None = None) -> pl.DataFrame:
        """One row per victim window: the victim columns, then ``<group>.<field>`` for every group,
        ``host.<field>``, ``socket<k>.<field>``, ``tenant.<group>.<field>`` (``cpu_pct`` and the records' tenant
        fields), ``host_disk.<disk>.<field>``, ``host_net.<interface>.<field>``, ``rdma.<device>/<port>.<field>`` (left joins
        on window_start)."""
        out = self.victim
        if self.groups.height:
            g = self.groups.drop("node", strict=False)
            fields = [c for c in g.columns if c not in ("window_start", "group")]
            piv = g.pivot(on="group", index="window_start", values=fields, aggregate_function="mean")
            piv = piv.rename({c: _pivot_name(c, fields, "") for c in piv.columns if c != "window_start"})
            out = out.join(piv, on="window_start", how="left")
        if self.host.height:
            h = self.host.drop("node", strict=False).group_by("window_start").mean()
            out = out.join(
                h.rename({c: f"host.{c}" for c in h.columns if c != "window_start"}), on="window_start", how="left"
            )
        if self.sockets.height:
            s = self.sockets.with_columns(pl.concat_str(pl.lit("socket"), pl.col("socket")).alias("socket"))
            fields = ["util_pct", "saturated_core_share"]
            piv = s.pivot(on="socket", index="window_start", values=fields, aggregate_function="mean")
            piv = piv.rename({c: _pivot_name(c, fields, "") for c in piv.columns if c != "window_start"})
            out = out.join(piv, on="window_start", how="left")
        for prefix, frame in (
            ("tenant", self.tenants),
            ("host_disk", self.disks),
            ("host_net", self.nets),
            ("rdma", self.rdma),
        ):
            keys = [k for k in MEASUREMENT_KEYS[prefix] if k in frame.columns and k != "node"]
            if not frame.height or not keys:
                continue
            f = frame.with_columns(pl.concat_str([pl.col(k) for k in keys], separator="/").alias("_key"))
            fields = [c for c in frame.columns if c not in ("window_start", "node", *keys)]
            piv = f.pivot(on="_key", index="window_start", values=fields, aggregate_function="mean")
            if len(fields) == 1:
                piv = piv.rename({c: f"{prefix}.{c}.{fields[0]}" for c in piv.columns if c != "window_start"})
            else:
                piv = piv.rename({c: _pivot_name(c, fields, f"{prefix}.") for c in piv.columns if c != "window_start"})
            out = out.join(piv, on="window_start", how="left")
        return out.sort("window_start")


def _pivot_name(col: str, fields: Sequence[str], prefix: str) -> str:
    # polars names pivoted columns "<field>_<on value>" when several values are pivoted
    for f in sorted(fields, key=len, reverse=True):
        if col.startswith(f + "_"):
            return f"{prefix}{col[len(f) + 1 :]}.{f}"
    return col


# ------------------------------------------------------------------------------------------------ victim


def choose_window_s(
    tokens: Frame,
    run_seconds: float,
    min_itl_samples: int = MIN_ITL_SAMPLES,
    ladder: Sequence[float] = WINDOW_LADDER_S,
) -> float:
    """Smallest ladder step whose average window holds ``min_itl_samples`` ITLs (``run_seconds``: total
    seconds the runs cover). Falls back to the largest step."""
    n = _lazy(tokens).select(pl.col("itl_ms").is_not_null().sum()).collect().item() or 0
    return window_for_itl_count(n, run_seconds, min_itl_samples, ladder)


def window_for_itl_count(
    itl_n: int,
    run_seconds: float,
    min_itl_samples: int = MIN_ITL_SAMPLES,
    ladder: Sequence[float] = WINDOW_LADDER_S,
) -> float:
    """`choose_window_s` from the number of ITL samples (``itl_n``, e.g. summed from `TokenAggregates.runs`)."""
    rate = itl_n / run_seconds if run_seconds > 0 else 0.0
    for w in ladder:
        if rate * w >= min_itl_samples:
            return float(w)
    return float(ladder[-1])


def run_seconds(runs: pl.DataFrame) -> float:
    """Seconds the runs cover (``end - start`` summed): what `choose_window_s` divides the ITL count by."""
    return float((runs["end"].cast(pl.Int64) - runs["start"].cast(pl.Int64)).sum() / 1e9) if runs.height else 0.0


def _normalise_tokens(tokens: Frame) -> pl.LazyFrame:
    lf = _lazy(tokens)
    names = lf.collect_schema().names()
    if "tokens" not in names:
        lf = lf.with_columns(pl.lit(1, dtype=pl.Int64).alias("tokens"))
    return lf


TOKEN_CHUNK_ROWS = 2_000_000
"""`token_windows` aggregates the tokens of a few runs at a time, about this many rows: the windowed quantiles
of a week of tokens (10^8 rows) at once would hold several copies of them (keys, window column, gathered
values); a chunk of whole runs gives the same (run_id, window) rows with memory bounded by the chunk."""


def _run_chunks(tok: pl.LazyFrame, max_rows: int) -> list[list[str]] | None:
    """The run ids of ``tok`` in consecutive chunks of about ``max_rows`` rows (whole runs); None: one chunk."""
    counts = tok.group_by("run_id").agg(pl.len().alias("n")).collect().sort("run_id")
    if counts["n"].sum() <= max_rows or counts.height < 2:
        return None
    chunks: list[list[str]] = [[]]
    rows = 0
    for rid, n in counts.select(pl.col("run_id").cast(pl.String), "n").iter_rows():
        if chunks[-1] and rows + n > max_rows:
            chunks.append([])
            rows = 0
        chunks[-1].append(rid)
        rows += n
    return chunks


def by_run_chunks(
    tokens: Frame, fn: Callable[[pl.LazyFrame], pl.DataFrame], max_rows: int = TOKEN_CHUNK_ROWS
) -> pl.DataFrame:
    """``fn`` applied to ``tokens`` a few whole runs at a time (about ``max_rows`` rows; `TOKEN_CHUNK_ROWS`), the
    results concatenated: for per-run (or per run and window) aggregations, the same rows as ``fn(tokens)`` with
    memory bounded by the chunk. A lazy scan of per-run files reads only the chunk's files each time."""
    lf = _lazy(tokens)
    chunks = _run_chunks(lf, max_rows)
    if chunks is None:
        return fn(lf)
    return pl.concat([fn(lf.filter(pl.col("run_id").is_in(ids))) for ids in chunks])


def _window_aggs() -> list[pl.Expr]:
    """`token_windows`' aggregations of one (run_id, window_start) group."""
    return [
        pl.col("tokens").sum().alias("tokens"),
        pl.col("itl_ms").is_not_null().sum().alias("itl_n"),
        pl.col("itl_ms").quantile(0.5, "linear").alias("itl_ms_p50"),
        pl.col("itl_ms").quantile(0.99, "linear").alias("itl_ms_p99"),
        pl.col("itl_ms").mean().alias("itl_ms_mean"),
    ]


def _windowed(part: pl.LazyFrame, window_s: float) -> pl.LazyFrame:
    return (
        part.with_columns(window_expr(window_s).alias("window_start"))
        .group_by("run_id", "window_start")
        .agg(*_window_aggs())
        .with_columns(pl.col("run_id").cast(pl.String))
    )


def token_windows(tokens: Frame, window_s: float, max_rows: int = TOKEN_CHUNK_ROWS) -> pl.DataFrame:
    """Per (run_id, window_start): ``tokens`` (emitted), ``itl_n``, ``itl_ms_p50``, ``itl_ms_p99`` (unfiltered),
    ``itl_ms_mean`` of the tokens layout; computed over chunks of whole runs (`TOKEN_CHUNK_ROWS`)."""
    lf = _normalise_tokens(tokens).select("run_id", "time", "itl_ms", "tokens")
    return by_run_chunks(lf, lambda part: _windowed(part, window_s).collect(), max_rows)


RUN_TOKEN_COLUMNS: dict[str, pl.DataType] = {
    "run_id": pl.String(), "rows": pl.Int64(), "itl_n": pl.Int64(), "itl_ms_p50": pl.Float64(),
    "itl_ms_p99": pl.Float64(),
}  # fmt: skip
"""`TokenAggregates.runs`: per run its token rows, ITL samples and ITL quantiles over all its tokens (numpy-linear,
as `analysis.degradation.run_metrics` compares runs; null without an ITL)."""


def _run_stats(lf: pl.LazyFrame) -> pl.LazyFrame:
    counts = lf.group_by("run_id").agg(
        pl.len().cast(pl.Int64).alias("rows"), pl.col("itl_ms").is_not_null().sum().cast(pl.Int64).alias("itl_n")
    )
    quantiles = (
        lf.filter(pl.col("itl_ms").is_not_null())
        .group_by("run_id")
        .agg(
            pl.col("itl_ms").quantile(0.5, "linear").alias("itl_ms_p50"),
            pl.col("itl_ms").quantile(0.99, "linear").alias("itl_ms_p99"),
        )
    )
    return (
        counts.join(quantiles, on="run_id", how="left")
        .with_columns(pl.col("run_id").cast(pl.String))
        .select(list(RUN_TOKEN_COLUMNS))
    )


@dataclass(frozen=True)
class TokenAggregates:
    """Everything analysis reads from the tokens of a set of runs, reduced once: per run (`RUN_TOKEN_COLUMNS`: the
    ITL count that chooses the window, the per-run ITL quantiles the phase comparison uses) and per (run_id,
    window_start) at ``window_s`` (`token_windows`' columns). `token_aggregates` computes both in one read of the
    tokens; `analysis.analyze` also keeps them in the store (per run, a derived artifact of the write-once tokens
    artifact) so a second analysis of the same runs reads no token at all."""

    window_s: float
    runs: pl.DataFrame
    windows: pl.DataFrame

    @property
    def itl_n(self) -> int:
        """ITL samples of every run (what `align` chooses the window from)."""
        return int(self.runs["itl_n"].sum() or 0)

    def of_runs(self, run_ids: Sequence[str]) -> TokenAggregates:
        """The aggregates of ``run_ids`` only."""
        ids = list(run_ids)
        return TokenAggregates(
            self.window_s,
            self.runs.filter(pl.col("run_id").is_in(ids)),
            self.windows.filter(pl.col("run_id").is_in(ids)),
        )


def token_aggregates(
    tokens: Frame | Sequence[pl.LazyFrame], window_s: float, max_rows: int = TOKEN_CHUNK_ROWS
) -> TokenAggregates:
    """`TokenAggregates` of ``tokens`` at ``window_s``, each token read once: a chunk of whole runs is read into
    memory, then aggregated per window and per run. ``tokens``: one frame (split into chunks of about ``max_rows``
    rows here, `by_run_chunks`), or the chunks themselves, each holding whole runs (e.g. a few runs' files: then no
    run_id column is read to split them)."""
    if isinstance(tokens, pl.DataFrame | pl.LazyFrame):
        lf = _normalise_tokens(tokens).select("run_id", "time", "itl_ms", "tokens")
        ids = _run_chunks(lf, max_rows)
        parts = [lf] if ids is None else [lf.filter(pl.col("run_id").is_in(c)) for c in ids]
    else:
        parts = [_normalise_tokens(p).select("run_id", "time", "itl_ms", "tokens") for p in tokens]
    wins, runs = [], []
    for part in parts:
        df = part.collect()
        w, r = pl.collect_all([_windowed(df.lazy(), window_s), _run_stats(df.lazy())])
        wins.append(w)
        runs.append(r)
    windows = pl.concat(wins) if wins else _windowed(pl.LazyFrame(schema=_TOKEN_SCHEMA), window_s).collect()
    stats = pl.concat(runs) if runs else pl.DataFrame(schema=RUN_TOKEN_COLUMNS)
    return TokenAggregates(float(window_s), stats, windows)


_TOKEN_SCHEMA = {"run_id": pl.String, "time": TIME_DTYPE, "itl_ms": pl.Float64, "tokens": pl.Int64}


def victim_windows(
    requests: pl.DataFrame,
    tokens: Frame,
    runs: pl.DataFrame,
    window_s: float,
    min_itl_samples: int = MIN_ITL_SAMPLES,
    *,
    windows_of_tokens: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The victim's windows (layout in the module docstring).

    ``requests``: the requests layout (`analysis.ingest.model`) of the runs (run_id, time, ttft_ms, e2e_ms,
    input_tokens, error); ``tokens``: the tokens layout (``tokens`` column optional, 1 per row); ``runs``: one
    row per run with run_id, phase, group, start, end (Datetime UTC). ``windows_of_tokens``: `token_windows` of
    ``tokens`` at ``window_s`` already computed (`TokenAggregates.windows`): the tokens are then not read.
    """
    w_ns = round(window_s * 1e9)
    run_lf = runs.lazy().select(
        "run_id", "phase", "group", pl.col("start").cast(TIME_DTYPE), pl.col("end").cast(TIME_DTYPE)
    )
    tok = (token_windows(tokens, window_s) if windows_of_tokens is None else windows_of_tokens).lazy()
    ok = requests.lazy().filter(pl.col("error").is_null() & pl.col("ttft_ms").is_not_null())
    started = (
        ok.with_columns(window_expr(window_s).alias("window_start"))
        .group_by("run_id", "window_start")
        .agg(
            pl.len().cast(pl.Int64).alias("requests_started"),
            pl.col("ttft_ms").median().alias("ttft_ms_p50"),
            pl.when(pl.len() >= MIN_TTFT_P99_SAMPLES)
            .then(pl.col("ttft_ms").quantile(0.99, "linear"))
            .alias("ttft_ms_p99"),
        )
    )
    first_tok = pl.col("time").cast(pl.Int64) + (pl.col("ttft_ms") * 1e6).cast(pl.Int64)
    prefill = (
        ok.with_columns(
            ((first_tok // w_ns) * w_ns).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias("window_start")
        )
        .group_by("run_id", "window_start")
        .agg(pl.col("input_tokens").fill_null(0).sum().cast(pl.Float64).alias("prefill_tokens"))
    )
    # mean in-flight requests: overlap of [start, start + e2e) with each window
    t0 = pl.col("time").cast(pl.Int64)
    t1 = t0 + (pl.col("e2e_ms").fill_null(pl.col("ttft_ms")) * 1e6).cast(pl.Int64)
    spans = (
        requests.lazy()
        .filter(pl.col("ttft_ms").is_not_null())
        .select("run_id", t0.alias("_a"), t1.alias("_b"))
        .with_columns(pl.int_ranges(pl.col("_a") // w_ns, pl.col("_b") // w_ns + 1).alias("_w"))
        .explode("_w")
        .with_columns((pl.col("_w") * w_ns).alias("_ws"))
        .with_columns(
            (pl.min_horizontal(pl.col("_b"), pl.col("_ws") + w_ns) - pl.max_horizontal(pl.col("_a"), pl.col("_ws")))
            .clip(lower_bound=0)
            .alias("_ov")
        )
        .group_by("run_id", "_ws")
        .agg((pl.col("_ov").sum() / w_ns).alias("running_requests"))
        .select(
            "run_id",
            pl.col("_ws").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias("window_start"),
            "running_requests",
        )
    )
    grid = (
        run_lf.with_columns(
            pl.int_ranges(pl.col("start").cast(pl.Int64) // w_ns, pl.col("end").cast(pl.Int64) // w_ns + 1).alias("_w")
        )
        .explode("_w")
        .with_columns((pl.col("_w") * w_ns).alias("_ws"))
        .with_columns(
            (
                (
                    pl.min_horizontal(pl.col("end").cast(pl.Int64), pl.col("_ws") + w_ns)
                    - pl.max_horizontal(pl.col("start").cast(pl.Int64), pl.col("_ws"))
                ).clip(lower_bound=0)
                / 1e9
            ).alias("covered_s")
        )
        .filter(pl.col("covered_s") >= window_s / 2)
        .select(
            "run_id",
            "phase",
            "group",
            pl.col("_ws").cast(pl.Datetime("ns")).dt.replace_time_zone("UTC").alias("window_start"),
            "covered_s",
        )
    )
    out = (
        grid.join(tok, on=["run_id", "window_start"], how="left")
        .join(started, on=["run_id", "window_start"], how="left")
        .join(prefill, on=["run_id", "window_start"], how="left")
        .join(spans, on=["run_id", "window_start"], how="left")
        .with_columns(
            pl.col("tokens").fill_null(0),
            pl.col("itl_n").fill_null(0).cast(pl.Int64),
            pl.col("requests_started").fill_null(0),
            pl.col("prefill_tokens").fill_null(0.0),
            pl.col("running_requests").fill_null(0.0),
        )
        .with_columns(
            (pl.col("tokens") / pl.col("covered_s")).alias("output_tok_s"),
            (pl.col("requests_started") / pl.col("covered_s")).alias("requests_per_s"),
            pl.when(pl.col("itl_n") >= min(MIN_P99_SAMPLES, min_itl_samples))
            .then(pl.col("itl_ms_p99"))
            .alias("itl_ms_p99"),
        )
        .select(
            "run_id",
            "phase",
            "group",
            "window_start",
            "covered_s",
            "tokens",
            "output_tok_s",
            "itl_n",
            "itl_ms_p50",
            "itl_ms_p99",
            "itl_ms_mean",
            "requests_started",
            "requests_per_s",
            "ttft_ms_p50",
            "ttft_ms_p99",
            "running_requests",
            "prefill_tokens",
        )
        .sort("run_id", "window_start")
    )
    return out.collect()


# ------------------------------------------------------------------------------------------------ telemetry


def device_windows(accel: Frame, window_s: float) -> pl.DataFrame:
    """Per (window, device) means of the `accel` fields analysis uses (layout in the module docstring)."""
    lf = _lazy(accel)
    names = set(lf.collect_schema().names())

    def col(name: str) -> pl.Expr:
        return pl.col(name) if name in names else pl.lit(None, dtype=pl.Float64)

    return (
        lf.select(
            window_expr(window_s).alias("window_start"),
            col("node").alias("node") if "node" in names else pl.lit("").alias("node"),
            "device",
            col("group").fill_null("").alias("group") if "group" in names else pl.lit("").alias("group"),
            col("power_w").cast(pl.Float64).alias("power_w"),
            col("power_limit_w").cast(pl.Float64).alias("power_limit_w"),
            col("util_pct").cast(pl.Float64).alias("util_pct"),
            *[f.expr(col).cast(pl.Float64).alias(f.name) for f in FIELDS],
        )
        .group_by("window_start", "node", "device", "group")
        .mean()
        .sort("window_start", "device")
        .collect(engine=ENGINE)
    )


_GROUP_SUMS = ("power_w", "power_limit_w", *(f.name for f in FIELDS if f.group_agg == "sum"))
"""Group fields summed over the group's devices (power, its limit, and each resource's summed fields)."""
_GROUP_MEANS = ("util_pct", *(f.name for f in FIELDS if f.group_agg == "mean"))
"""Group fields averaged over the group's devices."""


def _window_means() -> list[pl.Expr]:
    return [pl.col(c).mean() for c in _GROUP_MEANS]


def group_windows(devices: pl.DataFrame) -> pl.DataFrame:
    """Per (window, group) activity from `device_windows`: power and PCIe summed, the rest averaged."""
    if devices.height == 0:
        return pl.DataFrame(schema={"window_start": TIME_DTYPE, "node": pl.String, "group": pl.String})
    return (
        devices.group_by("window_start", "node", "group")
        .agg(
            *[pl.col(c).sum().alias(c) for c in _GROUP_SUMS],
            *_window_means(),
            pl.len().cast(pl.Int64).alias("n_devices"),
        )
        .sort("window_start", "group")
    )


HOST_BASE = ("cpu_util_pct", "procs_running", "load1", "cpu_count")
"""Host columns every grid carries (CPU activity), before the records' host fields."""
TENANT_BASE = ("cpu_pct",)
"""Tenant columns every grid carries (a co-tenant's activity), before the records' tenant fields."""
_BASE = {"host": HOST_BASE, "tenant": TENANT_BASE}


def measurement_windows(frame: Frame, window_s: float, measurement: str) -> pl.DataFrame:
    """Per (window, tags) means of a telemetry measurement (``host``, ``tenant``, ``host_disk``, ``host_net``, ``rdma``):
    its base columns (`HOST_BASE`, `TENANT_BASE`) and every resource record's fields of that measurement
    (`analysis.resources.fields_of`), each the window mean of its per-sample expression. A field whose sample
    fields are all absent from ``frame`` is left out (null where read, never 0); a missing tag reads as ""."""
    lf = _lazy(frame)
    names = set(lf.collect_schema().names())

    def col(name: str) -> pl.Expr:
        return pl.col(name).cast(pl.Float64) if name in names else pl.lit(None, dtype=pl.Float64)

    keys = MEASUREMENT_KEYS[measurement]
    base = [c for c in _BASE.get(measurement, ()) if c in names]
    values = [pl.col(c).cast(pl.Float64).alias(c) for c in base]
    for f in fields_of(measurement):
        read: set[str] = set()

        def probe(name: str, read: set[str] = read) -> pl.Expr:
            read.add(name)
            return pl.lit(None)

        f.expr(probe)
        if f.name not in base and read & names:
            values.append(f.expr(col).cast(pl.Float64).alias(f.name))
    tags = [(pl.col(k).cast(pl.String).fill_null("") if k in names else pl.lit("")).alias(k) for k in keys]
    return (
        lf.select(window_expr(window_s).alias("window_start"), *tags, *values)
        .group_by("window_start", *keys)
        .mean()
        .sort("window_start", *keys)
        .collect(engine=ENGINE)
    )


def host_windows(host: Frame, window_s: float) -> pl.DataFrame:
    """Per (window, node) means of host CPU activity and the records' host fields (`measurement_windows`)."""
    return measurement_windows(host, window_s, "host")


def socket_windows(host_core: Frame, window_s: float) -> pl.DataFrame:
    """Per (window, socket) CPU use and contention (share of saturated core-samples)."""
    lf = _lazy(host_core)
    return (
        lf.select(
            window_expr(window_s).alias("window_start"),
            pl.col("socket").fill_null("0"),
            pl.col("util_pct").cast(pl.Float64),
        )
        .group_by("window_start", "socket")
        .agg(pl.col("util_pct").mean(), (pl.col("util_pct") >= SATURATED_CORE_PCT).mean().alias("saturated_core_share"))
        .sort("window_start", "socket")
        .collect(engine=ENGINE)
    )


def tenant_windows(tenant: Frame, window_s: float) -> pl.DataFrame:
    """Per (window, group) CPU use of each co-tenant and the records' tenant fields (`measurement_windows`)."""
    return measurement_windows(tenant, window_s, "tenant")


def _restrict(frame: Frame | None, windows: pl.Series | None, window_s: float) -> pl.LazyFrame | None:
    """Telemetry rows whose window is one of ``windows`` (lazy; None passes through)."""
    if frame is None:
        return None
    lf = _lazy(frame)
    if windows is None:
        return lf
    return lf.filter(window_expr(window_s).is_in(windows.implode()))


TIME_CHUNK_S = 12 * 3600.0
"""`grid_from_victim` aggregates telemetry about this many seconds of the victim's windows at a time: the window
aggregations group by window, so chunks of whole windows give the same rows, with memory bounded by the chunk
(a week of 34 accelerators at 1 Hz is 20 M rows; an aggregation the streaming engine cannot stream would hold
them all) and each chunk's time range pushed down to the Parquet row groups."""


def _by_time(
    frame: Frame, keep: pl.Series | None, window_s: float, fn: Callable[[pl.LazyFrame], pl.DataFrame]
) -> pl.DataFrame:
    """``fn`` (an aggregation by window) of the rows of ``frame`` in the windows ``keep`` (None: all rows at once),
    `TIME_CHUNK_S` of windows at a time, the results concatenated in time order."""
    if keep is None or keep.len() < 2:
        return fn(_restrict(frame, keep, window_s))  # type: ignore[arg-type]
    starts = keep.unique().sort()
    ns = starts.cast(pl.Int64)
    chunk = (ns - ns.min()) // round(max(TIME_CHUNK_S, window_s) * 1e9)
    lf = _lazy(frame)
    w_ns = round(window_s * 1e9)
    parts = []
    for ids in pl.DataFrame({"w": starts, "c": chunk}).partition_by("c", maintain_order=True):
        wins = ids["w"]
        lo, hi = wins.min(), wins.cast(pl.Int64).max() + w_ns  # type: ignore[operator]
        hi_t = pl.lit(hi).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
        part = lf.filter((pl.col("time") >= pl.lit(lo)) & (pl.col("time").cast(TIME_DTYPE) < hi_t))
        parts.append(fn(part.filter(window_expr(window_s).is_in(wins.implode()))))
    parts = [p for p in parts if p.height] or parts[:1]
    return pl.concat(parts, how="diagonal_relaxed")


def group_windows_direct(accel: Frame, window_s: float) -> pl.DataFrame:
    """`group_windows` straight from samples (one pass, no per-device frame): per (window, group) the mean
    per-sample sum of power / power limit / PCIe over the group's devices (mean x devices reporting), the mean
    of the rest. Equals `group_windows(device_windows(...))` when every device reports every sample."""
    lf = _lazy(accel)
    names = set(lf.collect_schema().names())

    def col(name: str) -> pl.Expr:
        return pl.col(name).cast(pl.Float64) if name in names else pl.lit(None, dtype=pl.Float64)

    node = pl.col("node") if "node" in names else pl.lit("")
    group = pl.col("group").fill_null("") if "group" in names else pl.lit("")
    n_dev = pl.col("device").n_unique()
    return (
        lf.select(
            window_expr(window_s).alias("window_start"),
            node.alias("node"),
            group.alias("group"),
            "device",
            col("power_w").alias("power_w"),
            col("power_limit_w").alias("power_limit_w"),
            col("util_pct").alias("util_pct"),
            *[f.expr(col).cast(pl.Float64).alias(f.name) for f in FIELDS],
        )
        .group_by("window_start", "node", "group")
        .agg(
            # mean over samples x devices reporting = the mean per-sample sum
            *[
                (pl.col(c).mean() * pl.col("device").filter(pl.col(c).is_not_null()).n_unique()).alias(c)
                for c in _GROUP_SUMS
            ],
            *_window_means(),
            n_dev.cast(pl.Int64).alias("n_devices"),
        )
        .sort("window_start", "group")
        .collect(engine=ENGINE)
    )


class WindowCache(Protocol):
    """Where `grid_from_victim` keeps the telemetry window frames it computed, to give them back when asked again
    for the same ones: ``name`` is the measurement (``accel`` with a suffix: ``accel.groups`` or ``accel.devices``),
    ``keep`` the victim's windows (None: every window). Exactness is the implementation's: a frame may come back
    only while the telemetry it was computed from is unchanged (`analysis.analyze` keys it by the store files
    read; telemetry is not write-once, a late batch adds a file)."""

    def get(self, name: str, window_s: float, keep: pl.Series | None) -> pl.DataFrame | None: ...

    def put(self, name: str, window_s: float, keep: pl.Series | None, frame: pl.DataFrame) -> None: ...


def grid_from_victim(
    victim: pl.DataFrame,
    window_s: float,
    *,
    accel: Frame | None = None,
    host: Frame | None = None,
    host_core: Frame | None = None,
    tenant: Frame | None = None,
    disk: Frame | None = None,
    net: Frame | None = None,
    rdma: Frame | None = None,
    per_device: bool = False,
    victim_windows_only: bool = True,
    notes: Sequence[str] = (),
    cache: WindowCache | None = None,
) -> Grid:
    """The telemetry half of `align`: a victim window table (layout and contract in the module docstring: from
    `victim_windows`, or from another source such as live serving metrics on the same ``window_s`` grid) put
    next to the telemetry frames, each aggregated to windows (`measurement_windows` and friends; only the
    victim's windows when ``victim_windows_only``). ``notes`` are carried into `Grid.notes`. ``cache``: each
    measurement's window frame is taken from it where it has one, else computed and given to it."""
    out_notes = list(notes)
    keep = victim["window_start"].unique() if victim_windows_only and victim.height else None
    empty = _empty()

    def cached(name: str, frame: Frame, fn: Callable[[pl.LazyFrame], pl.DataFrame]) -> pl.DataFrame:
        got = cache.get(name, window_s, keep) if cache is not None else None
        if got is None:
            got = _by_time(frame, keep, window_s, fn)
            if cache is not None:
                cache.put(name, window_s, keep, got)
        return got

    if accel is None:
        devices, groups = empty, empty
    elif per_device:
        devices = cached("accel.devices", accel, lambda lf: device_windows(lf, window_s))
        groups = group_windows(devices)
    else:
        devices, groups = empty, cached("accel.groups", accel, lambda lf: group_windows_direct(lf, window_s))
    if accel is None or groups.height == 0:
        out_notes.append("no accelerator telemetry in the analysed span")

    def windows(frame: Frame | None, measurement: str) -> pl.DataFrame:
        if frame is None:
            return empty
        return cached(measurement, frame, lambda lf: measurement_windows(lf, window_s, measurement))

    sw = cached("host_core", host_core, lambda lf: socket_windows(lf, window_s)) if host_core is not None else empty
    return Grid(
        window_s=window_s,
        victim=victim,
        devices=devices,
        groups=groups,
        host=windows(host, "host"),
        sockets=sw,
        tenants=windows(tenant, "tenant"),
        notes=tuple(out_notes),
        disks=windows(disk, "host_disk"),
        nets=windows(net, "host_net"),
        rdma=windows(rdma, "rdma"),
    )


def align(
    requests: pl.DataFrame,
    tokens: Frame,
    runs: pl.DataFrame,
    *,
    accel: Frame | None = None,
    host: Frame | None = None,
    host_core: Frame | None = None,
    tenant: Frame | None = None,
    disk: Frame | None = None,
    net: Frame | None = None,
    rdma: Frame | None = None,
    window_s: float | None = None,
    min_itl_samples: int = MIN_ITL_SAMPLES,
    per_device: bool = False,
    victim_windows_only: bool = True,
    aggregated: TokenAggregates | None = None,
    cache: WindowCache | None = None,
) -> Grid:
    """Put the victim's runs and the telemetry on one grid (``window_s`` None: `choose_window_s`):
    `victim_windows`, then `grid_from_victim`.

    Telemetry frames may be lazy (`ParquetStore.scan`); they are filtered and aggregated to windows before
    collecting. ``victim_windows_only``: aggregate telemetry only over the windows the victim's runs cover (what
    attribution uses; a day with a few runs reads everything but aggregates little). ``per_device``: also fill
    `Grid.devices` (else empty; groups are computed from the samples directly). ``aggregated``: the
    `TokenAggregates` of ``tokens`` (the window is chosen from its ITL count and, where it is its window, its
    windows are used: the tokens are not read). ``cache``: `grid_from_victim`'s telemetry window cache.
    """
    notes: list[str] = []
    if window_s is None:
        secs = run_seconds(runs)
        if aggregated is not None:
            window_s = window_for_itl_count(aggregated.itl_n, secs, min_itl_samples)
        else:
            window_s = choose_window_s(tokens, secs, min_itl_samples)
        notes.append(
            f"window {window_s:g} s: the smallest of {list(WINDOW_LADDER_S)} s at which a window holds "
            f">= {min_itl_samples} ITL samples on average (windowed p99 rests on ~1k samples; one length for the "
            f"whole run, windows under {min(MIN_P99_SAMPLES, min_itl_samples)} ITLs get no p99)"
        )
    windows_of_tokens = aggregated.windows if aggregated is not None and aggregated.window_s == window_s else None
    victim = victim_windows(requests, tokens, runs, window_s, min_itl_samples, windows_of_tokens=windows_of_tokens)
    return grid_from_victim(
        victim,
        window_s,
        accel=accel,
        host=host,
        host_core=host_core,
        tenant=tenant,
        disk=disk,
        net=net,
        rdma=rdma,
        per_device=per_device,
        victim_windows_only=victim_windows_only,
        notes=notes,
        cache=cache,
    )
