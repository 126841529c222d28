"""Sampler plugins, one module each, registered by name (the module's file stem).

A new vendor is one module here plus its line in `BUILTIN` and a fixture tree under
``tests/fixtures/sysfs/``.
"""

from __future__ import annotations

import importlib

BUILTIN = (
    "agents.samplers.nvml",
    "agents.samplers.amdgpu",
    "agents.samplers.hwmon",
    "agents.samplers.host",
    "agents.samplers.tenants",
    "agents.samplers.simulated",
)


def load_builtin() -> None:
    """Import every built-in sampler so it registers itself."""
    for module in BUILTIN:
        importlib.import_module(module)
