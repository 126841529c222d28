"""`neighborscope dashboard --login` refuses to start (exit 2, one line) unless the OIDC sign-in can work."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.login import REQUIRED, check_login
from telemetry.errors import ConfigError
from tests.dashboard.test_cli import run_root

GOOD = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a long random string",
    "client_id": "neighborscope",
    "client_secret": "s3cret",
    "server_metadata_url": "http://127.0.0.1:9400/.well-known/openid-configuration",
}


def write_secrets(root: Path, auth: dict[str, str]) -> Path:
    path = root / ".streamlit" / "secrets.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[auth]\n" + "".join(f'{k} = "{v}"\n' for k, v in auth.items()))
    return path


def test_a_complete_auth_section_passes(tmp_path: Path):
    write_secrets(tmp_path / "cwd", GOOD)
    assert check_login(cwd=tmp_path / "cwd", home=tmp_path / "home") == GOOD["server_metadata_url"]


def test_the_project_secrets_file_wins_over_the_home_one_key_by_key(tmp_path: Path):
    write_secrets(tmp_path / "home", {**GOOD, "client_id": "from-home"})
    write_secrets(tmp_path / "cwd", {"server_metadata_url": "https://idp.example/.well-known/openid-configuration"})
    assert (
        check_login(cwd=tmp_path / "cwd", home=tmp_path / "home")
        == "https://idp.example/.well-known/openid-configuration"
    )


def test_no_secrets_file_names_where_it_looked(tmp_path: Path):
    with pytest.raises(
        ConfigError,
        match=r"needs an \[auth\] section in .*home/.streamlit/secrets.toml or "
        r".*cwd/.streamlit/secrets.toml",
    ):
        check_login(cwd=tmp_path / "cwd", home=tmp_path / "home")


@pytest.mark.parametrize("missing", REQUIRED)
def test_each_missing_key_is_named(tmp_path: Path, missing: str):
    write_secrets(tmp_path / "cwd", {k: v for k, v in GOOD.items() if k != missing})
    with pytest.raises(ConfigError, match=rf"lacks {missing} "):
        check_login(cwd=tmp_path / "cwd", home=tmp_path / "home")


def test_the_redirect_uri_must_be_the_dashboards_callback(tmp_path: Path):
    write_secrets(tmp_path / "cwd", {**GOOD, "redirect_uri": "http://127.0.0.1:8501/"})
    with pytest.raises(ConfigError, match="must end in /oauth2callback"):
        check_login(cwd=tmp_path / "cwd", home=tmp_path / "home")


def test_a_metadata_url_that_is_not_http_is_refused(tmp_path: Path):
    write_secrets(tmp_path / "cwd", {**GOOD, "server_metadata_url": "idp.example/.well-known/openid-configuration"})
    with pytest.raises(ConfigError, match=r"server_metadata_url .* is not an http"):
        check_login(cwd=tmp_path / "cwd", home=tmp_path / "home")


def test_a_broken_secrets_file_is_one_line(tmp_path: Path):
    path = tmp_path / "cwd" / ".streamlit" / "secrets.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[auth\n")
    with pytest.raises(ConfigError, match=f"cannot read {path}"):
        check_login(cwd=tmp_path / "cwd", home=tmp_path / "home")


def test_dashboard_login_without_auth_exits_2_with_one_line(monkeypatch, capsys, tmp_path: Path):
    (tmp_path / "store").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, err = run_root(monkeypatch, capsys, "dashboard", "--store", str(tmp_path / "store"), "--login")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: --login needs an [auth] section in ")
    assert "Traceback" not in err
