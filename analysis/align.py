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

**victim** (`victim_windows`), one row per (run_id, window_start) of the victim's benchmark runs:

==========================  ==============================================================================
run_id, phase, group        the run's tags
window_start                Datetime(ns, UTC)
covered_s                   seconds of the window inside the run (windows under half covered are dropped)
tokens                      output tokens emitted in the window (per-token emission times)
output_tok_s                tokens / covered_s
itl_n                       ITL samples in the window
itl_ms_p50, itl_ms_p99      windowed ITL quantiles (p99 null when itl_n < MIN_P99_SAMPLES)
itl_ms_mean                 windowed mean ITL (estimable in every window with an ITL)
requests_started            requests dispatched in the window
ttft_ms_p50                 median TTFT of requests dispatched in the window (null if none)
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

**host** (`host_windows`): window_start, ``cpu_util_pct``, ``procs_running``, ``load1``, ``cpu_count`` (node means; several
nodes: one row per node with a ``node`` column).

**sockets** (`socket_windows`): window_start, socket, ``util_pct`` (mean over the socket's cores),
``saturated_core_share`` (share of core-samples at >= 95 % utilisation: CPU contention, not mere use).

**tenants** (`tenant_windows`): window_start, group, ``cpu_pct``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from analysis.resources import FIELDS, SATURATED_CORE_PCT

TIME_DTYPE = pl.Datetime("ns", "UTC")
WINDOW_LADDER_S: tuple[float, ...] = (1, 2, 5, 10, 15, 30, 60, 120, 300)
MIN_ITL_SAMPLES = 1000
MIN_P99_SAMPLES = 100  # below this a window's p99 is the top order statistic or two: null

Frame = pl.DataFrame | pl.LazyFrame
# telemetry aggregations run on polars' streaming engine: a week of 1 Hz samples never sits in memory at once
ENGINE = "streaming"


def _lazy(frame: Frame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def window_expr(window_s: float, col: str = "time") -> pl.Expr:
    """``col`` floored to the window grid (epoch-aligned), as ``window_start``."""
    w = round(window_s * 1e9)
    return ((pl.col(col).cast(pl.Int64) // w) * w).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")


@dataclass(frozen=True)
class Grid:
    """Everything on one grid: the victim's windows next to devices, groups, host, sockets and tenants."""

    window_s: float
    victim: pl.DataFrame
    devices: pl.DataFrame
    groups: pl.DataFrame
    host: pl.DataFrame
    sockets: pl.DataFrame
    tenants: pl.DataFrame
    notes: tuple[str, ...] = field(default=())

    def wide(self, victim_group: str | None = None) -> pl.DataFrame:
        """One row per victim window: the victim columns, then ``<group>.<field>`` for every group,
        ``host.<field>``, ``socket<k>.<field>`` and ``tenant.<group>.cpu_pct`` (left joins on window_start)."""
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
        if self.tenants.height:
            piv = self.tenants.pivot(on="group", index="window_start", values="cpu_pct", aggregate_function="mean")
            piv = piv.rename({c: f"tenant.{c}.cpu_pct" for c in piv.columns if c != "window_start"})
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
    rate = n / run_seconds if run_seconds > 0 else 0.0
    for w in ladder:
        if rate * w >= min_itl_samples:
            return float(w)
    return float(ladder[-1])


def _normalise_tokens(tokens: Frame) -> pl.LazyFrame:
    lf = _lazy(tokens)
    names = lf.collect_schema().names()
    if "tokens" not in names:
        lf = lf.with_columns(pl.lit(1, dtype=pl.Int64).alias("tokens"))
    return lf


def victim_windows(
    requests: pl.DataFrame,
    tokens: Frame,
    runs: pl.DataFrame,
    window_s: float,
    min_itl_samples: int = MIN_ITL_SAMPLES,
) -> pl.DataFrame:
    """The victim's windows (layout in the module docstring).

    ``requests``: the requests layout (`analysis.ingest.model`) of the runs (run_id, time, ttft_ms, e2e_ms,
    input_tokens, error); ``tokens``: the tokens layout (``tokens`` column optional, 1 per row); ``runs``: one
    row per run with run_id, phase, group, start, end (Datetime UTC).
    """
    w_ns = round(window_s * 1e9)
    run_lf = runs.lazy().select(
        "run_id", "phase", "group", pl.col("start").cast(TIME_DTYPE), pl.col("end").cast(TIME_DTYPE)
    )
    tok = (
        _normalise_tokens(tokens)
        .select("run_id", "time", "itl_ms", "tokens")
        .with_columns(window_expr(window_s).alias("window_start"))
        .group_by("run_id", "window_start")
        .agg(
            pl.col("tokens").sum().alias("tokens"),
            pl.col("itl_ms").is_not_null().sum().alias("itl_n"),
            pl.col("itl_ms").quantile(0.5, "linear").alias("itl_ms_p50"),
            pl.col("itl_ms").quantile(0.99, "linear").alias("itl_ms_p99"),
            pl.col("itl_ms").mean().alias("itl_ms_mean"),
        )
        .with_columns(pl.col("run_id").cast(pl.String))
    )
    ok = requests.lazy().filter(pl.col("error").is_null() & pl.col("ttft_ms").is_not_null())
    started = (
        ok.with_columns(window_expr(window_s).alias("window_start"))
        .group_by("run_id", "window_start")
        .agg(pl.len().cast(pl.Int64).alias("requests_started"), pl.col("ttft_ms").median().alias("ttft_ms_p50"))
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
            "ttft_ms_p50",
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


def host_windows(host: Frame, window_s: float) -> pl.DataFrame:
    """Per (window, node) means of host CPU activity."""
    lf = _lazy(host)
    names = set(lf.collect_schema().names())
    cols = [c for c in ("cpu_util_pct", "procs_running", "load1", "cpu_count") if c in names]
    return (
        lf.select(window_expr(window_s).alias("window_start"), "node", *[pl.col(c).cast(pl.Float64) for c in cols])
        .group_by("window_start", "node")
        .mean()
        .sort("window_start")
        .collect(engine=ENGINE)
    )


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
    """Per (window, group) CPU use of each co-tenant."""
    lf = _lazy(tenant)
    return (
        lf.select(window_expr(window_s).alias("window_start"), "group", pl.col("cpu_pct").cast(pl.Float64))
        .group_by("window_start", "group")
        .mean()
        .sort("window_start", "group")
        .collect(engine=ENGINE)
    )


def _restrict(frame: Frame | None, windows: pl.Series | None, window_s: float) -> pl.LazyFrame | None:
    """Telemetry rows whose window is one of ``windows`` (lazy; None passes through)."""
    if frame is None:
        return None
    lf = _lazy(frame)
    if windows is None:
        return lf
    return lf.filter(window_expr(window_s).is_in(windows.implode()))


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


def align(
    requests: pl.DataFrame,
    tokens: Frame,
    runs: pl.DataFrame,
    *,
    accel: Frame | None = None,
    host: Frame | None = None,
    host_core: Frame | None = None,
    tenant: Frame | None = None,
    window_s: float | None = None,
    min_itl_samples: int = MIN_ITL_SAMPLES,
    per_device: bool = False,
    victim_windows_only: bool = True,
) -> Grid:
    """Put the victim's runs and the telemetry on one grid (``window_s`` None: `choose_window_s`).

    Telemetry frames may be lazy (`ParquetStore.scan`); they are filtered and aggregated to windows before
    collecting. ``victim_windows_only``: aggregate telemetry only over the windows the victim's runs cover (what
    attribution uses; a day with a few runs reads everything but aggregates little). ``per_device``: also fill
    `Grid.devices` (else empty; groups are computed from the samples directly).
    """
    notes: list[str] = []
    if window_s is None:
        secs = float((runs["end"].cast(pl.Int64) - runs["start"].cast(pl.Int64)).sum() / 1e9) if runs.height else 0.0
        window_s = choose_window_s(tokens, secs, min_itl_samples)
        notes.append(
            f"window {window_s:g} s: the smallest of {list(WINDOW_LADDER_S)} s at which a window holds "
            f">= {min_itl_samples} ITL samples on average (windowed p99 rests on ~1k samples; one length for the "
            f"whole run, windows under {min(MIN_P99_SAMPLES, min_itl_samples)} ITLs get no p99)"
        )
    victim = victim_windows(requests, tokens, runs, window_s, min_itl_samples)
    keep = victim["window_start"].unique() if victim_windows_only and victim.height else None
    empty = pl.DataFrame(schema={"window_start": TIME_DTYPE})
    acc = _restrict(accel, keep, window_s)
    if acc is None:
        devices, groups = empty, empty
    elif per_device:
        devices = device_windows(acc, window_s)
        groups = group_windows(devices)
    else:
        devices, groups = empty, group_windows_direct(acc, window_s)
    if accel is None or groups.height == 0:
        notes.append("no accelerator telemetry in the analysed span")
    hw = host_windows(_restrict(host, keep, window_s), window_s) if host is not None else empty
    sw = socket_windows(_restrict(host_core, keep, window_s), window_s) if host_core is not None else empty
    tw = tenant_windows(_restrict(tenant, keep, window_s), window_s) if tenant is not None else empty
    return Grid(
        window_s=window_s,
        victim=victim,
        devices=devices,
        groups=groups,
        host=hw,
        sockets=sw,
        tenants=tw,
        notes=tuple(notes),
    )
