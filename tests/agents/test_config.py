"""The node config: parsing, validation messages, device ranges, effective config."""

from __future__ import annotations

import tomllib

import pytest

from agents.config import effective_toml, expand_devices, load_config, parse_config
from telemetry.errors import ConfigError


def test_defaults_sample_the_host_every_second_and_auto_detect_devices():
    cfg = parse_config({"node": "n1"})
    assert cfg.samplers["host"].enabled is True and cfg.samplers["host"].cadence_s == 1.0
    assert cfg.samplers["nvml"].enabled == "auto" and cfg.samplers["simulated"].enabled is False


def test_a_full_config(tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    path = tmp_path / "agent.toml"
    path.write_text("""
node = "node7"
[collector]
url = "http://c:8428"
token_file = "token"
[agent]
cadence_s = 0.5
spool_dir = ""
[groups]
hive0 = "gpu0..gpu7"
hive1 = ["amd0", "amd1"]
[samplers.host]
cadence_s = 0.1
[samplers.nvml]
enabled = true
devices = "gpu0..gpu3"
[[tenants]]
group = "hive0"
cmdline = "sglang"
""")
    cfg = load_config(path)
    assert cfg.node == "node7" and cfg.token == "s3cret" and cfg.spool_dir is None
    assert cfg.groups["hive0"] == [f"gpu{i}" for i in range(8)]
    assert cfg.device_groups()["amd1"] == "hive1"
    assert cfg.samplers["host"].cadence_s == 0.1 and cfg.samplers["tenants"].cadence_s == 0.5
    assert cfg.samplers["nvml"].options["devices"] == ["gpu0", "gpu1", "gpu2", "gpu3"]
    assert cfg.samplers["tenants"].options["rules"] == [{"group": "hive0", "cmdline": "sglang"}]


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"agent": {"cadence_s": 0.01}}, "agent.cadence_s"),
        ({"samplers": {"host": {"cadence_s": 0.05}}}, "samplers.host.cadence_s"),
        ({"samplers": {"gpu": {}}}, "samplers"),
        ({"samplers": {"nvml": {"enabled": "yes"}}}, "samplers.nvml.enabled"),
        ({"groups": {"a": ["gpu0"], "b": ["gpu0"]}}, "groups.b"),
        ({"collector": {"uri": "x"}}, "collector"),
        ({"node": "bad node!"}, "node"),
        ({"groups": {"a": "gpu3..gpu1"}}, "groups.a"),
    ],
)
def test_bad_configs_say_what_and_where(raw, where):
    with pytest.raises(ConfigError) as exc:
        parse_config({"node": "n1", **raw} if "node" not in raw else raw)
    assert where in str(exc.value)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("node = \n")
    with pytest.raises(ConfigError, match=r"agent\.toml: not valid TOML"):
        load_config(path)


def test_device_ranges_expand():
    assert expand_devices("gpu0..gpu2", "x") == ["gpu0", "gpu1", "gpu2"]
    assert expand_devices(["tt0", "gpu1..gpu2"], "x") == ["tt0", "gpu1", "gpu2"]


def test_effective_config_is_valid_toml_with_detected_devices_and_no_token():
    cfg = parse_config({"node": "n1", "collector": {"url": "http://c", "token": "s3cret"},
                        "tenants": [{"group": "g", "name": "python"}]})
    text = effective_toml(cfg, {"host": [], "nvml": ["gpu0", "gpu1"]})
    assert "s3cret" not in text
    doc = tomllib.loads(text)
    assert doc["samplers"]["nvml"] == {"enabled": True, "cadence_s": 1.0, "devices": ["gpu0", "gpu1"]}
    assert doc["samplers"]["amdgpu"]["enabled"] is False
    assert doc["tenants"] == [{"group": "g", "name": "python"}]
    assert parse_config({k: v for k, v in doc.items() if k != "collector"}).node == "n1"
