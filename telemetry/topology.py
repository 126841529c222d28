"""The declared topology of a node: which devices and tenants share a PCIe switch, a CPU socket, a cooling zone or
a power budget. One schema, one reader, one lookup rule (documented in ``docs/schema.md``, "Topology").

A topology file (JSON or TOML; the simulator and the demo write ``topology.json``)::

    {"node": "n1", "sockets": 2, "cores_per_socket": 32,
     "devices": [{"id": "gpu0", "vendor": "amd", "model": "MI300X", "group": "hive0", "pci_bus": "0000:11:00.0",
                  "pcie_switch": "sw0", "socket": 0, "cooling_zone": "zone0", "power_zone": "psu0"}],
     "groups": {"cpujob": {"socket": 0}}}

``groups`` declares host-only tenants (a CPU job): they share what they name. A CSV or Parquet file, or the store
artifact ``topology/<node>``, holds the rows directly (`TOPOLOGY_COLUMNS`; ``id`` is read as ``device``).

Everything reads through `lookup`: an explicit file, else the store's ``topology/<node>`` artifact of the first
node that has one, else none. `store_file` names the default explicit file of an embedded store
(``topology.json`` in the store directory or beside it).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from telemetry.errors import ConfigError

FILE_NAME = "topology.json"
SHARED = ("pcie_switch", "socket", "numa_node", "nic", "disk", "cooling_zone", "power_zone")
"""What a device or group can share: a PCIe switch, a CPU socket (its cores and memory controllers), a NUMA node
(memory bandwidth), a NIC (the network fabric), a disk (storage I/O), a cooling zone, a power budget."""
TOPOLOGY_COLUMNS: dict[str, pl.DataType] = {
    "node": pl.String(),
    "device": pl.String(),
    "group": pl.String(),
    "vendor": pl.String(),
    "model": pl.String(),
    "pci_bus": pl.String(),
    "pcie_switch": pl.String(),
    "socket": pl.String(),
    "numa_node": pl.String(),
    "nic": pl.String(),
    "disk": pl.String(),
    "cooling_zone": pl.String(),
    "power_zone": pl.String(),
}


def _text(value: Any) -> Any:
    return None if value is None else str(value)


class Shared(BaseModel):
    """The places a device or a host-only group shares with others (ids as text: ``socket`` 0 is ``"0"``)."""

    model_config = ConfigDict(extra="ignore")

    pcie_switch: str | None = None
    socket: str | None = None
    numa_node: str | None = None
    nic: str | None = None
    disk: str | None = None
    cooling_zone: str | None = None
    power_zone: str | None = None

    _as_text = field_validator(*SHARED, mode="before")(_text)


class Device(Shared):
    """One accelerator: its id, owner group, identity and shared places."""

    id: str | None = Field(None, alias="device")
    node: str | None = None
    group: str | None = None
    vendor: str | None = None
    model: str | None = None
    pci_bus: str | None = None

    model_config = ConfigDict(extra="ignore", populate_by_name=True, protected_namespaces=())

    _ids_as_text = field_validator("id", "node", "group", "pci_bus", mode="before")(_text)


class Topology(BaseModel):
    """A node's topology file: devices, host-only groups and the host's CPU layout (informational)."""

    model_config = ConfigDict(extra="ignore")

    node: str = ""
    sockets: int | None = None
    cores_per_socket: int | None = None
    cpu_count: int | None = None
    mem_total_bytes: int | None = None
    devices: list[Device] = Field(default_factory=list)
    groups: dict[str, Shared] = Field(default_factory=dict)

    def frame(self) -> pl.DataFrame:
        """One row per device and per host-only group (device null), `TOPOLOGY_COLUMNS`."""
        rows = [
            {
                "node": d.node or self.node,
                "device": d.id,
                "group": d.group,
                "vendor": d.vendor,
                "model": d.model,
                "pci_bus": d.pci_bus,
                **{k: getattr(d, k) for k in SHARED},
            }
            for d in self.devices
        ]
        rows += [{"node": self.node, "group": g, **s.model_dump()} for g, s in self.groups.items()]
        return pl.DataFrame(rows, schema=TOPOLOGY_COLUMNS) if rows else empty_frame()


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=TOPOLOGY_COLUMNS)


def topology_frame(doc: dict[str, Any] | pl.DataFrame) -> pl.DataFrame:
    """A parsed topology document (the file's JSON / TOML) or a frame of rows, as `TOPOLOGY_COLUMNS`."""
    if isinstance(doc, pl.DataFrame):
        df = doc.rename({"id": "device"}) if "id" in doc.columns and "device" not in doc.columns else doc
        return df.select(
            [
                pl.col(c).cast(pl.String) if c in df.columns else pl.lit(None, pl.String).alias(c)
                for c in TOPOLOGY_COLUMNS
            ]
        )
    try:
        return Topology.model_validate(doc).frame()
    except ValidationError as exc:
        raise ConfigError(f"not a topology: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None


def read_file(path: str | Path) -> pl.DataFrame:
    """A topology file (JSON, TOML, CSV or Parquet) as `TOPOLOGY_COLUMNS`; a bad file is a `ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"topology file {str(p)!r} does not exist")
    try:
        if p.suffix == ".parquet":
            return topology_frame(pl.read_parquet(p))
        if p.suffix == ".csv":
            return topology_frame(pl.read_csv(p))
        doc = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
        if not isinstance(doc, dict):
            raise ConfigError(f"a JSON object, not {type(doc).__name__}")
        return topology_frame(doc)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:  # ConfigError, JSON and TOML errors included
        raise ConfigError(f"{p}: not a topology file ({exc})") from None


def read_artifact(store: Any, node: str) -> pl.DataFrame | None:
    """The store's ``topology/<node>`` artifact as `TOPOLOGY_COLUMNS`, or None when it has none."""
    art = store.read_artifact(f"topology/{node}") if node else None
    if art is None or art.height == 0:
        return None
    frame = topology_frame(art)
    return frame.with_columns(pl.col("node").fill_null(node))


def store_file(store_url: str) -> Path | None:
    """``topology.json`` in an embedded store's directory or beside it (None for a remote store or none there)."""
    if not store_url or ("://" in store_url and not store_url.startswith("file://")):
        return None
    root = Path(store_url.removeprefix("file://"))
    return next((p for p in (root / FILE_NAME, root.parent / FILE_NAME) if p.is_file()), None)


def lookup(
    path: str | Path | None = None, store: Any = None, nodes: Iterable[str] = ()
) -> tuple[pl.DataFrame, str] | None:
    """The one lookup rule: the explicit file ``path``, else the ``topology/<node>`` artifact in ``store`` of the
    first of ``nodes`` that has one, else None. Returns (frame, where it was read from)."""
    if path is not None:
        return read_file(path), str(path)
    if store is not None:
        for n in nodes:
            art = read_artifact(store, n)
            if art is not None:
                return art, f"topology/{n}"
    return None


__all__ = [
    "FILE_NAME",
    "SHARED",
    "TOPOLOGY_COLUMNS",
    "Device",
    "Shared",
    "Topology",
    "empty_frame",
    "lookup",
    "read_artifact",
    "read_file",
    "store_file",
    "topology_frame",
]
