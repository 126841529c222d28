"""Data access for the dashboard: one store handle per process, reduced query results cached with a TTL.

Every page reads through the cached functions at the bottom (`st.cache_data`, keyed by store URL, measurement,
range, bin width), which call `Reader`: a thin layer over any `TelemetryStore` that reduces on the server side:

- embedded Parquet: a lazy ``scan()`` with the time range and tags pushed down, then polars
  ``group_by_dynamic`` (heatmap bins) or MinMaxLTTB (`analysis.figures.reduce.reduce_series`) per trace;
- InfluxDB: ``downsample()`` = InfluxQL ``GROUP BY time(...)`` (min and max per interval, interleaved), so
  only a few thousand rows per trace cross the network.

Settings come from the environment, set by ``neighborscope dashboard`` (`dashboard.cli`):
``NEIGHBORSCOPE_STORE``, ``NEIGHBORSCOPE_TOPOLOGY``, ``NEIGHBORSCOPE_REPORTS``, ``NEIGHBORSCOPE_ALERT_STATE``,
``NEIGHBORSCOPE_REFRESH_S``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import streamlit as st

from analysis.analyze import AnalysisResult, analyze
from analysis.figures.reduce import MAX_POINTS_PER_TRACE, interleave_min_max, reduce_series, time_buckets
from dashboard.settings import Settings
from telemetry import topology as topo
from telemetry.errors import ConfigError, StoreError
from telemetry.schema import MEASUREMENTS, TIME
from telemetry.store.base import TagFilter, TelemetryStore
from telemetry.store.factory import open_store

CACHE_TTL_S = 15
HEATMAP_FIELDS = {
    "temp_c": ("Temperature", "°C"),
    "power_w": ("Power", "W"),
    "pcie_bytes_per_s": ("PCIe rx+tx", "B/s"),
    "util_pct": ("Utilisation", "%"),
}


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Reader:
    """Reduced reads from a `TelemetryStore`: a store whose ``scan`` is lazy (embedded Parquet) is scanned with the
    filters pushed down; a remote one (InfluxDB) reduces on its server (``downsample``: ``GROUP BY time``)."""

    def __init__(self, store: TelemetryStore) -> None:
        self.store = store
        self.server_downsample = not store.lazy_scan

    # ---- raw -------------------------------------------------------------------------------

    def lazy(
        self,
        measurement: str,
        start: datetime | None = None,
        end: datetime | None = None,
        tags: TagFilter | None = None,
        fields: Sequence[str] | None = None,
    ) -> pl.LazyFrame:
        if measurement not in self.measurements():
            schema = MEASUREMENTS[measurement].polars_schema() if measurement in MEASUREMENTS else {TIME: pl.Datetime}
            return pl.LazyFrame(schema=schema)
        return self.store.scan(measurement, start, end, tags, fields)

    def measurements(self) -> list[str]:
        return self.store.measurements()

    def extent(self, measurement: str) -> tuple[datetime, datetime] | None:
        """(first, last) sample time of a measurement, or None when it holds nothing."""
        return self.store.time_bounds(measurement)

    # ---- reduced ---------------------------------------------------------------------------

    def buckets(
        self,
        measurement: str,
        fields: Sequence[str],
        every_s: int,
        start: datetime,
        end: datetime,
        tags: TagFilter | None = None,
        by: Sequence[str] = (),
        agg: str = "mean",
    ) -> pl.DataFrame:
        """``agg`` of each field per ``every_s`` bin and ``by`` tags (time = bin start), reduced by the store."""
        if measurement not in self.measurements():
            return pl.DataFrame(schema={TIME: pl.Datetime("ns", "UTC"), **dict.fromkeys(by, pl.String)})
        frame = self.store.downsample(measurement, every_s, start, end, tags, list(fields), agg, list(by))
        return frame.sort([*by, TIME])

    def series(
        self,
        measurement: str,
        field: str,
        start: datetime,
        end: datetime,
        tags: TagFilter | None = None,
        by: Sequence[str] = (),
        n_out: int = MAX_POINTS_PER_TRACE,
        sample_interval_s: float = 1.0,
    ) -> pl.DataFrame:
        """``field`` over time, one trace per ``by`` value, at most ``n_out`` points per trace (min/max kept)."""
        if self.server_downsample:
            expected = (end - start).total_seconds() / sample_interval_s
            if expected > n_out and measurement in self.measurements():
                every_s = max(1, math.ceil(2 * (end - start).total_seconds() / n_out))
                low = self.store.downsample(measurement, every_s, start, end, tags, [field], "min", list(by))
                high = self.store.downsample(measurement, every_s, start, end, tags, [field], "max", list(by))
                return interleave_min_max(low, high, field, by)
        frame = self.lazy(measurement, start, end, tags, [field]).select([TIME, *by, field]).collect()
        return reduce_series(frame, field, by, n_out)


# ---- topology, reports (files beside the store) ------------------------------------------------------


def find_topology(settings: Settings) -> Path | None:
    """The explicit topology file: ``--topology``, else ``topology.json`` in or beside the store directory."""
    return Path(settings.topology_path) if settings.topology_path else topo.store_file(settings.store_url)


REPORT_DIRS = ("reports", "report")  # `neighborscope serve` keeps nightly reports; the demo writes one to report/


def find_reports_dir(settings: Settings) -> Path | None:
    """``--reports``, else the first of ``reports/`` or ``report/`` in or beside the store directory that holds an
    HTML report (else the first that exists)."""
    if settings.reports_dir:
        candidates = [Path(settings.reports_dir)]
    else:
        candidates = [p for name in REPORT_DIRS for p in settings.beside_store(name)]
    dirs = [p for p in candidates if p.is_dir()]
    return next((p for p in dirs if next(p.glob("**/*.html"), None)), dirs[0] if dirs else None)


# ---- cached entry points (what pages call) --------------------------------------------------------


@st.cache_resource(show_spinner=False)
def reader(store_url: str) -> Reader:
    """One store handle per dashboard process (shared by every session). The dashboard only reads: a store that
    does not exist is a `StoreError` (shown by `store_error`), never an empty one created at a mistyped path. A
    failed open is not cached, so the page reads the store once it appears."""
    return Reader(open_store(store_url, create=False))


def store_error(store_url: str) -> str | None:
    """A one-line reason the store cannot be read, or None when it can."""
    try:
        reader(store_url).measurements()
    except (StoreError, OSError) as exc:
        return f"cannot read the store {store_url}: {exc}"
    return None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def extent(store_url: str, measurement: str) -> tuple[datetime, datetime] | None:
    return reader(store_url).extent(measurement)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def freshest(store_url: str, measurements: tuple[str, ...] = ("accel", "host", "tenant", "serving")) -> datetime | None:
    """The newest sample time over ``measurements`` (None for an empty store)."""
    ends = [e[1] for m in measurements if (e := extent(store_url, m))]
    return max(ends) if ends else None


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def devices(store_url: str, start: datetime, end: datetime, node: str | None = None) -> pl.DataFrame:
    """node, device, group, vendor, model of every accelerator (of ``node``, or of every node) seen in [start, end)."""
    cols = ["node", "device", "group", "vendor", "model"]
    r = reader(store_url)
    if r.server_downsample:
        frame = r.store.series("accel")
        frame = (
            frame.select([c for c in cols if c in frame.columns])
            if frame.height
            else pl.DataFrame(schema=dict.fromkeys(cols, pl.String))
        )
        frame = frame.filter(pl.col("node") == node) if node and "node" in frame.columns else frame
    else:
        frame = r.lazy("accel", start, end, {"node": node} if node else None).select(cols).unique().collect()
    return frame.sort(["node", "group", "device"], nulls_last=True)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def accel_heatmap(store_url: str, node: str, start: datetime, end: datetime, every_s: int) -> pl.DataFrame:
    """Per device (with its group) and bin: mean temp_c, power_w, util_pct, pcie_bytes_per_s (rx+tx) and the
    throttled share."""
    r = reader(store_url)
    fields = ["temp_c", "power_w", "util_pct", "pcie_rx_bytes_per_s", "pcie_tx_bytes_per_s"]
    tags = {"node": node}
    if r.server_downsample:
        frame = r.buckets("accel", fields, every_s, start, end, tags, by=["device", "group"])
        # InfluxQL aggregates no booleans but first / last: the flag at the end of each bin (a sample of it)
        throttle = r.buckets(
            "accel",
            ["throttle_thermal", "throttle_power"],
            every_s,
            start,
            end,
            tags,
            by=["device", "group"],
            agg="last",
        )
        frame = frame.join(throttle, on=[TIME, "device", "group"], how="left", nulls_equal=True)
    else:
        lf = r.lazy("accel", start, end, tags).select(
            TIME,
            "device",
            "group",
            *fields,
            (pl.col("throttle_thermal").fill_null(False) | pl.col("throttle_power").fill_null(False))
            .cast(pl.Float64)
            .alias("throttled"),
        )
        frame = time_buckets(lf, [*fields, "throttled"], every_s, ["device", "group"])
    if "throttled" not in frame.columns:
        cols = [c for c in ("throttle_thermal", "throttle_power") if c in frame.columns]
        frame = frame.with_columns(
            pl.max_horizontal([pl.col(c).cast(pl.Float64) for c in cols]).alias("throttled")
            if cols
            else pl.lit(None, pl.Float64).alias("throttled")
        )
    rx, tx = pl.col("pcie_rx_bytes_per_s"), pl.col("pcie_tx_bytes_per_s")
    return frame.with_columns(  # absent stays absent: rx+tx only where the device reports either
        pl.when(rx.is_null() & tx.is_null())
        .then(None)
        .otherwise(rx.fill_null(0) + tx.fill_null(0))
        .alias("pcie_bytes_per_s")
    )


STATUS_SCHEMA = {
    "node": pl.String,
    "device": pl.String,
    "last_seen": pl.Datetime("ns", "UTC"),
    "temp_c": pl.Float64,
    "power_w": pl.Float64,
    "util_pct": pl.Float64,
    "throttled_share": pl.Float64,
}


def status_frame(r: Reader, node: str | None, start: datetime, end: datetime) -> pl.DataFrame:
    """Per device of ``node`` (None: of every node) over [start, end): last_seen, temp_c / power_w / util_pct at
    the device's last sample, and the throttled share of its samples (0..1), from every row: ``GROUP BY time`` on
    the server (InfluxDB), or one pass of a lazy scan (embedded; `fleet_frame` reads far fewer rows)."""
    tags = {"node": node} if node else None
    cols = ["temp_c", "power_w", "util_pct"]
    key = ["node", "device"]
    if "accel" not in r.measurements():
        return pl.DataFrame(schema=STATUS_SCHEMA)
    if r.server_downsample:
        # the newest value per bin and device, and the throttled share per device from the bins' last flags
        every = max(60, int((end - start).total_seconds() // 200))
        frame = r.buckets("accel", cols, every, start, end, tags, by=key, agg="last")
        thr = r.buckets(
            "accel", ["throttle_thermal", "throttle_power"], every, start, end, tags, by=key, agg="last"
        )  # booleans: InfluxQL has only first / last for them
        if frame.height == 0:
            return pl.DataFrame(schema=STATUS_SCHEMA)
        last = frame.group_by(key).agg(pl.col(TIME).max().alias("last_seen"), *[pl.col(c).last() for c in cols])
        share = thr.group_by(key).agg(
            pl.max_horizontal(
                pl.col("throttle_thermal").cast(pl.Float64).mean(), pl.col("throttle_power").cast(pl.Float64).mean()
            ).alias("throttled_share")
        )
        out = last.join(share, on=key, how="left")
    else:
        # the whole range in one cheap pass (newest time, throttled share per device), then the values at each
        # device's last sample from the newest minutes only (an O(n) pick per device there, no sort)
        seen = (
            r.lazy("accel", start, end, tags, ["throttle_thermal", "throttle_power"])
            .group_by(key)
            .agg(
                pl.col(TIME).max().alias("last_seen"),
                (pl.col("throttle_thermal").fill_null(False) | pl.col("throttle_power").fill_null(False))
                .mean()
                .alias("throttled_share"),
            )
            .collect()
        )
        if seen.height == 0:
            return pl.DataFrame(schema=STATUS_SCHEMA)
        recent = max(utc(seen["last_seen"].max()) - timedelta(minutes=2), start)  # type: ignore[arg-type]
        newest = pl.col(TIME).arg_max()
        latest = (
            r.lazy("accel", recent, end, tags, cols)
            .group_by(key)
            .agg(*[pl.col(c).get(newest).alias(c) for c in cols])
            .collect()
        )
        out = seen.join(latest, on=key, how="left")
    if out.height == 0:
        return pl.DataFrame(schema=STATUS_SCHEMA)
    return out.with_columns(pl.col(c).cast(t) for c, t in STATUS_SCHEMA.items()).select(list(STATUS_SCHEMA)).sort(key)


FLEET_SAMPLE_S = 10  # the inventory pass reads the first 10 s of every minute (at least one sample at <= 0.1 Hz)
FLEET_REFINE_MINUTES = 30


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def fleet_status(store_url: str, start: datetime, end: datetime) -> pl.DataFrame:
    """`fleet_frame`, cached: every device of every node, cheap enough for a fleet (500 nodes x 34 devices)."""
    return fleet_frame(reader(store_url), start, end)


def fleet_frame(r: Reader, start: datetime, end: datetime) -> pl.DataFrame:
    """Per node and device over [start, end): last_seen, the values at the last sample, throttled share.

    A remote store reduces on its server (`status_frame`). On the embedded store three lazy scans, each reading
    few rows, so 60 M rows an hour (500 nodes x 34 devices at 1 Hz) stay interactive:

    - which devices reported, and when last, from the first `FLEET_SAMPLE_S` seconds of every minute (a time
      filter, pushed into the Parquet reader: tag strings are decoded for a sixth of the rows);
    - throttling from the throttled rows only (a flag filter, pushed down likewise);
    - the exact last sample and its values from the newest two minutes; for a device silent before them, its
      exact last sample from its last sampled minute.

    ``throttled_share`` is the share of the device's minutes with any throttled sample (the node heatmap's share
    is of samples).
    """
    if r.server_downsample:
        return status_frame(r, None, start, end)
    if "accel" not in r.measurements():
        return pl.DataFrame(schema=STATUS_SCHEMA)
    key = ["node", "device"]
    cols = ["temp_c", "power_w", "util_pct"]
    minute = pl.col(TIME).dt.truncate("1m")
    seen = (
        r.lazy("accel", start, end, None, [])
        .filter(pl.col(TIME).dt.epoch("s") % 60 < FLEET_SAMPLE_S)
        .group_by(key)
        .agg(pl.col(TIME).max().alias("last_seen"), minute.n_unique().alias("minutes"))
        .collect()
    )
    if seen.height == 0:
        return pl.DataFrame(schema=STATUS_SCHEMA)
    throttled = (
        r.lazy("accel", start, end, None, ["throttle_thermal", "throttle_power"])
        .filter(pl.col("throttle_thermal").fill_null(False) | pl.col("throttle_power").fill_null(False))
        .group_by(key)
        .agg(minute.n_unique().alias("throttled_minutes"))
        .collect()
    )
    newest = utc(seen["last_seen"].max())  # type: ignore[arg-type]
    latest = (
        r.lazy("accel", max(newest - timedelta(minutes=2), start), end, None, cols)
        .group_by(key)
        .agg(pl.col(TIME).max().alias("last"), *[pl.col(c).get(pl.col(TIME).arg_max()).alias(c) for c in cols])
        .collect()
    )
    # devices silent before the newest minutes: their exact last sample, read from their last sampled minute
    # only (a time filter again; at most `FLEET_REFINE_MINUTES` distinct minutes, else they stay to the minute)
    quiet = seen.join(latest.select(key), on=key, how="anti")
    minutes = quiet.select(pl.col("last_seen").dt.truncate("1m").unique())["last_seen"]
    if 0 < minutes.len() <= FLEET_REFINE_MINUTES:
        exact = (
            r.lazy("accel", minutes.min(), minutes.max() + timedelta(minutes=1), None, [])  # type: ignore[operator]
            .filter(pl.col(TIME).dt.truncate("1m").is_in(minutes.implode()))
            .group_by(key)
            .agg(pl.col(TIME).max().alias("exact"))
            .collect()
        )
        seen = (
            seen.join(exact, on=key, how="left")
            .with_columns(pl.max_horizontal("last_seen", "exact").alias("last_seen"))
            .drop("exact")
        )
    out = (
        seen.join(latest, on=key, how="full", coalesce=True)
        .join(throttled, on=key, how="left")
        .with_columns(
            pl.max_horizontal("last_seen", "last").alias("last_seen"),
            (pl.col("throttled_minutes").fill_null(0) / pl.max_horizontal(pl.col("minutes").fill_null(1), 1))
            .clip(0, 1)
            .alias("throttled_share"),
        )
    )
    return out.with_columns(pl.col(c).cast(t) for c, t in STATUS_SCHEMA.items()).select(list(STATUS_SCHEMA)).sort(key)


#: measurements that make a node visible without accelerators (a CPU-only or serving-only node), in the order the
#: overview names them
NODE_SOURCES = ("host", "serving", "tenant", "host_disk", "host_net")
NODE_SCHEMA = {"node": pl.String, "last_seen": pl.Datetime("ns", "UTC"), "telemetry": pl.String}


def node_frame(r: Reader, start: datetime, end: datetime) -> pl.DataFrame:
    """Per node that reported anything but accelerators in [start, end): its newest sample and what it sent
    (``telemetry``: "host, serving", ...). The overview lists these nodes too, so a host-only or serving-only
    node is never invisible. Embedded store: one lazy pass per measurement reading the ``node`` column of the
    first `FLEET_SAMPLE_S` seconds of each minute (as `fleet_frame`), refined to the exact last sample over the
    newest two minutes; a remote store: ``last`` per node and bin on its server."""
    parts = []
    have = set(r.measurements())
    for m in NODE_SOURCES:
        if m not in have:
            continue
        if r.server_downsample:
            every = max(60, int((end - start).total_seconds() // 200))
            field = {"host": "cpu_util_pct", "serving": "requests_running", "tenant": "cpu_pct"}.get(m)
            field = field or next(f.name for f in MEASUREMENTS[m].fields if f.kind == "float")
            b = r.buckets(m, [field], every, start, end, None, by=("node",), agg="last")
            seen = b.filter(pl.col(field).is_not_null()).group_by("node").agg(pl.col(TIME).max().alias("last_seen"))
        else:
            sampled = (
                r.lazy(m, start, end, None, [])
                .filter(pl.col(TIME).dt.epoch("s") % 60 < FLEET_SAMPLE_S)
                .group_by("node")
                .agg(pl.col(TIME).max().alias("last_seen"))
                .collect()
            )
            if sampled.height == 0:
                continue
            newest = utc(sampled["last_seen"].max())  # type: ignore[arg-type]
            exact = (
                r.lazy(m, max(newest - timedelta(minutes=2), start), end, None, [])
                .group_by("node")
                .agg(pl.col(TIME).max().alias("exact"))
                .collect()
            )
            seen = (
                sampled.join(exact, on="node", how="full", coalesce=True)
                .with_columns(pl.max_horizontal("last_seen", "exact").alias("last_seen"))
                .select("node", "last_seen")
            )
        if seen.height:
            parts.append(seen.with_columns(pl.col("last_seen").cast(NODE_SCHEMA["last_seen"]), pl.lit(m).alias("m")))
    if not parts:
        return pl.DataFrame(schema=NODE_SCHEMA)
    return (
        pl.concat(parts)
        .group_by("node")
        .agg(pl.col("last_seen").max(), pl.col("m").str.join(", ").alias("telemetry"))
        .cast(NODE_SCHEMA)  # type: ignore[arg-type]
        .sort("node")
    )


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def node_status(store_url: str, start: datetime, end: datetime) -> pl.DataFrame:
    """`node_frame`, cached."""
    return node_frame(reader(store_url), start, end)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def fields_present(store_url: str, node: str, start: datetime, end: datetime, recent_s: int = 600) -> frozenset[str]:
    """``measurement.field`` names ``node`` reported (non-null) in the newest ``recent_s`` of [start, end): which
    optional panels (pressure, disk, network, serving) have anything to draw, without reading the whole range."""
    r = reader(store_url)
    found: set[str] = set()
    for m in ("host", "tenant", "host_disk", "host_net", "rdma", "serving"):
        if m not in r.measurements():
            continue
        bounds = r.extent(m)
        if bounds is None:
            continue
        stop = min(utc(bounds[1]) + timedelta(seconds=1), end)
        if stop <= start:
            continue
        frame = r.lazy(m, max(start, stop - timedelta(seconds=recent_s)), stop, {"node": node}).collect()
        found |= {
            f"{m}.{c}"
            for c in frame.columns
            if c in MEASUREMENTS[m].field_index and frame[c].null_count() < frame.height
        }
    return frozenset(found)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def groups_with(store_url: str, measurement: str, start: datetime, end: datetime, node: str | None = None) -> list[str]:
    """The ``group`` tags of ``measurement`` (e.g. ``serving``: the groups whose engine metrics are scraped)."""
    r = reader(store_url)
    if measurement not in r.measurements():
        return []
    tags = {"node": node} if node else None
    frame = r.lazy(measurement, start, end, tags, []).select("group").unique().collect()
    return sorted(g for g in frame["group"].to_list() if g)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def series(
    store_url: str,
    measurement: str,
    field: str,
    start: datetime,
    end: datetime,
    tags: tuple[tuple[str, tuple[str, ...]], ...] = (),
    by: tuple[str, ...] = (),
    n_out: int = MAX_POINTS_PER_TRACE,
) -> pl.DataFrame:
    """``field`` of ``measurement`` over time, per ``by`` trace, at most ``n_out`` points each."""
    return reader(store_url).series(measurement, field, start, end, dict(tags) or None, by, n_out)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def run_events(store_url: str, start: datetime | None = None, end: datetime | None = None) -> pl.DataFrame:
    """run_event rows in range (start / end / switch_on / switch_off / summary)."""
    return reader(store_url).lazy("run_event", start, end).collect().sort(TIME)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def runs(store_url: str) -> pl.DataFrame:
    """One row per stored benchmark run: metadata plus its summary metrics (canonical names)."""
    frame = run_events(store_url)
    rows = []
    for text in frame.filter(pl.col("event") == "summary")["metadata_json"].to_list() if frame.height else []:
        if not text:
            continue
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(doc, dict) or "run_id" not in doc:
            continue
        meta = {
            k: doc.get(k)
            for k in (
                "run_id",
                "tool",
                "node",
                "group",
                "phase",
                "start",
                "end",
                "model",
                "concurrency",
                "isl",
                "osl",
                "num_prompts",
                "timing",
                "source",
            )
        }
        summary = {k: v for k, v in (doc.get("summary") or {}).items() if isinstance(v, int | float)}
        rows.append({**meta, **summary})
    if not rows:
        return pl.DataFrame(schema={"run_id": pl.String, "start": pl.Datetime("ns", "UTC")})
    out = pl.DataFrame(rows, infer_schema_length=None)
    for c in ("start", "end"):
        if c in out.columns:
            out = out.with_columns(pl.col(c).cast(pl.String).str.to_datetime(time_zone="UTC", strict=False))
    return out.unique("run_id", keep="last").sort("start", nulls_last=True)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def tokens(store_url: str, run_id: str) -> pl.DataFrame | None:
    """The per-token artifact of a run (time, itl_ms, tokens), or None when the run has none."""
    return reader(store_url).store.read_artifact(f"bench/{run_id}/tokens")


@st.cache_data(ttl=60, show_spinner=False)
def topology(settings: Settings, nodes: tuple[str, ...] = ()) -> tuple[pl.DataFrame, str | None]:
    """The topology (`telemetry.topology.lookup`: the explicit file, else the store's ``topology/<node>``
    artifact of the first of ``nodes`` that has one), empty when there is none, and where it was read from."""
    try:
        found = topo.lookup(find_topology(settings), reader(settings.store_url).store, nodes)
    except (ConfigError, StoreError, OSError) as exc:
        st.warning(f"could not read the topology: {exc}")
        return topo.empty_frame(), None
    return found if found is not None else (topo.empty_frame(), None)


def window_end(latest: datetime | None, now: datetime | None = None, grid_s: int = 10) -> datetime:
    """The end of the shown range: now, or the newest sample when the data stopped more than a minute ago.

    Rounded up to ``grid_s`` so that reruns within the same few seconds hit the cache.
    """
    now = utc(now or datetime.now(UTC))
    end = now if latest is None or now - utc(latest) < timedelta(minutes=1) else utc(latest) + timedelta(seconds=1)
    epoch = end.timestamp()
    return datetime.fromtimestamp((epoch // grid_s + 1) * grid_s, tz=UTC)


# ---- noisy neighbours: the analysis (cached) ---------------------------------------------------------------


@dataclass
class AnalysisJob:
    """`analysis.analyze.analyze` of a victim's runs, running in a background thread: the page shows the chosen
    runs and a progress line at once, and the result when ``future`` is done (then (result, None), or (None, why
    it could not run))."""

    future: Future
    started: float

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


_ANALYSES = ThreadPoolExecutor(max_workers=1, thread_name_prefix="neighborscope-analysis")


def run_analysis(
    store: TelemetryStore, topology_frame: pl.DataFrame, victim: str, run_ids: tuple[str, ...]
) -> tuple[AnalysisResult | None, str | None]:
    """`analysis.analyze.analyze` of ``run_ids`` (the topology: the explicit file's frame when not empty, else
    `analyze`'s own lookup of the store's artifact)."""
    try:
        return analyze(
            store, victim=victim, run_ids=list(run_ids), topology=topology_frame if topology_frame.height else None
        ), None
    except (StoreError, ValueError) as exc:  # ConfigError is a ValueError: no runs, unknown group
        return None, f"the analysis could not run: {exc}"


@st.cache_resource(ttl=300, show_spinner=False, max_entries=32)
def analysis_job(settings: Settings, victim: str, run_ids: tuple[str, ...]) -> AnalysisJob:
    """The analysis of ``victim``'s ``run_ids``, started once per 5 minutes and shared by every session (one
    at a time: a second victim waits for the first rather than halving both)."""
    frame, _ = topology(settings)  # read here, in the script's thread (it may warn on the page)
    store = reader(settings.store_url).store
    return AnalysisJob(_ANALYSES.submit(run_analysis, store, frame, victim, run_ids), time.monotonic())


def run_live_analysis(
    store: TelemetryStore,
    topology_frame: pl.DataFrame,
    victim: str,
    node: str | None,
    start: datetime,
    end: datetime,
) -> tuple[AnalysisResult | None, str | None]:
    """`analysis.analyze.analyze` of ``victim``'s live traffic in [start, end) (its serving rows: `analysis.live`)."""
    try:
        return analyze(
            store,
            victim=victim,
            start=start,
            end=end,
            node=node,
            source="live",
            topology=topology_frame if topology_frame.height else None,
        ), None
    except (StoreError, ValueError) as exc:  # ConfigError is a ValueError: no serving rows for the group
        return None, f"the analysis could not run: {exc}"


@st.cache_resource(ttl=300, show_spinner=False, max_entries=32)
def live_analysis_job(settings: Settings, victim: str, node: str | None, start: datetime, end: datetime) -> AnalysisJob:
    """The live analysis of ``victim`` over [start, end), started once per 5 minutes and shared by every session
    (the range's end is rounded by `window_end`, so reruns within seconds share one job)."""
    frame, _ = topology(settings)
    store = reader(settings.store_url).store
    future = _ANALYSES.submit(run_live_analysis, store, frame, victim, node, start, end)
    return AnalysisJob(future, time.monotonic())
