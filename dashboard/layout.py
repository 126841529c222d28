"""What every page shares: the time-range picker, the "range and freshness" line, empty states, units."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
import streamlit as st

from dashboard import data

RANGES: dict[str, timedelta | None] = {
    "Last 15 minutes": timedelta(minutes=15),
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "All data": None,
}
DEFAULT_RANGE = "Last 24 hours"

UNIT_LABELS = {
    "degC": "°C",
    "%": "%",
    "W": "W",
    "B/s": "B/s",
    "B": "bytes",
    "MHz": "MHz",
    "1": "count",
    "bool": "0/1",
    "V": "V",
    "A": "A",
    "J": "J",
    "lanes": "lanes",
    "1/s": "per s",
    "s": "s",
    "ms": "ms",
    "bitmask": "bitmask",
}


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    label: str

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def settings() -> data.Settings:
    return data.Settings.from_env()


def page_header(title: str, intro: str) -> tuple[data.Settings, str]:
    """Every page's start: its title and what it shows, a stop with the reason when the store cannot be read,
    and the sidebar's range preset. Returns (settings, range preset)."""
    s = settings()
    st.title(title)
    st.write(intro)
    if store_problem(s.store_url):
        st.stop()
    return s, range_choice()


def range_choice(key: str = "range") -> str:
    """The sidebar's range preset (shared by every page through session state)."""
    choice = st.sidebar.selectbox(
        "Time range",
        list(RANGES),
        index=list(RANGES).index(DEFAULT_RANGE),
        key=key,
        help="Ranges end now, or at the newest sample when the data stopped arriving.",
    )
    return choice or DEFAULT_RANGE


def resolve_range(choice: str, store_url: str) -> TimeRange:
    """The concrete [start, end) of a preset, anchored at now or at the newest sample."""
    latest = data.freshest(store_url)
    end = data.window_end(latest)
    span = RANGES.get(choice)
    if span is None:
        ext = [e for m in ("accel", "host", "tenant", "serving", "run_event") if (e := data.extent(store_url, m))]
        start = min(e[0] for e in ext) if ext else end - timedelta(hours=1)
    else:
        start = end - span
        first = [e[0] for m in ("accel", "host", "tenant", "serving") if (e := data.extent(store_url, m))]
        if first and data.utc(min(first)) > start:  # nothing before the first sample: do not draw empty bins
            start = data.utc(min(first))
    return TimeRange(data.utc(start), end, choice)


def query_range(start: str | None, end: str | None) -> TimeRange | None:
    """The range an address names (``?from=ISO&until=ISO``, as the NoisyNeighbour alert's link does), or None
    when it names none or a time that does not parse (the page then uses the sidebar's range)."""
    if not start:
        return None
    try:
        t0 = data.utc(datetime.fromisoformat(start.replace("Z", "+00:00")))
        t1 = data.utc(datetime.fromisoformat(end.replace("Z", "+00:00"))) if end else datetime.now(UTC)
    except ValueError:
        st.warning(f"The address names a time range that does not parse ({start!r} .. {end!r}); using the sidebar's.")
        return None
    if t1 <= t0:
        st.warning(f"The address's range ends before it starts ({start} .. {end}); using the sidebar's.")
        return None
    return TimeRange(t0, t1, "from the address")


def fmt_time(value: datetime | None) -> str:
    return "—" if value is None else data.utc(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_age(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    secs = ((now or datetime.now(UTC)) - data.utc(value)).total_seconds()
    if secs < 90:
        return f"{max(secs, 0):.0f} s ago"
    if secs < 5400:
        return f"{secs / 60:.0f} min ago"
    if secs < 172800:
        return f"{secs / 3600:.1f} h ago"
    return f"{secs / 86400:.1f} days ago"


def range_caption(tr: TimeRange, store_url: str) -> None:
    """The line every page shows: the time range and how fresh the data is."""
    latest = data.freshest(store_url)
    st.caption(
        f"**Time range:** {fmt_time(tr.start)} → {fmt_time(tr.end)} ({tr.label.lower()}) · "
        f"**Data freshness:** newest sample {fmt_time(latest)} ({fmt_age(latest)}) · store `{store_url}`"
    )


def store_problem(store_url: str) -> bool:
    """Show why the store cannot be read; True when the page should stop."""
    problem = data.store_error(store_url)
    if problem:
        st.error(problem + ". Start the dashboard with `--store` pointing at the collector's store.")
        return True
    return False


def no_telemetry(store_url: str, what: str = "telemetry") -> None:
    """The empty state for a store with no samples at all."""
    st.info(
        f"No {what} in the store `{store_url}` yet. Start a collector and an agent "
        "(`neighborscope collector --store …`, `neighborscope agent …`) or run `neighborscope demo`; "
        "this page fills in as samples arrive."
    )


def axis_unit(unit: str) -> str:
    return UNIT_LABELS.get(unit, unit)


def device_order(devs: pl.DataFrame, topo: pl.DataFrame) -> dict[str, str | None]:
    """device -> group, grouped in topology order (hives, then tenants), devices in natural order (gpu2 < gpu10)."""
    order = devs.select("device", "group")
    rank: dict[str, int] = {}
    if topo.height:
        order = order.join(
            topo.select("device", pl.col("group").alias("tgroup")).drop_nulls("device"), on="device", how="left"
        ).with_columns(pl.coalesce("group", "tgroup").alias("group"))
        rank = {g: i for i, g in enumerate(topo["group"].unique(maintain_order=True).to_list())}
    rows = order.select("device", "group").rows()
    rows.sort(key=lambda r: (rank.get(r[1], len(rank)), r[1] or "~", *natural(r[0])))
    return {d: g for d, g in rows}


def natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name or ""))
