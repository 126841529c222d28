"""The node config (TOML) and its effective form.

```toml
node = "node1"                          # default: the host name
[collector]
url = "http://collector:8428"
token = "s3cret"                        # or token_file = "/etc/neighborscope/token"
ca_file = "/etc/neighborscope/ca.pem"   # https: trust this CA (default: the system's CAs)
[agent]
cadence_s = 1.0                         # default for every sampler (0.1 .. 3600)
flush_s = 1.0                           # how often a batch is sent
spool_dir = "/var/lib/neighborscope/spool"   # "" keeps the spool in memory
spool_max_bytes = 268435456
metrics_port = 0                        # Prometheus /metrics on the agent; 0 = off
[groups]                                # which devices belong to which group
hive0 = ["gpu0", "gpu1"]                # a list, or a range "gpu0..gpu7"
[samplers.host]
cadence_s = 0.5
[samplers.nvml]
enabled = "auto"                        # true | false | "auto" (on when it finds devices)
[[tenants]]                             # co-tenant matching rules (see agents.samplers.tenants)
group = "hive0"
cmdline = "sglang.*--port 30000"
```

Devices are auto-detected when a sampler lists none (``devices = [...]`` restricts it, by name or PCI
address). `effective_toml` renders what the agent will actually run (``neighborscope agent
--print-config``), with the token redacted.
"""

from __future__ import annotations

import re
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telemetry.batch import NODE_PATTERN
from telemetry.errors import ConfigError

MIN_CADENCE_S = 0.1
MAX_CADENCE_S = 3600.0
DEFAULT_ENABLED: dict[str, bool | str] = {
    "host": True,
    "tenants": "auto",
    "nvml": "auto",
    "amdgpu": "auto",
    "hwmon": "auto",
    "simulated": False,
}


@dataclass
class SamplerConfig:
    name: str
    enabled: bool | str = "auto"
    cadence_s: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentConfig:
    node: str
    collector_url: str | None = None
    token: str | None = None
    timeout_s: float = 10.0
    ca_file: Path | None = None
    cadence_s: float = 1.0
    flush_s: float = 1.0
    spool_dir: Path | None = Path("/var/lib/neighborscope/spool")
    spool_max_bytes: int = 256 * 2**20
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    shutdown_timeout_s: float = 10.0
    sysfs_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")
    groups: dict[str, list[str]] = field(default_factory=dict)
    samplers: dict[str, SamplerConfig] = field(default_factory=dict)
    tenants: list[dict[str, Any]] = field(default_factory=list)

    def device_groups(self) -> dict[str, str]:
        """device -> group, from ``[groups]``."""
        return {dev: group for group, devs in self.groups.items() for dev in devs}


