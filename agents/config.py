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
[[serving]]                             # a serving engine's /metrics (see agents.samplers.serving, docs/serving.md)
group = "hive0"
url = "http://127.0.0.1:30000/metrics"
engine = "sglang"                       # vllm | sglang | tgi | llamacpp | auto
```

``[[serving]]`` entries turn the ``serving`` sampler on (``enabled = "auto"``); it scrapes every
``SERVING_CADENCE_S`` seconds unless ``[samplers.serving] cadence_s`` says otherwise (a latency quantile needs a
window that holds requests).

Devices are auto-detected when a sampler lists none (``devices = [...]`` restricts it, by name or PCI
address). `effective_toml` renders what the agent will actually run (``neighborscope agent
--print-config``), with the token redacted.
"""

from __future__ import annotations

import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, model_validator

from agents.samplers.base import SAMPLERS, config_error, config_located
from agents.samplers.serving import endpoints_from_options
from telemetry.batch import NODE_PATTERN
from telemetry.config import model_from_dict, read_toml
from telemetry.errors import ConfigError

MIN_CADENCE_S = 0.1
MAX_CADENCE_S = 3600.0
SERVING_CADENCE_S = 5.0
"""The serving sampler's cadence when ``[samplers.serving] cadence_s`` is not set: each row's quantiles come from
the requests of one interval, and a 1 s window rarely holds enough of them."""


@dataclass
class SamplerConfig:
    name: str
    enabled: bool | str = "auto"
    cadence_s: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class AgentConfig:
    """The effective config the agent runs (defaults: the ``*Table`` models below)."""

    node: str
    collector_url: str | None
    token: str | None
    timeout_s: float
    ca_file: Path | None
    cadence_s: float
    flush_s: float
    spool_dir: Path | None
    spool_max_bytes: int
    metrics_port: int
    metrics_host: str
    shutdown_timeout_s: float
    sysfs_root: Path
    proc_root: Path
    groups: dict[str, list[str]] = field(default_factory=dict)
    samplers: dict[str, SamplerConfig] = field(default_factory=dict)
    tenants: list[dict[str, Any]] = field(default_factory=list)
    serving: list[dict[str, Any]] = field(default_factory=list)
    """``[[serving]]`` endpoints, validated, relative paths resolved against the config file's folder."""

    def device_groups(self) -> dict[str, str]:
        """device -> group, from ``[groups]``."""
        return {dev: group for group, devs in self.groups.items() for dev in devs}


def _expand(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"device names are strings, got {item!r}")
        m = re.fullmatch(r"([A-Za-z_-]*)(\d+)\.\.([A-Za-z_-]*)(\d+)", item)
        if m:
            prefix, lo, prefix2, hi = m.group(1), int(m.group(2)), m.group(3) or m.group(1), int(m.group(4))
            if prefix2 != prefix or hi < lo:
                raise ValueError(f'bad device range {item!r} (want e.g. "gpu0..gpu7")')
            out.extend(f"{prefix}{i}" for i in range(lo, hi + 1))
        else:
            out.append(item)
    return out


def expand_devices(value: Any, where: str = "") -> list[str]:
    """``["gpu0", "gpu1"]`` or ``"gpu0..gpu7"`` (or a list mixing both) -> device names."""
    try:
        return _expand(value)
    except ValueError as exc:
        raise config_error(str(exc), where) from None


def _cadence(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number of seconds") from None
    if not MIN_CADENCE_S <= v <= MAX_CADENCE_S:
        raise ValueError(f"{v} s is outside {MIN_CADENCE_S} .. {MAX_CADENCE_S} s")
    return v


def _enabled(value: Any) -> bool | str:
    if not isinstance(value, bool) and value != "auto":  # 1 and 0 are not booleans in the config
        raise ValueError('must be true, false or "auto"')
    return value


def _rules(value: Any) -> Any:
    if not isinstance(value, list):
        raise ValueError("must be a list of rules ([[tenants]])")
    return value


def _endpoints(value: Any) -> Any:
    if not isinstance(value, list):
        raise ValueError("must be a list of endpoints ([[serving]])")
    return value


Cadence = Annotated[float, BeforeValidator(_cadence)]
Devices = Annotated[list[str], BeforeValidator(_expand)]


def _keys(names: list[str]) -> str:
    """``key 'a'`` or ``keys 'a', 'b'``: names in a sentence, not a Python list."""
    return ("key " if len(names) == 1 else "keys ") + ", ".join(repr(n) for n in names)


class _Table(BaseModel):
    """A config table: typed keys (an int is a float, a bool is not a number); an unknown key is named with the
    known ones."""

    model_config = ConfigDict(strict=True, extra="forbid")
    closed: ClassVar[bool] = True

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if cls.closed and isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"unknown {_keys(unknown)}; the known keys are {', '.join(cls.model_fields)}")
        return data


class NodeFile(_Table):
    """The top level of the node config; each table is validated by its own model below."""

    node: str | None = None
    collector: dict[str, Any] = Field(default_factory=dict)
    agent: dict[str, Any] = Field(default_factory=dict)
    groups: dict[str, Any] = Field(default_factory=dict)
    samplers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    tenants: Annotated[list[dict[str, Any]], BeforeValidator(_rules)] = Field(default_factory=list)
    serving: Annotated[list[Any], BeforeValidator(_endpoints)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _node_name(self) -> NodeFile:
        if self.node and not re.fullmatch(NODE_PATTERN, self.node):
            raise ValueError(f"node name {self.node!r} is not valid (letters, digits, _ . : -)")
        return self


class CollectorTable(_Table):
    """``[collector]``"""

    url: str | None = None
    token: str | None = None
    token_file: str | None = None
    timeout_s: float = 10.0
    ca_file: str | None = None


class AgentTable(_Table):
    """``[agent]``"""

    cadence_s: Cadence = 1.0
    flush_s: float = Field(1.0, ge=0.05, le=600)
    spool_dir: str = "/var/lib/neighborscope/spool"
    spool_max_bytes: int = 256 * 2**20
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    shutdown_timeout_s: float = 10.0
    sysfs_root: str = "/sys"
    proc_root: str = "/proc"


class GroupsTable(RootModel[dict[str, Devices]]):
    """``[groups]``: group -> devices; a device is in one group at most."""

    model_config = ConfigDict(strict=True)

    @model_validator(mode="after")
    def _one_group_per_device(self) -> GroupsTable:
        seen: dict[str, str] = {}
        for group, devs in self.root.items():
            for d in devs:
                if d in seen:
                    raise ValueError(f"device {d!r} is in both group {seen[d]!r} and {group!r}")
                seen[d] = group
        return self


class SamplerTable(_Table):
    """``[samplers.<name>]``: the keys every sampler has; the others are the sampler's options."""

    model_config = ConfigDict(strict=True, extra="allow")
    closed: ClassVar[bool] = False

    enabled: Annotated[bool | Literal["auto"], BeforeValidator(_enabled)] | None = None
    cadence_s: Cadence | None = None
    devices: Devices | None = None


def _path(value: str, base_dir: Path | None) -> Path:
    return Path(value) if base_dir is None else base_dir / value


def parse_config(raw: dict[str, Any], base_dir: Path | None = None, source: str = "agent.toml") -> AgentConfig:
    """A parsed TOML document -> `AgentConfig`; raises `ConfigError` as ``<source>: [section] key: problem``."""

    def error(message: str, where: str = "") -> ConfigError:
        return ConfigError(f"{source}: {config_located(message, where)}")

    top = model_from_dict(NodeFile, raw, source)
    coll = model_from_dict(CollectorTable, top.collector, source, "collector")
    agent = model_from_dict(AgentTable, top.agent, source, "agent")
    groups = model_from_dict(GroupsTable, top.groups, source, "groups").root
    token = coll.token
    if coll.token_file:
        path = _path(coll.token_file, base_dir)
        try:
            token = path.read_text().strip()
        except OSError as exc:
            raise error(f"cannot read the token file {path}: {exc.strerror}", "collector.token_file") from None
    ca_file = _path(coll.ca_file, base_dir) if coll.ca_file else None
    if ca_file is not None and not ca_file.is_file():
        raise error(f"no CA file at {ca_file}", "collector.ca_file")
    cfg = AgentConfig(
        node=top.node or socket.gethostname().split(".")[0],
        collector_url=coll.url,
        token=token,
        timeout_s=coll.timeout_s,
        ca_file=ca_file,
        cadence_s=agent.cadence_s,
        flush_s=agent.flush_s,
        spool_dir=Path(agent.spool_dir) if agent.spool_dir else None,
        spool_max_bytes=agent.spool_max_bytes,
        metrics_port=agent.metrics_port,
        metrics_host=agent.metrics_host,
        shutdown_timeout_s=agent.shutdown_timeout_s,
        sysfs_root=Path(agent.sysfs_root),
        proc_root=Path(agent.proc_root),
        groups=groups,
        tenants=[dict(t) for t in top.tenants],
    )
    known = SAMPLERS.names()
    unknown = sorted(set(top.samplers) - set(known))
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        raise error(
            f"unknown sampler{'s' if len(unknown) > 1 else ''} {names}; the known samplers are {', '.join(known)}",
            "samplers",
        )
    if coll.url is not None:
        parts = urllib.parse.urlsplit(coll.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise error(f"the collector URL must look like http(s)://HOST[:PORT], not {coll.url!r}", "collector.url")
    for name in known:
        table = model_from_dict(SamplerTable, top.samplers.get(name, {}), source, f"samplers.{name}")
        options = dict(table.model_extra or {})
        if table.devices is not None:
            options["devices"] = table.devices
        enabled = table.enabled if table.enabled is not None else SAMPLERS.get(name).enabled_by_default
        cadence = table.cadence_s if table.cadence_s is not None else cfg.cadence_s
        cfg.samplers[name] = SamplerConfig(name, enabled, cadence, options)
    if cfg.tenants:
        cfg.samplers["tenants"].options["rules"] = cfg.tenants
    cfg.serving = _serving(top.serving, base_dir, source)
    serving = cfg.samplers.get("serving")
    if serving is not None:
        table = top.samplers.get("serving", {})
        if "cadence_s" not in table:
            serving.cadence_s = SERVING_CADENCE_S
        if serving.enabled == "auto":
            serving.enabled = bool(cfg.serving)
        elif serving.enabled is True and not cfg.serving:
            raise error("enabled = true needs at least one [[serving]] entry (group, url)", "samplers.serving.enabled")
        if cfg.serving:
            serving.options["endpoints"] = [dict(e) for e in cfg.serving]
    elif cfg.serving:
        raise error("[[serving]] entries need the serving sampler, which is not installed", "serving")
    return cfg


def _serving(raw: list[Any], base_dir: Path | None, source: str) -> list[dict[str, Any]]:
    """Validate the ``[[serving]]`` entries (one line per problem: ``<file>: serving[i].<key>: problem``) and resolve
    their file paths; the CA file must exist and the token file must be readable now."""
    if not raw:
        return []
    endpoints = endpoints_from_options(raw, source)
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, ep in enumerate(endpoints):
        entry = ep.model_dump(exclude_none=True, exclude_defaults=False)
        for key in ("ca_file", "bearer_token_file"):
            if getattr(ep, key):
                path = _path(entry[key], base_dir)
                entry[key] = str(path)
                try:
                    path.read_bytes()
                except OSError as exc:
                    what = "CA file" if key == "ca_file" else "bearer token file"
                    problems.append(f"{source}: serving[{i}].{key}: cannot read the {what} {path}: {exc.strerror}")
        out.append(entry)
    if problems:
        raise ConfigError("\n".join(problems))
    return out


def load_config(path: Path | None) -> AgentConfig:
    """Read a node config file (None: all defaults)."""
    if path is None:
        return parse_config({})
    return parse_config(read_toml(path), Path(path).parent, str(path))


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
        table.update({k: v for k, v in sc.options.items() if k not in ("rules", "endpoints")})
        if detected is not None:
            table["enabled"] = name in detected
            if detected.get(name):
                table["devices"] = detected[name]
        samplers[name] = table
    doc["samplers"] = samplers
    if cfg.tenants:
        doc["tenants"] = cfg.tenants
    if cfg.serving:
        redacted = "<redacted>"
        doc["serving"] = [{k: (redacted if k == "bearer_token" else v) for k, v in e.items()} for e in cfg.serving]
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


def init_config_toml(
    node: str,
    collector_url: str | None,
    detected: dict[str, list[str]],
    written_by: str = "neighborscope agent --init-config",
) -> str:
    """A commented node config for this host: its name, the collector URL, every sampler on or off as found here
    (``detected``: sampler -> devices, for the samplers that started), the defaults spelled out."""
    defaults = AgentTable()
    url = _toml_value(collector_url) if collector_url else '"http://COLLECTOR:8428"   # <- set the collector URL'
    lines = [
        f"# neighborscope agent config for {node}, written by `{written_by}`.",
        "# Check what the agent will run: neighborscope agent --config THIS_FILE --print-config",
        "",
        f"node = {_toml_value(node)}",
        "",
        "[collector]",
        f"url = {url}",
        '# token_file = "/etc/neighborscope/token"   # the node token (or token = "..."); the collector keeps its hash',
        '# ca_file = "/etc/neighborscope/ca.pem"     # https: trust this CA (default: the system\'s CAs)',
        f"timeout_s = {_toml_value(CollectorTable().timeout_s)}",
        "",
        "[agent]",
        f"cadence_s = {_toml_value(defaults.cadence_s)}          # seconds between samples ({MIN_CADENCE_S} .. "
        f"{MAX_CADENCE_S:g}), per sampler below",
        f"flush_s = {_toml_value(defaults.flush_s)}            # seconds between batches sent to the collector",
        f"spool_dir = {_toml_value(defaults.spool_dir)}   # batches wait here while the collector is "
        'unreachable ("" = in memory)',
        f"spool_max_bytes = {defaults.spool_max_bytes}   # beyond this, or when the disk is full, the oldest "
        "batches are dropped (counted)",
        f"shutdown_timeout_s = {_toml_value(defaults.shutdown_timeout_s)} # on SIGTERM, how long to try to "
        "deliver the spool",
        f"metrics_port = {defaults.metrics_port}             # Prometheus /metrics on the agent; 0 = off",
        "",
        "# [groups]                    # which devices share a co-tenant group (a list, or a range)",
        '# hive0 = "gpu0..gpu7"',
    ]
    for name in SAMPLERS.names():
        cls = SAMPLERS.get(name)
        lines += ["", f"[samplers.{name}]"]
        devices = detected.get(name)
        is_device_sampler = "accel" in cls.fields
        if name == "tenants":
            lines += ['enabled = "auto"            # on when [[tenants]] rules are given below']
        elif name == "serving":
            lines += ['enabled = "auto"            # on when [[serving]] endpoints are given below']
            lines += [
                f"# cadence_s = {_toml_value(SERVING_CADENCE_S)}        # the window of each row's latency quantiles"
            ]
            continue
        elif devices is None:
            why = "not enabled by default" if cls.enabled_by_default is False else "found nothing on this host"
            lines += [f"enabled = false             # {why}"]
        elif is_device_sampler:
            lines += [
                f"enabled = true              # found {len(devices)}: {', '.join(devices)}",
                "# devices = [...]            # restrict to these (names or PCI addresses); default: all found",
            ]
        else:
            lines += ["enabled = true"]
        lines += [f"# cadence_s = {_toml_value(defaults.cadence_s)}"]
    lines += [
        "",
        "# Co-tenants: processes whose cmdline, name, cgroup, container or user match a rule belong to its group;",
        "# one [[tenants]] table per rule.",
        "# [[tenants]]",
        '# group = "hive0"',
        '# cmdline = "sglang.*--port 30000"',
        "",
        "# Serving engines: each [[serving]] endpoint is scraped every cadence; its TTFT / ITL / TPOT / e2e / queue",
        "# quantiles, request and token rates, queue and KV-cache use become the `serving` measurement of its group.",
        "# Check an endpoint first: neighborscope scrape URL   (docs/serving.md)",
        "# [[serving]]",
        '# group = "hive0"                                # the group whose requests this engine serves',
        '# url = "http://127.0.0.1:30000/metrics"         # SGLang needs --enable-metrics; vLLM: http://HOST:8000/metrics',
        '# engine = "auto"                                # vllm | sglang | tgi | llamacpp | auto (from the metric names)',
        '# model = "meta-llama/Llama-3.1-8B-Instruct"     # only this model_name (default: one row per model)',
        '# bearer_token_file = "/etc/neighborscope/engine-token"   # when the endpoint wants a token',
        '# ca_file = "/etc/neighborscope/engine-ca.pem"            # https with a private CA',
        "# timeout_s = 2.0                                # a slower answer counts as down (up = false)",
        "",
    ]
    return "\n".join(lines)
