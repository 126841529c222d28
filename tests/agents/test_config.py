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
    ("raw", "message"),
    [
        ({"agent": {"cadence_s": 0.01}}, "agent.toml: [agent] cadence_s: 0.01 s is outside 0.1 .. 3600.0 s"),
        ({"samplers": {"host": {"cadence_s": 0.05}}}, "agent.toml: [samplers.host] cadence_s: 0.05 s is outside"),
        ({"samplers": {"gpu": {}}}, "agent.toml: [samplers] unknown sampler 'gpu'; the known samplers are nvml, "),
        (
            {"samplers": {"nvml": {"enabled": "yes"}}},
            'agent.toml: [samplers.nvml] enabled: must be true, false or "auto"',
        ),
        ({"samplers": {"nvml": {"enabled": 1}}}, 'agent.toml: [samplers.nvml] enabled: must be true, false or "auto"'),
        ({"groups": {"a": ["gpu0"], "b": ["gpu0"]}}, "agent.toml: [groups] device 'gpu0' is in both group 'a' and 'b'"),
        (
            {"collector": {"uri": "x"}},
            "agent.toml: [collector] unknown key 'uri'; the known keys are url, token, token_file,",
        ),
        ({"collector": {"timeout_s": "5"}}, "agent.toml: [collector] timeout_s: Input should be a valid number"),
        ({"agent": {"flush_s": 0.01}}, "agent.toml: [agent] flush_s: Input should be greater than or equal to 0.05"),
        ({"agent": {"metrics_port": True}}, "agent.toml: [agent] metrics_port: Input should be a valid integer"),
        ({"node": "bad node!"}, "agent.toml: node name 'bad node!' is not valid"),
        ({"groups": {"a": "gpu3..gpu1"}}, "agent.toml: [groups] a: bad device range 'gpu3..gpu1'"),
        ({"tenants": {"group": "g"}}, "agent.toml: tenants: must be a list of rules ([[tenants]])"),
        (
            {"nodes": "n2"},
            "agent.toml: unknown key 'nodes'; the known keys are node, collector, agent, groups, samplers,",
        ),
    ],
)
def test_bad_configs_say_what_and_where_in_one_sentence(raw, message):
    with pytest.raises(ConfigError) as exc:
        parse_config({"node": "n1", **raw} if "node" not in raw else raw)
    assert str(exc.value).startswith(message)
    assert "\n" not in str(exc.value)  # one problem, one line: no tuple, no pydantic dump


def test_a_config_error_names_the_file_it_came_from(tmp_path):
    path = tmp_path / "node7.toml"
    path.write_text("[agent]\ncadence_s = 0.01\n")
    with pytest.raises(ConfigError, match=r"^.*node7\.toml: \[agent\] cadence_s: 0\.01 s is outside"):
        load_config(path)


def test_an_unreadable_token_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"\[collector\] token_file: cannot read the token file .*nope"):
        parse_config({"node": "n1", "collector": {"token_file": "nope"}}, tmp_path)


def test_unset_keys_take_the_defaults():
    cfg = parse_config({"node": "n1", "agent": {"flush_s": 2}})
    assert cfg.flush_s == 2.0 and cfg.cadence_s == 1.0 and cfg.timeout_s == 10.0
    assert cfg.spool_dir is not None and cfg.spool_max_bytes == 256 * 2**20 and cfg.metrics_port == 0


def test_sampler_options_pass_through_to_the_sampler():
    cfg = parse_config({"node": "n1", "samplers": {"hwmon": {"flit_bytes": 4, "devices": "tt0..tt1"}}})
    assert cfg.samplers["hwmon"].options == {"flit_bytes": 4, "devices": ["tt0", "tt1"]}


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("node = \n")
    with pytest.raises(ConfigError, match=r"agent\.toml: not valid TOML"):
        load_config(path)


def test_device_ranges_expand():
    assert expand_devices("gpu0..gpu2", "x") == ["gpu0", "gpu1", "gpu2"]
    assert expand_devices(["tt0", "gpu1..gpu2"], "x") == ["tt0", "gpu1", "gpu2"]


def test_effective_config_is_valid_toml_with_detected_devices_and_no_token():
    cfg = parse_config(
        {
            "node": "n1",
            "collector": {"url": "http://c", "token": "s3cret"},
            "tenants": [{"group": "g", "name": "python"}],
        }
    )
    text = effective_toml(cfg, {"host": [], "nvml": ["gpu0", "gpu1"]})
    assert "s3cret" not in text
    doc = tomllib.loads(text)
    assert doc["samplers"]["nvml"] == {"enabled": True, "cadence_s": 1.0, "devices": ["gpu0", "gpu1"]}
    assert doc["samplers"]["amdgpu"]["enabled"] is False
    assert doc["tenants"] == [{"group": "g", "name": "python"}]
    assert parse_config({k: v for k, v in doc.items() if k != "collector"}).node == "n1"
