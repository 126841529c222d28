"""The node config: parsing, validation messages, device ranges, effective config."""

from __future__ import annotations

import tomllib

import pytest

from agents.config import effective_toml, expand_devices, init_config_toml, load_config, parse_config
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


# --- [[serving]] endpoints ------------------------------------------------------------------------------------


def test_serving_entries_turn_the_serving_sampler_on_with_a_five_second_window(tmp_path):
    (tmp_path / "engine-token").write_text("t0k\n")
    path = tmp_path / "agent.toml"
    path.write_text("""
node = "n1"
[[serving]]
group = "hive0"
url = "http://127.0.0.1:30000/metrics"
engine = "sglang"
bearer_token_file = "engine-token"
[[serving]]
group = "hive1"
url = "https://10.0.0.2:8000/metrics"
insecure_skip_verify = true
timeout_s = 1
""")
    cfg = load_config(path)
    sc = cfg.samplers["serving"]
    assert sc.enabled is True and sc.cadence_s == 5.0
    first, second = sc.options["endpoints"]
    assert first["group"] == "hive0" and first["engine"] == "sglang"
    assert first["bearer_token_file"] == str(tmp_path / "engine-token")  # relative to the config file
    assert second["engine"] == "auto" and second["timeout_s"] == 1.0 and second["insecure_skip_verify"] is True


def test_without_serving_entries_the_serving_sampler_stays_off():
    cfg = parse_config({"node": "n1"})
    assert cfg.samplers["serving"].enabled is False and cfg.serving == []


def test_the_serving_cadence_can_be_set():
    cfg = parse_config(
        {"node": "n1", "samplers": {"serving": {"cadence_s": 2}}, "serving": [{"group": "g", "url": "http://h/m"}]}
    )
    assert cfg.samplers["serving"].cadence_s == 2.0


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([{"url": "http://h:1/metrics"}], "agent.toml: serving[0].group: Field required"),
        ([{"group": "g", "url": "h:1/metrics"}], "agent.toml: serving[0].url: Value error, must look like http(s)://"),
        (
            [{"group": "g", "url": "http://h/m", "engine": "triton"}],
            "agent.toml: serving[0].engine: Input should be 'auto', 'vllm', 'sglang', 'tgi' or 'llamacpp'",
        ),
        ([{"group": "g", "url": "http://h/m", "urls": "x"}], "agent.toml: serving[0].urls: unknown key"),
        ([{"group": "g", "url": "http://h/m", "timeout_s": 0}], "agent.toml: serving[0].timeout_s: Input should be"),
        (
            [{"group": "g", "url": "http://h/m", "bearer_token": "a", "bearer_token_file": "b"}],
            "agent.toml: serving[0]: give bearer_token or bearer_token_file, not both",
        ),
        (
            [{"group": "g", "url": "http://h/m"}, {"group": "h", "url": "http://h/m"}],
            "agent.toml: serving[1].url: http://h/m is already scraped by serving[0]",
        ),
        ([{"group": "g", "url": "http://h/m", "ca_file": "nope.pem"}], "agent.toml: serving[0].ca_file: cannot read"),
        ({"group": "g"}, "agent.toml: serving: must be a list of endpoints ([[serving]])"),
    ],
)
def test_bad_serving_entries_say_which_entry_and_key(tmp_path, entries, message):
    with pytest.raises(ConfigError) as exc:
        parse_config({"node": "n1", "serving": entries}, tmp_path)
    assert str(exc.value).startswith(message.replace("Value error, ", ""))
    assert "\n" not in str(exc.value)


def test_two_bad_serving_entries_give_one_line_each():
    with pytest.raises(ConfigError) as exc:
        parse_config({"node": "n1", "serving": [{"group": "g"}, {"group": "h", "url": "ftp://x"}]})
    lines = str(exc.value).splitlines()
    assert lines[0] == "agent.toml: serving[0].url: Field required"
    assert lines[1].startswith("agent.toml: serving[1].url: must look like http(s)://HOST[:PORT]/metrics")


def test_serving_enabled_without_entries_is_an_error():
    with pytest.raises(
        ConfigError, match=r"\[samplers.serving\] enabled: enabled = true needs at least one \[\[serving"
    ):
        parse_config({"node": "n1", "samplers": {"serving": {"enabled": True}}})


def test_effective_config_lists_the_serving_entries_without_their_token():
    cfg = parse_config({"node": "n1", "serving": [{"group": "g", "url": "http://h/m", "bearer_token": "s3cret"}]})
    text = effective_toml(cfg)
    assert "s3cret" not in text
    doc = tomllib.loads(text)
    assert doc["serving"][0]["bearer_token"] == "<redacted>" and doc["serving"][0]["url"] == "http://h/m"
    assert "endpoints" not in doc["samplers"]["serving"]


def test_init_config_shows_a_commented_serving_example_that_parses_once_uncommented():
    text = init_config_toml("n1", "http://c:8428", {"host": []})
    assert '[samplers.serving]\nenabled = "auto"' in text
    block = text[text.index("# [[serving]]") :].splitlines()
    lines = [line.removeprefix("# ") for line in block if line.startswith("# ")]
    example = "\n".join(line for line in lines if "_file" not in line)  # those files must exist
    doc = tomllib.loads(example)
    cfg = parse_config({"node": "n1", **doc})
    assert cfg.serving[0]["url"] == "http://127.0.0.1:30000/metrics" and cfg.samplers["serving"].enabled is True
