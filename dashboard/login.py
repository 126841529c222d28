"""What `neighborscope dashboard --login` checks before it starts serving (no Streamlit imported here).

Streamlit's OIDC sign-in (`st.login`) reads ``[auth]`` from its secrets files and needs Authlib; without either it
fails only when a visitor clicks "Log in", with a traceback in the browser. So the command checks first and refuses
to start (exit 2, one line) when the sign-in could not work:

- Authlib importable (Streamlit's ``streamlit[auth]`` extra);
- an ``[auth]`` section in the secrets files Streamlit reads (``~/.streamlit/secrets.toml``, then
  ``.streamlit/secrets.toml`` in the directory the dashboard starts from; later files win), holding
  ``redirect_uri`` (ending in ``/oauth2callback``), ``cookie_secret``, ``client_id``, ``client_secret`` and
  ``server_metadata_url`` (an http(s) URL of the provider's ``.well-known/openid-configuration``).
"""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from telemetry.errors import ConfigError

REQUIRED = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")


def secrets_files(cwd: Path | None = None, home: Path | None = None) -> list[Path]:
    """The secrets files Streamlit reads, in its order (later ones win)."""
    return [(home or Path.home()) / ".streamlit" / "secrets.toml", (cwd or Path.cwd()) / ".streamlit" / "secrets.toml"]


def auth_section(files: list[Path]) -> tuple[dict[str, Any], list[Path]]:
    """The merged ``[auth]`` section of ``files`` (later files win, key by key) and the files that exist."""
    merged: dict[str, Any] = {}
    found = []
    for path in files:
        if not path.is_file():
            continue
        found.append(path)
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None
        auth = doc.get("auth", {})
        if not isinstance(auth, dict):
            raise ConfigError("[auth] must be a table", where=str(path))
        merged.update(auth)
    return merged, found


def check_login(cwd: Path | None = None, home: Path | None = None) -> str:
    """Raise `ConfigError` (one line) unless ``--login`` can work here; returns the provider's metadata URL."""
    if importlib.util.find_spec("authlib") is None:
        raise ConfigError(
            "--login needs Authlib, which is not installed: pip install 'streamlit[auth]' "
            "(or reinstall neighborscope, which depends on it)"
        )
    files = secrets_files(cwd, home)
    auth, found = auth_section(files)
    where = " or ".join(str(p) for p in files)
    if not found:
        raise ConfigError(
            f"--login needs an [auth] section in {where}; none of them exists (docs/dashboard.md, 'Login', shows one)"
        )
    missing = [k for k in REQUIRED if not isinstance(auth.get(k), str) or not auth[k].strip()]
    if missing:
        raise ConfigError(
            f"--login: [auth] in {', '.join(map(str, found))} lacks {', '.join(missing)} "
            f"(needs {', '.join(REQUIRED)}; docs/dashboard.md, 'Login')"
        )
    if not auth["redirect_uri"].rstrip("/").endswith("/oauth2callback"):
        raise ConfigError(
            f"--login: [auth] redirect_uri {auth['redirect_uri']!r} must end in /oauth2callback "
            "(the dashboard's own callback path, registered with the identity provider)"
        )
    for key in ("redirect_uri", "server_metadata_url"):
        url = urlparse(auth[key])
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ConfigError(f"--login: [auth] {key} {auth[key]!r} is not an http(s) URL")
    return str(auth["server_metadata_url"])
