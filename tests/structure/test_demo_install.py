"""The quick start installs only neighborscope's own dependencies (`pip install -e .`, no `[dev]`): every
third-party module the product imports must come from a core dependency or one of theirs, never from a test
tool that only `[dev]` brings (a newcomer's demo would then fail, or `[dev]` would have to stay in the quick
start)."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("telemetry", "agents", "analysis", "dashboard")
OURS = set(PRODUCT)


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", req, maxsplit=1)[0].lower().replace("_", "-")


def _core_closure() -> set[str]:
    """Distributions a plain `pip install neighborscope` brings: its requirements without extras, transitively
    (each dependency's own non-extra requirements)."""
    todo = [_name(r) for r in metadata.requires("neighborscope") or [] if "extra ==" not in r]
    seen: set[str] = set()
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        try:
            reqs = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue
        for r in reqs:
            marker = r.split(";", 1)[1] if ";" in r else ""
            if "extra ==" in marker:
                continue
            todo.append(_name(r))
    # optional extras of core dependencies that neighborscope asks for by name (uvicorn[standard])
    for r in metadata.requires("neighborscope") or []:
        if "extra ==" not in r and "[" in r.split(";")[0]:
            extras = r.split("[", 1)[1].split("]", 1)[0].split(",")
            for dep in metadata.requires(_name(r)) or []:
                if any(re.search(rf"extra\s*==\s*['\"]{re.escape(e.strip())}['\"]", dep) for e in extras):
                    seen.add(_name(dep))
    return seen


def _imported_modules() -> dict[str, str]:
    """Top-level module -> first file importing it, over the product packages (function-level imports too)."""
    found: dict[str, str] = {}
    for pkg in PRODUCT:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for n in names:
                    top = n.split(".")[0]
                    if top not in OURS and top not in sys.stdlib_module_names:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_of_the_product_comes_with_a_plain_install():
    dists_of = metadata.packages_distributions()
    core = _core_closure()
    missing = []
    for module, where in sorted(_imported_modules().items()):
        dists = {d.lower().replace("_", "-") for d in dists_of.get(module, [])}
        if not dists:
            continue  # not installed here at all: an optional backend probed at run time (e.g. pyamdgpuinfo)
        if not dists & core:
            missing.append(f"{module} (from {sorted(dists)}, imported by {where})")
    assert not missing, "the product imports modules only [dev] installs: " + "; ".join(missing)


def test_the_closure_is_not_empty_nor_everything():
    core = _core_closure()
    assert {"polars", "streamlit", "fastapi", "authlib"} <= core
    assert "pytest" not in core and "playwright" not in core
