"""One vocabulary for every vendor: measurements, tags, fields and their units.

A *frame* of a measurement is a polars DataFrame in wide form: one row per (time, tag set), a ``time``
column (``Datetime("ns", "UTC")``), one String column per tag and one column per field. A value the
hardware cannot give is null (absent), never 0. Units are the last part of every field name
(``power_w``, ``temp_c``, ``pcie_rx_bytes_per_s``) and are listed in ``FieldSpec.unit``.

``docs/schema.md`` is the human-readable copy of this module; ``tests/telemetry/test_schema.py`` checks
that the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from telemetry.errors import SchemaError

if TYPE_CHECKING:  # polars and numpy are imported where frames are made: an agent encodes rows without them
    import polars as pl

Kind = Literal["float", "int", "bool", "str"]

TIME = "time"
_LAZY: dict[str, Any] = {}


def _polars_constants() -> dict[str, Any]:
    """``TIME_DTYPE`` and the kind -> dtype table, made on first use (importing polars costs ~35 MiB of RSS, which
    an agent that only encodes rows to JSON never needs)."""
    if not _LAZY:
        import polars as pl

        _LAZY["TIME_DTYPE"] = pl.Datetime("ns", "UTC")
        _LAZY["_DTYPES"] = {"float": pl.Float64(), "int": pl.Int64(), "bool": pl.Boolean(), "str": pl.String()}
    return _LAZY


def __getattr__(name: str) -> Any:
    """``TIME_DTYPE`` (``pl.Datetime("ns", "UTC")``), made when first asked for."""
    if name == "TIME_DTYPE":
        return _polars_constants()["TIME_DTYPE"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class FieldSpec:
    """One field: its name (unit last), unit, kind and meaning."""

    name: str
    unit: str
    kind: Kind = "float"
    description: str = ""

    @property
    def dtype(self) -> pl.DataType:
        return _polars_constants()["_DTYPES"][self.kind]


@dataclass(frozen=True)
class Measurement:
    """A measurement: tags identify a series, fields carry values."""

    name: str
    tags: tuple[str, ...]
    fields: tuple[FieldSpec, ...]
    description: str = ""
    field_index: dict[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        dup = {n for n in names if names.count(n) > 1} | (set(names) & set(self.tags))
        if dup:
            raise ValueError(f"measurement {self.name}: duplicate names {sorted(dup)}")
        object.__setattr__(self, "field_index", {f.name: f for f in self.fields})

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def columns(self) -> tuple[str, ...]:
        return (TIME, *self.tags, *self.field_names)

    def polars_schema(self) -> pl.Schema:
        schema = self.__dict__.get("_schema")
        if schema is None:
            import polars as pl

            cols: dict[str, pl.DataType] = {TIME: _polars_constants()["TIME_DTYPE"]}
            cols.update({t: pl.String() for t in self.tags})
            cols.update({f.name: f.dtype for f in self.fields})
            schema = pl.Schema(cols)
            object.__setattr__(self, "_schema", schema)
        return schema


def F(name: str, unit: str, kind: Kind = "float", description: str = "") -> FieldSpec:  # noqa: N802
    return FieldSpec(name, unit, kind, description)


ACCEL = Measurement(
    "accel",
    tags=("node", "device", "vendor", "model", "group", "pci_bus"),
    description="One row per accelerator per sample.",
    fields=(
        F("temp_c", "degC", description="die / edge temperature (the vendor's main sensor)"),
        F("temp_hotspot_c", "degC", description="hottest on-die sensor (junction / hotspot)"),
        F("temp_mem_c", "degC", description="HBM / memory temperature"),
        F("power_w", "W", description="board power, instantaneous where the device gives it"),
        F("power_avg_w", "W", description="board power averaged by the device (e.g. 1 s window)"),
        F("power_limit_w", "W", description="enforced power cap"),
        F("energy_j", "J", description="cumulative energy counter since driver load"),
        F("voltage_v", "V", description="core voltage"),
        F("current_a", "A", description="core current"),
        F("pcie_tx_bytes_per_s", "B/s", description="PCIe bytes sent by the device per second"),
        F("pcie_rx_bytes_per_s", "B/s", description="PCIe bytes received by the device per second"),
        F("pcie_bidir_bytes_per_s", "B/s", description="PCIe bytes both ways per second (MI300-class gpu_metrics)"),
        F("pcie_link_gen", "1", "int", "current PCIe link generation"),
        F("pcie_link_width", "lanes", "int", "current PCIe link width"),
        F("pcie_replay_count", "1", "int", "cumulative PCIe replay counter"),
        F("util_pct", "%", description="compute utilisation (busy time share)"),
        F("mem_util_pct", "%", description="memory controller / bandwidth utilisation"),
        F("mem_used_bytes", "B", description="device memory in use"),
        F("mem_total_bytes", "B", description="device memory size"),
        F("sm_clock_mhz", "MHz", description="core (SM / GFX / AI core) clock"),
        F("mem_clock_mhz", "MHz", description="memory clock"),
        F("fan_pct", "%", description="fan speed, where the device has a fan"),
        F("throttle_thermal", "bool", "bool", "clocks held down for temperature (HW or SW)"),
        F("throttle_power", "bool", "bool", "clocks held down for power (cap or brake)"),
        F("throttle_other", "bool", "bool", "clocks held down for any other reason (sync boost, ...)"),
        F("throttle_reasons", "bitmask", "int", "vendor's raw throttle / clock-event bitmask"),
        F("ecc_corrected_count", "1", "int", "cumulative corrected ECC errors"),
        F("ecc_uncorrected_count", "1", "int", "cumulative uncorrected ECC errors"),
    ),
)

ACCEL_EVENT = Measurement(
    "accel_event",
    tags=("node", "device", "vendor", "kind"),
    description="Discrete device events (NVIDIA XID, AMD RAS, device lost / back).",
    fields=(
        F("code", "1", "int", "event code (e.g. XID number)"),
        F("message", "text", "str", "human-readable description"),
    ),
)

PRESSURE_FIELDS: tuple[FieldSpec, ...] = tuple(
    F(
        f"{res}_pressure_{kind}_us_per_s",
        "us/s",
        description=(
            f"pressure stall information (/proc/pressure/{res.replace('mem', 'memory')}, "
            f"cgroup v2 {res.replace('mem', 'memory')}.pressure): µs per second in which "
            + ("some" if kind == "some" else "all")
            + " non-idle tasks stalled on "
            + {"cpu": "CPU", "mem": "memory", "io": "I/O"}[res]
            + ", from the `total` counter's delta (not the avg10 gauge)"
        ),
    )
    for res in ("cpu", "mem", "io")
    for kind in ("some", "full")
)
"""PSI fields, shared by `host` (``/proc/pressure``) and `tenant` (the tenant's cgroup v2 ``*.pressure``)."""

MBM_FIELDS: tuple[FieldSpec, ...] = (
    F(
        "mbm_total_bytes_per_s",
        "B/s",
        description="resctrl MBM: memory bandwidth, all NUMA nodes (mbm_total_bytes delta)",
    ),
    F("mbm_local_bytes_per_s", "B/s", description="resctrl MBM: memory bandwidth to the local NUMA node"),
    F("llc_occupancy_bytes", "B", description="resctrl CMT: last-level cache held"),
)
"""resctrl memory-bandwidth monitoring, summed over L3 domains: `host` (the root group) and `tenant` (its group)."""

HOST = Measurement(
    "host",
    tags=("node",),
    description="Host CPU, memory and scheduler activity; one row per node per sample.",
    fields=(
        F("cpu_util_pct", "%", description="all cores, 100 - idle - iowait - steal"),
        F("cpu_user_pct", "%"),
        F("cpu_system_pct", "%"),
        F("cpu_iowait_pct", "%"),
        F("cpu_steal_pct", "%"),
        F("cpu_count", "1", "int", "logical CPUs"),
        F("load1", "1", description="1-minute load average (runnable + uninterruptible tasks)"),
        F("load5", "1"),
        F("load15", "1"),
        F("mem_total_bytes", "B"),
        F("mem_used_bytes", "B"),
        F("mem_available_bytes", "B"),
        F("swap_used_bytes", "B"),
        F("ctx_switches_per_s", "1/s"),
        F("interrupts_per_s", "1/s"),
        F("procs_running", "1", "int", "runnable tasks (run-queue length)"),
        F("cpu_temp_c", "degC", description="hottest CPU package / die sensor (hwmon coretemp, k10temp, zenpower)"),
        *PRESSURE_FIELDS,
        F("pgmajfault_per_s", "1/s", description="/proc/vmstat pgmajfault: major page faults per second"),
        F("workingset_refault_per_s", "1/s", description="/proc/vmstat workingset_refault_anon + _file per second"),
        F("pgscan_per_s", "1/s", description="/proc/vmstat pgscan_kswapd + pgscan_direct: pages scanned for reclaim"),
        F("pgsteal_per_s", "1/s", description="/proc/vmstat pgsteal_kswapd + pgsteal_direct: pages reclaimed"),
        F("numa_miss_per_s", "1/s", description="/proc/vmstat numa_miss: allocations that missed their preferred node"),
        F(
            "numa_foreign_per_s",
            "1/s",
            description="/proc/vmstat numa_foreign: allocations meant for this node placed elsewhere",
        ),
        *MBM_FIELDS,
    ),
)

HOST_CORE = Measurement(
    "host_core",
    tags=("node", "core", "socket"),
    description=(
        "Per-core CPU utilisation, a separate measurement so `host` keeps one series per node; "
        "`core` is the logical CPU number, `socket` its physical package."
    ),
    fields=(
        F("util_pct", "%"),
        F("user_pct", "%"),
        F("system_pct", "%"),
        F("iowait_pct", "%"),
        F("freq_mhz", "MHz"),
    ),
)

TENANT = Measurement(
    "tenant",
    tags=("node", "group"),
    description="Activity of one co-tenant (process group / cgroup / container mapped to a group).",
    fields=(
        F("cpu_pct", "%", description="CPU use summed over the group's processes (100 = one core)"),
        F("rss_bytes", "B"),
        F("accel_mem_bytes", "B", description="accelerator memory held by the group's processes"),
        F("process_count", "1", "int"),
        F("threads_count", "1", "int"),
        F("pids", "text", "str", "space-separated PIDs (a field, never a tag: cardinality)"),
        *PRESSURE_FIELDS,
        F("cpu_periods_per_s", "1/s", description="cgroup v2 cpu.stat nr_periods per second (CFS quota periods)"),
        F("cpu_throttled_periods_per_s", "1/s", description="cgroup v2 cpu.stat nr_throttled per second"),
        F("cpu_throttled_us_per_s", "us/s", description="cgroup v2 cpu.stat throttled_usec per second"),
        F("mem_cgroup_bytes", "B", description="cgroup v2 memory.current (page cache included)"),
        F("workingset_refault_per_s", "1/s", description="cgroup v2 memory.stat workingset_refault_anon + _file"),
        F("pgscan_per_s", "1/s", description="cgroup v2 memory.stat pgscan: pages scanned for reclaim"),
        F("pgsteal_per_s", "1/s", description="cgroup v2 memory.stat pgsteal: pages reclaimed"),
        F("pgmajfault_per_s", "1/s", description="cgroup v2 memory.stat pgmajfault"),
        F("io_read_bytes_per_s", "B/s", description="cgroup v2 io.stat rbytes, all devices"),
        F("io_write_bytes_per_s", "B/s", description="cgroup v2 io.stat wbytes, all devices"),
        F("io_read_ops_per_s", "1/s", description="cgroup v2 io.stat rios, all devices"),
        F("io_write_ops_per_s", "1/s", description="cgroup v2 io.stat wios, all devices"),
        *MBM_FIELDS,
    ),
)

DISK = Measurement(
    "host_disk",
    tags=("node", "disk"),
    description=(
        "One row per block device per sample (/proc/diskstats; partitions and loop/ram devices left out). Not "
        "`disk`: that is Telegraf's filesystem-usage measurement, which line-protocol writes and imports carry."
    ),
    fields=(
        F("read_bytes_per_s", "B/s"),
        F("write_bytes_per_s", "B/s"),
        F("read_ops_per_s", "1/s"),
        F("write_ops_per_s", "1/s"),
        F("busy_pct", "%", description="share of the interval with I/O in flight (io_ticks delta)"),
        F(
            "queue_ms_per_s",
            "ms/s",
            description="weighted time in queue per second (time_in_queue delta): mean queue depth x 1000",
        ),
        F("read_await_ms", "ms", description="mean time per read completed in the interval"),
        F("write_await_ms", "ms", description="mean time per write completed in the interval"),
        F("in_flight", "1", "int", "I/Os in flight at the sample"),
    ),
)

NET = Measurement(
    "host_net",
    tags=("node", "interface"),
    description=(
        "One row per network interface per sample (/sys/class/net/*/statistics; loopback left out). Not `net`: "
        "that is Telegraf's measurement, which line-protocol writes and imports carry."
    ),
    fields=(
        F("rx_bytes_per_s", "B/s"),
        F("tx_bytes_per_s", "B/s"),
        F("rx_packets_per_s", "1/s"),
        F("tx_packets_per_s", "1/s"),
        F("rx_dropped_per_s", "1/s"),
        F("tx_dropped_per_s", "1/s"),
        F("rx_errors_per_s", "1/s"),
        F("tx_errors_per_s", "1/s"),
        F("speed_mbit_per_s", "Mbit/s", description="link speed, where the driver reports it"),
    ),
)

RDMA = Measurement(
    "rdma",
    tags=("node", "device", "port"),
    description=(
        "One row per RDMA / RoCE port per sample (/sys/class/infiniband/*/ports/*/counters and hw_counters): "
        "the fabric shared by collective traffic."
    ),
    fields=(
        F("rx_bytes_per_s", "B/s", description="port_rcv_data x 4 (the counter is in 4-byte words)"),
        F("tx_bytes_per_s", "B/s", description="port_xmit_data x 4"),
        F("rx_packets_per_s", "1/s"),
        F("tx_packets_per_s", "1/s"),
        F("xmit_wait_per_s", "1/s", description="port_xmit_wait: ticks the port had data but no credit to send"),
        F("cnp_sent_per_s", "1/s", description="hw_counters np_cnp_sent: congestion notifications sent"),
        F("cnp_handled_per_s", "1/s", description="hw_counters rp_cnp_handled: congestion notifications acted on"),
        F("ecn_marked_per_s", "1/s", description="hw_counters np_ecn_marked_roce_packets"),
        F("rx_discards_per_s", "1/s", description="port_rcv_discards + port_xmit_discards"),
    ),
)

SERVING = Measurement(
    "serving",
    tags=("node", "group", "engine", "model", "endpoint"),
    description=(
        "A serving engine's own Prometheus metrics (vLLM, SGLang, TGI, llama.cpp), one row per endpoint and model "
        "per scrape interval: rates from counter deltas, quantiles from histogram bucket deltas over the interval. "
        "`endpoint` is the scraped host:port, so two engines of one group (a prefill and a decode pool) are two "
        "series."
    ),
    fields=(
        F("requests_per_s", "1/s", description="requests finished per second"),
        F("prompt_tokens_per_s", "1/s", description="prompt (prefill) tokens per second"),
        F("generation_tokens_per_s", "1/s", description="generated tokens per second"),
        F("requests_running", "1", description="requests being served (batch)"),
        F("requests_waiting", "1", description="requests queued"),
        F("kv_cache_usage_pct", "%", description="KV cache in use"),
        F("prompt_tokens_mean", "1", description="mean prompt length of requests finished in the interval"),
        F("ttft_ms_p50", "ms", description="time to first token, p50 of the interval, from histogram bucket deltas"),
        F("ttft_ms_p90", "ms", description="time to first token, p90 of the interval, from histogram bucket deltas"),
        F("ttft_ms_p99", "ms", description="time to first token, p99 of the interval, from histogram bucket deltas"),
        F("ttft_count", "1", "int", "observations of time to first token in the interval (histogram _count delta)"),
        F("ttft_ms_p99_bucket_lo", "ms", description="lower bound of the bucket holding the p99: the resolution limit"),
        F("ttft_ms_p99_bucket_hi", "ms", description="upper bound of the bucket holding the p99 (null: +Inf bucket)"),
        F("itl_ms_p50", "ms", description="inter-token latency, p50 of the interval, from histogram bucket deltas"),
        F("itl_ms_p90", "ms", description="inter-token latency, p90 of the interval, from histogram bucket deltas"),
        F("itl_ms_p99", "ms", description="inter-token latency, p99 of the interval, from histogram bucket deltas"),
        F("itl_count", "1", "int", "observations of inter-token latency in the interval (histogram _count delta)"),
        F("itl_ms_p99_bucket_lo", "ms", description="lower bound of the bucket holding the p99: the resolution limit"),
        F("itl_ms_p99_bucket_hi", "ms", description="upper bound of the bucket holding the p99 (null: +Inf bucket)"),
        F("tpot_ms_p50", "ms", description="time per output token, p50 of the interval, from histogram bucket deltas"),
        F("tpot_ms_p90", "ms", description="time per output token, p90 of the interval, from histogram bucket deltas"),
        F("tpot_ms_p99", "ms", description="time per output token, p99 of the interval, from histogram bucket deltas"),
        F("tpot_count", "1", "int", "observations of time per output token in the interval (histogram _count delta)"),
        F("tpot_ms_p99_bucket_lo", "ms", description="lower bound of the bucket holding the p99: the resolution limit"),
        F("tpot_ms_p99_bucket_hi", "ms", description="upper bound of the bucket holding the p99 (null: +Inf bucket)"),
        F(
            "e2e_ms_p50",
            "ms",
            description="end-to-end request latency, p50 of the interval, from histogram bucket deltas",
        ),
        F(
            "e2e_ms_p90",
            "ms",
            description="end-to-end request latency, p90 of the interval, from histogram bucket deltas",
        ),
        F(
            "e2e_ms_p99",
            "ms",
            description="end-to-end request latency, p99 of the interval, from histogram bucket deltas",
        ),
        F(
            "e2e_count",
            "1",
            "int",
            "observations of end-to-end request latency in the interval (histogram _count delta)",
        ),
        F("e2e_ms_p99_bucket_lo", "ms", description="lower bound of the bucket holding the p99: the resolution limit"),
        F("e2e_ms_p99_bucket_hi", "ms", description="upper bound of the bucket holding the p99 (null: +Inf bucket)"),
        F(
            "queue_ms_p50",
            "ms",
            description="time waiting in the engine's queue, p50 of the interval, from histogram bucket deltas",
        ),
        F(
            "queue_ms_p90",
            "ms",
            description="time waiting in the engine's queue, p90 of the interval, from histogram bucket deltas",
        ),
        F(
            "queue_ms_p99",
            "ms",
            description="time waiting in the engine's queue, p99 of the interval, from histogram bucket deltas",
        ),
        F(
            "queue_count",
            "1",
            "int",
            "observations of time waiting in the engine's queue in the interval (histogram _count delta)",
        ),
        F(
            "queue_ms_p99_bucket_lo",
            "ms",
            description="lower bound of the bucket holding the p99: the resolution limit",
        ),
        F("queue_ms_p99_bucket_hi", "ms", description="upper bound of the bucket holding the p99 (null: +Inf bucket)"),
        F("interval_s", "s", description="time between the two scrapes the row is computed from"),
        F("up", "bool", "bool", "the endpoint answered this scrape"),
        F("counter_reset", "bool", "bool", "a counter went backwards (engine restart): rates of the interval are null"),
    ),
)

AGENT = Measurement(
    "agent",
    tags=("node", "sampler"),
    description="The agent's own health, per sampler per tick: stale data is visible, not silent.",
    fields=(
        F("latency_ms", "ms", description="time the sampler's read took"),
        F("staleness_s", "s", description="age of the value reported this tick (slow samplers)"),
        F("errors_total", "1", "int", "cumulative read errors"),
        F("skipped_total", "1", "int", "cumulative ticks skipped because the last read was still running"),
        F("ok", "bool", "bool", "last read succeeded"),
        F("spool_bytes", "B", description="bytes waiting in the disk spool"),
        F("spool_dropped_total", "1", "int", "batches dropped because the spool was full"),
    ),
)

BENCH_REQUEST = Measurement(
    "bench_request",
    tags=("node", "run_id", "group", "phase", "tool"),
    description=(
        "One row per benchmark request; `time` is the request's start on the wall clock. "
        "Token-level arrays live in Parquet artifacts beside the store."
    ),
    fields=(
        F("request_index", "1", "int", "position of the request in the run"),
        F("ttft_ms", "ms", description="time to first token"),
        F("tpot_ms", "ms", description="(e2e - ttft) / (output_tokens - 1)"),
        F("e2e_ms", "ms", description="request latency"),
        F("itl_ms_mean", "ms", description="mean inter-token latency of this request"),
        F("itl_ms_max", "ms", description="largest inter-token latency of this request"),
        F("input_tokens", "1", "int"),
        F("output_tokens", "1", "int"),
        F("success", "bool", "bool"),
        F("error", "text", "str"),
        F("timing", "text", "str", "wall_clock | reconstructed | unaligned (see analysis/ingest/model.py)"),
    ),
)

RUN_EVENT = Measurement(
    "run_event",
    tags=("node", "run_id", "group", "phase", "event"),
    description=(
        "Benchmark runs and phases: `event` is start | end | switch_on | switch_off | summary. "
        "A summary row carries the run's metadata and summary metrics as JSON."
    ),
    fields=(
        F("monotonic_s", "s", description="time.monotonic() of the recording host at the event"),
        F("tool", "text", "str"),
        F("command", "text", "str"),
        F("exit_code", "1", "int"),
        F("tenant", "text", "str", "co-tenant switched on/off (stress designs)"),
        F("metadata_json", "text", "str", "run metadata and summary metrics in canonical names"),
    ),
)

MEASUREMENTS: dict[str, Measurement] = {
    m.name: m
    for m in (ACCEL, ACCEL_EVENT, HOST, HOST_CORE, TENANT, DISK, NET, RDMA, SERVING, AGENT, BENCH_REQUEST, RUN_EVENT)
}


# ---- what every store can hold: the rules both ingest paths (batches, line protocol) and the stores apply ----

#: a measurement name outside the schema (Telegraf's ``cpu``, ``mem``, ...): it names a directory of the embedded
#: store, so no leading dot or underscore, no path separator, ASCII letters, digits and ``_ . : -``
MEASUREMENT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$"
_MEASUREMENT_NAME_RE = re.compile(MEASUREMENT_NAME_PATTERN)
#: names the embedded store keeps for its own directories (artifacts, quarantined files)
RESERVED_MEASUREMENTS = frozenset({"artifacts", "quarantine"})
#: keys no line may use: ``time`` is the timestamp (InfluxDB refuses it as a tag or field key)
RESERVED_KEYS = frozenset({TIME})
#: longest tag key, tag value or field key, in UTF-8 bytes (InfluxDB refuses series keys of 64 KiB and more)
MAX_KEY_BYTES = 4096
#: longest series key (measurement plus every ``,tag=value``), InfluxDB's limit
MAX_SERIES_KEY_BYTES = 65_535
#: InfluxDB's time range in epoch ns (1677-09-21 .. 2262-04-11)
INFLUX_MIN_NS, INFLUX_MAX_NS = -9_223_372_036_854_775_806, 9_223_372_036_854_775_806
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def measurement_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a measurement (None when it can): schema measurements always can."""
    if name in MEASUREMENTS:
        return None
    if name in RESERVED_MEASUREMENTS:
        return f"measurement name {name!r} is reserved (the store's own directories: {', '.join(sorted(RESERVED_MEASUREMENTS))})"
    if _MEASUREMENT_NAME_RE.fullmatch(name) is None:
        return (
            f"invalid measurement name {name[:80]!r}: use 1-200 ASCII letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    return None


def text_problem(text: str, what: str = "tag value") -> str | None:
    """Why ``text`` cannot be a tag key, tag value or field key (None when it can). Line protocol cannot
    carry a trailing backslash (it would escape the separator after it) nor a line break, InfluxDB refuses
    keys of 64 KiB, and the rule is the same for every store so an answer never depends on the backend."""
    if not text:
        return f"empty {what}"
    if text.endswith("\\"):
        return f"{what} ends in a backslash, which line protocol cannot carry"
    if _CONTROL_RE.search(text):
        return f"{what} holds a control character (line break, tab, ...)"
    if len(text) * 4 > MAX_KEY_BYTES and len(text.encode("utf-8")) > MAX_KEY_BYTES:
        return f"{what} is {len(text.encode('utf-8')):,} bytes; at most {MAX_KEY_BYTES:,} bytes"
    return None


def tag_values_problem(values: list) -> tuple[int, str] | None:
    """The first sample of a tag column (index, why) that `text_problem` refuses; None when all are fine.
    Checks each distinct value once (a tag column holds few)."""
    bad: dict[str, str] = {}
    for v in set(values):
        if isinstance(v, str) and v and (why := text_problem(v)) is not None:  # "" is absent, as null is
            bad[v] = why
    if not bad:
        return None
    index = next(j for j, v in enumerate(values) if v in bad)
    return index, bad[values[index]]


#: the earliest time the collector takes (2000-01-01T00:00:00Z): anything before is a unit mistake
EARLIEST_NS = 946_684_800 * 10**9


def time_window_ns(now_ns: int, future_s: float = 86_400.0) -> tuple[int, int]:
    """The times the collector takes, in epoch ns: from 2000-01-01 to ``future_s`` after ``now_ns``."""
    return EARLIEST_NS, now_ns + int(future_s * 1e9)


def time_problem(t_ns: int, window: tuple[int, int]) -> str | None:
    """Why epoch-ns ``t_ns`` is refused by the collector (None when it is taken), with the likely unit
    mistake: seconds or milliseconds sent as nanoseconds land in 1970, nanoseconds sent as seconds far
    in the future."""
    lo, hi = window
    if lo <= t_ns <= hi:
        return None
    when = _describe_ns(t_ns)
    if t_ns < lo:
        return (
            f"time {t_ns} is {when}, before 2000-01-01: the unit looks wrong (time is epoch nanoseconds; for line "
            "protocol give ?precision=s / ms / us to match the timestamps)"
        )
    return (
        f"time {t_ns} is {when}, too far in the future (max_future_s, a day by default): the unit looks wrong "
        "(time is epoch nanoseconds; for line protocol ?precision must match the timestamps), or the sender's "
        "clock is off"
    )


def _describe_ns(t_ns: int) -> str:
    try:
        return datetime.fromtimestamp(t_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return "beyond any calendar date"


def measurement(name: str) -> Measurement:
    try:
        return MEASUREMENTS[name]
    except KeyError:
        raise SchemaError(f"unknown measurement {name!r}; known: {', '.join(MEASUREMENTS)}") from None


def empty_frame(name: str) -> pl.DataFrame:
    import polars as pl

    return pl.DataFrame(schema=measurement(name).polars_schema())


def _bad_row(before: pl.Series, after: pl.Series) -> int | None:
    bad = before.is_not_null() & after.is_null()
    idx = bad.arg_true()
    return int(idx[0]) if len(idx) else None


def conform(frame: pl.DataFrame, name: str, where: str = "") -> pl.DataFrame:
    """Return ``frame`` in the declared form of measurement ``name``.

    Casts every column to its declared dtype (numbers to float, epoch-ns ints to time), adds the
    missing tag / field columns as nulls and orders the columns. Raises `SchemaError` naming the
    column and row for an unknown column, a missing ``time``, or a value that does not fit its type.
    Float NaN and infinities become null (absent), never 0.
    """
    import numpy as np
    import polars as pl

    m = measurement(name)
    prefix = f"{where}." if where else ""
    schema = m.polars_schema()
    unknown = [c for c in frame.columns if c not in schema]
    if unknown:
        raise SchemaError(
            f"unknown column(s) {unknown} for measurement {name!r} "
            f"(tags: {list(m.tags)}; fields: {list(m.field_names)})",
            where or name,
        )
    if TIME not in frame.columns:
        raise SchemaError("missing the 'time' column", where or name)
    if frame.height and frame[TIME].null_count():
        row = int(frame[TIME].is_null().arg_true()[0])
        raise SchemaError("time is missing", f"{prefix}{TIME}[{row}]")
    if frame.schema == schema:
        result = frame
    else:
        out: list[pl.Series] = []
        for col, dtype in schema.items():
            if col not in frame.columns:
                out.append(pl.Series(col, [None] * frame.height, dtype=dtype))
                continue
            s = frame[col]
            out.append(s if s.dtype == dtype else _cast(s, dtype, f"{prefix}{col}"))
        result = pl.DataFrame(out)
    # NaN / +-inf -> null, only for the columns that have any. Checked with numpy (a polars query per frame
    # costs ~1 ms of engine overhead, which the collector would pay on every batch): nulls come out of
    # to_numpy() as NaN, so a column is bad when it has more non-finite values than nulls.
    bad = []
    if result.height:
        for f in m.fields:
            if f.kind != "float":
                continue
            col = result.get_column(f.name)
            nulls = col.null_count()
            if nulls == col.len():
                continue
            if np.count_nonzero(~np.isfinite(col.to_numpy())) > nulls:
                bad.append(f.name)
    if not bad:
        return result
    return result.with_columns(pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(c) for c in bad)


def _cast(s: pl.Series, dtype: pl.DataType, where: str) -> pl.Series:
    import polars as pl

    if dtype == _polars_constants()["TIME_DTYPE"]:
        if s.dtype.is_integer():
            return s.cast(pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
        if s.dtype.is_float():
            return (s * 1e9).round().cast(pl.Int64).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
        if isinstance(s.dtype, pl.Datetime):
            if s.dtype.time_zone is None:
                return s.dt.replace_time_zone("UTC").dt.cast_time_unit("ns")
            return s.dt.convert_time_zone("UTC").dt.cast_time_unit("ns")
        if s.dtype == pl.String:
            parsed = s.str.to_datetime(time_zone="UTC", strict=False, time_unit="ns")
            row = _bad_row(s, parsed)
            if row is not None:
                raise SchemaError(f"not a timestamp: {s[row]!r}", f"{where}[{row}]")
            return parsed
        raise SchemaError(f"time must be epoch-ns integers or datetimes, got {s.dtype}", where)
    if dtype == pl.String:
        if s.dtype == pl.Null or s.dtype.is_numeric() or s.dtype == pl.Boolean:
            return s.cast(pl.String)
        raise SchemaError(f"expected text, got {s.dtype}", where)
    if dtype == pl.Boolean:
        if s.dtype == pl.Null:
            return s.cast(pl.Boolean)
        if s.dtype.is_numeric():
            bad = s.is_not_null() & ~s.is_in([0, 1])
            if bad.any():
                row = int(bad.arg_true()[0])
                raise SchemaError(f"expected a boolean, got {s[row]!r}", f"{where}[{row}]")
            return s.cast(pl.Boolean)
        raise SchemaError(f"expected a boolean, got {s.dtype}", where)
    # numeric targets
    if s.dtype == pl.Null:
        return s.cast(dtype)
    if s.dtype == pl.Boolean:  # booleans are not numbers (one rule for every way in)
        row = int(s.is_not_null().arg_true()[0]) if s.null_count() < s.len() else None
        if row is None:
            return s.cast(dtype)
        raise SchemaError(f"expected a number, got {s[row]!r}", f"{where}[{row}]")
    if s.dtype == pl.String or not s.dtype.is_numeric():
        cast = s.cast(dtype, strict=False)
        row = _bad_row(s, cast)
        if row is not None:
            raise SchemaError(f"expected a number, got {s[row]!r}", f"{where}[{row}]")
        return cast
    if dtype == pl.Int64 and s.dtype.is_float():
        frac = s.is_not_null() & ~s.is_nan() & (s != s.round())
        if frac.any():
            row = int(frac.arg_true()[0])
            raise SchemaError(f"expected an integer, got {s[row]!r}", f"{where}[{row}]")
        return s.fill_nan(None).cast(dtype)
    cast = s.cast(dtype, strict=False)
    row = _bad_row(s, cast)
    if row is not None:
        raise SchemaError(f"value out of range: {s[row]!r}", f"{where}[{row}]")
    return cast


def as_time(s: pl.Series, where: str = TIME) -> pl.Series:
    """A time column as ``Datetime("ns", "UTC")`` (from epoch ns, epoch s floats, datetimes or ISO text)."""
    time_dtype = _polars_constants()["TIME_DTYPE"]
    return s if s.dtype == time_dtype else _cast(s, time_dtype, where)


def field_unit(measurement_name: str, field_name: str) -> str:
    return measurement(measurement_name).field_index[field_name].unit


def schema_markdown() -> str:
    """The measurement tables of docs/schema.md (kept in sync by a test)."""
    out: list[str] = []
    for m in MEASUREMENTS.values():
        out.append(f"### `{m.name}`\n\n{m.description}\n\nTags: {', '.join(f'`{t}`' for t in m.tags)}\n")
        out.append("| field | unit | type | meaning |\n|---|---|---|---|")
        out.extend(f"| `{f.name}` | {f.unit} | {f.kind} | {f.description} |" for f in m.fields)
        out.append("")
    return "\n".join(out)