def expand_devices(value: Any, where: str) -> list[str]:
    """``["gpu0", "gpu1"]`` or ``"gpu0..gpu7"`` (or a list mixing both) -> device names."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"device names are strings, got {item!r}", where)
        m = re.fullmatch(r"([A-Za-z_-]*)(\d+)\.\.([A-Za-z_-]*)(\d+)", item)
        if m:
            prefix, lo, prefix2, hi = m.group(1), int(m.group(2)), m.group(3) or m.group(1), int(m.group(4))
            if prefix2 != prefix or hi < lo:
                raise ConfigError(f'bad device range {item!r} (want e.g. "gpu0..gpu7")', where)
            out.extend(f"{prefix}{i}" for i in range(lo, hi + 1))
        else:
            out.append(item)
    return out


def _cadence(value: Any, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"cadence must be a number of seconds, got {value!r}", where) from None
    if not MIN_CADENCE_S <= v <= MAX_CADENCE_S:
        raise ConfigError(f"cadence {v} s is outside {MIN_CADENCE_S} .. {MAX_CADENCE_S} s", where)
    return v


def _take(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table.pop(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float, (int, float))):
        raise ConfigError(f"{key} has the wrong type ({type(value).__name__})", f"{where}.{key}")
    return value


def parse_config(raw: dict[str, Any], base_dir: Path | None = None) -> AgentConfig:
    """A parsed TOML document -> `AgentConfig`; raises `ConfigError` naming the key."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    node = _take(raw, "node", str, "", None) or socket.gethostname().split(".")[0]
    if not re.fullmatch(NODE_PATTERN, node):
        raise ConfigError(f"node name {node!r} is not valid (letters, digits, _ . : -)", "node")
    cfg = AgentConfig(node=node)
    coll = raw.pop("collector", {})
    cfg.collector_url = _take(coll, "url", str, "collector", None)
    cfg.token = _take(coll, "token", str, "collector", None)
    token_file = _take(coll, "token_file", str, "collector", None)
    if token_file:
        path = Path(token_file) if base_dir is None else base_dir / token_file
        try:
            cfg.token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {path}: {exc.strerror}", "collector.token_file") from None
    cfg.timeout_s = float(_take(coll, "timeout_s", (int, float), "collector", 10.0))
    ca_file = _take(coll, "ca_file", str, "collector", None)
    if ca_file:
        cfg.ca_file = Path(ca_file) if base_dir is None else base_dir / ca_file
        if not cfg.ca_file.is_file():
            raise ConfigError(f"no CA file at {cfg.ca_file}", "collector.ca_file")
    if coll:
        raise ConfigError(
            f"unknown key(s) {sorted(coll)} (known: url, token, token_file, timeout_s, ca_file)", "collector"
        )
    agent = raw.pop("agent", {})
    cfg.cadence_s = _cadence(agent.pop("cadence_s", 1.0), "agent.cadence_s")
    cfg.flush_s = float(_take(agent, "flush_s", (int, float), "agent", 1.0))
    if not 0.05 <= cfg.flush_s <= 600:
        raise ConfigError(f"flush_s {cfg.flush_s} is outside 0.05 .. 600 s", "agent.flush_s")
    spool = _take(agent, "spool_dir", str, "agent", str(cfg.spool_dir))
    cfg.spool_dir = Path(spool) if spool else None
    cfg.spool_max_bytes = int(_take(agent, "spool_max_bytes", int, "agent", cfg.spool_max_bytes))
    cfg.metrics_port = int(_take(agent, "metrics_port", int, "agent", 0))
    cfg.metrics_host = _take(agent, "metrics_host", str, "agent", "127.0.0.1")
    cfg.shutdown_timeout_s = float(_take(agent, "shutdown_timeout_s", (int, float), "agent", 10.0))
    cfg.sysfs_root = Path(_take(agent, "sysfs_root", str, "agent", "/sys"))
    cfg.proc_root = Path(_take(agent, "proc_root", str, "agent", "/proc"))
    if agent:
        raise ConfigError(f"unknown key(s) {sorted(agent)}", "agent")
    groups = raw.pop("groups", {})
    seen: dict[str, str] = {}
    for group, devs in groups.items():
        cfg.groups[group] = expand_devices(devs, f"groups.{group}")
        for d in cfg.groups[group]:
            if d in seen:
                raise ConfigError(f"device {d!r} is in both group {seen[d]!r} and {group!r}", f"groups.{group}")
            seen[d] = group
    tenants = raw.pop("tenants", [])
    if not isinstance(tenants, list):
        raise ConfigError("tenants is a list of rules ([[tenants]])", "tenants")
    cfg.tenants = [dict(t) for t in tenants]
    samplers = raw.pop("samplers", {})
    from agents.samplers import load_builtin
    from agents.samplers.base import SAMPLERS

    load_builtin()
    unknown = sorted(set(samplers) - set(SAMPLERS))
    if unknown:
        raise ConfigError(f"unknown sampler(s) {unknown}; known: {sorted(SAMPLERS)}", "samplers")
    for name in SAMPLERS:
        table = dict(samplers.get(name, {}))
        enabled = table.pop("enabled", DEFAULT_ENABLED.get(name, "auto"))
        if enabled not in (True, False, "auto"):
            raise ConfigError(f'enabled is true, false or "auto", got {enabled!r}', f"samplers.{name}.enabled")
        cadence = _cadence(table.pop("cadence_s", cfg.cadence_s), f"samplers.{name}.cadence_s")
        if "devices" in table:
            table["devices"] = expand_devices(table["devices"], f"samplers.{name}.devices")
        cfg.samplers[name] = SamplerConfig(name, enabled, cadence, table)
    if cfg.tenants:
        cfg.samplers["tenants"].options["rules"] = cfg.tenants
    if raw:
        raise ConfigError(f"unknown key(s) {sorted(raw)} (known: node, collector, agent, groups, samplers, tenants)")
    return cfg


def load_config(path: Path | None) -> AgentConfig:
    """Read a node config file (None: all defaults)."""
    if path is None:
        return parse_config({})
    try:
        raw = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_config(raw, Path(path).parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def effective_toml(cfg: AgentConfig, detected: dict[str, list[str]] | None = None) -> str:
    """The effective config as TOML (token redacted; detected devices listed per sampler)."""
    doc: dict[str, Any] = {"node": cfg.node}
    coll: dict[str, Any] = {"timeout_s": cfg.timeout_s}
    if cfg.collector_url:
        coll["url"] = cfg.collector_url
    if cfg.token:
        coll["token"] = "<redacted>"  # noqa: S105 - a placeholder, not a secret
    if cfg.ca_file:
        coll["ca_file"] = str(cfg.ca_file)
    doc["collector"] = coll
    doc["agent"] = {
        "cadence_s": cfg.cadence_s,
        "flush_s": cfg.flush_s,
        "spool_dir": str(cfg.spool_dir or ""),
        "spool_max_bytes": cfg.spool_max_bytes,
        "metrics_port": cfg.metrics_port,
        "metrics_host": cfg.metrics_host,
        "shutdown_timeout_s": cfg.shutdown_timeout_s,
        "sysfs_root": str(cfg.sysfs_root),
        "proc_root": str(cfg.proc_root),
    }
    if cfg.groups:
        doc["groups"] = cfg.groups
    samplers: dict[str, Any] = {}
    for name, sc in cfg.samplers.items():
        table: dict[str, Any] = {"enabled": sc.enabled, "cadence_s": sc.cadence_s}
        table.update({k: v for k, v in sc.options.items() if k != "rules"})
        if detected is not None:
            table["enabled"] = name in detected
            if detected.get(name):
                table["devices"] = detected[name]
        samplers[name] = table
    doc["samplers"] = samplers
    if cfg.tenants:
        doc["tenants"] = cfg.tenants
    return toml_text(doc)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as a TOML value")


def toml_text(doc: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for config documents (scalars, lists, tables, arrays of tables)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, table in tables:
        name = f"{prefix}{key}"
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        nested = {k: v for k, v in table.items() if isinstance(v, dict)}
        out += f"\n[{name}]\n" + toml_text(scalars, f"{name}.")
        if nested:
            out += toml_text(nested, f"{name}.")
    for key, items in arrays:
        for item in items:
            out += f"\n[[{prefix}{key}]]\n" + toml_text(item, f"{prefix}{key}.")
    return out
