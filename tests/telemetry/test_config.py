"""telemetry.config: every config file is read one way, and a bad one says which file, which key and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from telemetry.collector.settings import load_settings
from telemetry.config import Duration, load_toml_model, model_from_dict, parse_duration
from telemetry.errors import ConfigError


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_len: int = 30
    scale: str = "log"


class Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    regression: Inner = Field(default_factory=Inner)
    rule: list[Inner] = Field(default_factory=list)


def _write(tmp_path: Path, text: str, name: str = "x.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_valid_file_becomes_the_model(tmp_path: Path) -> None:
    doc = load_toml_model(_write(tmp_path, "[regression]\nwindow_len = 12\n"), Doc)
    assert doc.regression.window_len == 12 and doc.rule == []


def test_a_section_is_validated_alone_and_defaults_when_absent(tmp_path: Path) -> None:
    p = _write(tmp_path, '[regression]\nscale = "linear"\n[other]\nanything = 1\n')
    assert load_toml_model(p, Inner, section="regression").scale == "linear"
    assert load_toml_model(p, Inner, section="missing") == Inner()


def test_each_problem_is_one_line_naming_file_section_and_key(tmp_path: Path) -> None:
    p = _write(tmp_path, '[regression]\nwindow_len = "many"\nwindw = 3\n')
    with pytest.raises(ConfigError) as exc:
        load_toml_model(p, Inner, section="regression")
    assert str(exc.value).splitlines() == [
        f"{p}: [regression] window_len: Input should be a valid integer, unable to parse string as an integer"
        " (got 'many')",
        f"{p}: [regression] windw: unknown key (got 3)",
    ]


def test_list_items_are_named_by_index(tmp_path: Path) -> None:
    p = _write(tmp_path, "[[rule]]\nwindow_len = 1\n[[rule]]\nbogus = true\n")
    with pytest.raises(ConfigError) as exc:
        load_toml_model(p, Doc)
    assert str(exc.value) == f"{p}: rule[1].bogus: unknown key (got True)"


def test_missing_file_bad_toml_and_a_section_that_is_not_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: no such file"):
        load_toml_model(tmp_path / "nope.toml", Doc)
    with pytest.raises(ConfigError, match=r"x\.toml: not valid TOML: .*line 1"):
        load_toml_model(_write(tmp_path, "[regression\n"), Doc)
    with pytest.raises(ConfigError, match=r"x\.toml: \[regression\]: must be a table"):
        load_toml_model(_write(tmp_path, "regression = 3\n"), Inner, section="regression")
    with pytest.raises(ConfigError, match="is a directory"):
        load_toml_model(tmp_path, Doc)


def test_model_from_dict_names_its_source() -> None:
    with pytest.raises(ConfigError, match=r"^defaults: regression\.scale: Input should be a valid string"):
        model_from_dict(Doc, {"regression": {"scale": 3}}, "defaults")


def test_collector_settings_errors_name_the_file_and_key(tmp_path: Path) -> None:
    p = _write(tmp_path, '[collector]\nmax_body_bytes = 5\n[nodes.n1]\ntoken = "short"\n', "collector.toml")
    with pytest.raises(ConfigError) as exc:
        load_settings(p)
    lines = str(exc.value).splitlines()
    assert lines[0].startswith(f"{p}: collector.max_body_bytes: Input should be greater than or equal to 1024")
    assert lines[1].startswith(f"{p}: nodes.n1.token: String should have at least 8 characters")
    with pytest.raises(ConfigError, match=r"nodes\.n1: give exactly one of token or token_sha256"):
        load_settings(_write(tmp_path, "[nodes.n1]\n", "collector.toml"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "absent.toml")


def test_collector_tokens_from_options_join_the_file(tmp_path: Path) -> None:
    p = _write(tmp_path, '[nodes.n1]\ntoken = "token-of-n1"\n', "collector.toml")
    settings = load_settings(p, {"n2": "token-of-n2"})
    assert settings.node_for_token("token-of-n1") == "n1"
    assert settings.node_for_token("token-of-n2") == "n2"
    with pytest.raises(ConfigError, match=r"^options: nodes\.n3\.token: String should have at least 8"):
        load_settings(None, {"n3": "short"})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), (42, 42), (1.5, 1.5), ("2d", 172800)],
)
def test_durations_parse_like_prometheus(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "", "-1s", -3, True, "m5"])
def test_bad_durations_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


class Timed(BaseModel):
    timeout_s: Duration = Field(5.0, alias="timeout")


def test_a_duration_field_takes_a_string_or_seconds_and_names_the_key_when_bad(tmp_path: Path) -> None:
    assert model_from_dict(Timed, {"timeout": "1h30m"}, "t.toml").timeout_s == 5400
    assert model_from_dict(Timed, {"timeout": 7}, "t.toml").timeout_s == 7
    with pytest.raises(ConfigError, match=r"^t\.toml: timeout: expected a duration such as '5m'"):
        model_from_dict(Timed, {"timeout": "soon"}, "t.toml")
