"""One topology schema, one reader, one lookup rule (`telemetry.topology`)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from telemetry.errors import ConfigError
from telemetry.topology import TOPOLOGY_COLUMNS, lookup, read_file, store_file, topology_frame

DOC = {
    "node": "n1",
    "devices": [
        {
            "id": "gpu0",
            "vendor": "amd",
            "model": "MI300X",
            "group": "hive0",
            "pci_bus": "0000:11:00.0",
            "pcie_switch": "sw0",
            "socket": 0,
            "cooling_zone": "zone0",
        },
    ],
    "groups": {"cpujob": {"socket": 0}},
}


class FakeStore:
    def __init__(self, artifacts: dict[str, pl.DataFrame]) -> None:
        self.artifacts = artifacts

    def read_artifact(self, key: str) -> pl.DataFrame | None:
        return self.artifacts.get(key)


def test_devices_and_host_only_groups_become_rows_with_ids_as_text() -> None:
    frame = topology_frame(DOC)
    assert dict(frame.schema) == TOPOLOGY_COLUMNS
    gpu = frame.row(0, named=True)
    assert (gpu["node"], gpu["device"], gpu["pcie_switch"], gpu["socket"]) == ("n1", "gpu0", "sw0", "0")
    assert frame.filter(pl.col("group") == "cpujob")["socket"].to_list() == ["0"]
    assert topology_frame({}).height == 0


def test_a_frame_with_id_reads_as_device() -> None:
    frame = topology_frame(pl.DataFrame({"id": ["gpu1"], "group": ["a"], "socket": [1]}))
    assert frame.select("device", "group", "socket").rows() == [("gpu1", "a", "1")]


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_json_and_toml_files_read_the_same(tmp_path: Path, suffix: str) -> None:
    p = tmp_path / f"topology{suffix}"
    if suffix == ".json":
        p.write_text(json.dumps(DOC))
    else:
        p.write_text(
            'node = "n1"\n[[devices]]\nid = "gpu0"\nvendor = "amd"\nmodel = "MI300X"\ngroup = "hive0"\n'
            'pci_bus = "0000:11:00.0"\npcie_switch = "sw0"\nsocket = 0\ncooling_zone = "zone0"\n'
            "[groups.cpujob]\nsocket = 0\n"
        )
    assert read_file(p).equals(topology_frame(DOC))


def test_a_file_that_is_not_a_topology_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[1, 2")
    with pytest.raises(ConfigError, match="not a topology file"):
        read_file(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a topology file"):
        read_file(tmp_path / "list.json")
    with pytest.raises(ConfigError, match="does not exist"):
        read_file(tmp_path / "missing.json")


def test_an_explicit_file_wins_over_the_store_artifact(tmp_path: Path) -> None:
    p = tmp_path / "topology.json"
    p.write_text(json.dumps(DOC))
    store = FakeStore({"topology/n2": pl.DataFrame({"device": ["gpu9"], "group": ["b"]})})
    frame, source = lookup(p, store, ["n2"])
    assert (frame["device"][0], source) == ("gpu0", str(p))
    frame, source = lookup(None, store, ["n1", "n2"])
    assert (frame["device"][0], frame["node"][0], source) == ("gpu9", "n2", "topology/n2")
    assert lookup(None, store, ["n1"]) is None
    assert lookup() is None


def test_an_embedded_store_finds_its_file_in_or_beside_its_directory(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    assert store_file(str(tmp_path / "store")) is None
    (tmp_path / "topology.json").write_text("{}")
    assert store_file(str(tmp_path / "store")) == tmp_path / "topology.json"
    (tmp_path / "store" / "topology.json").write_text("{}")
    assert store_file(str(tmp_path / "store")) == tmp_path / "store" / "topology.json"
    assert store_file("influx://h:8086/db") is None
