"""Sampler plugins, one module each, registered by name (the module's file stem).

A new vendor is one module here that declares what it claims (``vendor``, ``pci_vendor_ids``,
``enabled_by_default``, ``order``: see `agents.samplers.base.SamplerBase`), its line in `BUILTIN`, and a
fixture tree under ``tests/fixtures/sysfs/`` with its test. The registry (`agents.samplers.base.SAMPLERS`)
imports these modules on first use.
"""

from __future__ import annotations

BUILTIN = ("nvml", "amdgpu", "hwmon", "host", "tenants", "simulated", "disk", "net", "rdma", "serving")
"""The built-in sampler modules (file stems), one line per plugin."""

HELPERS = ("procfs", "cgroup", "resctrl")
"""Modules here that are not samplers: pure readers of procfs, cgroup and resctrl files that several samplers
share (a sampler imports them; they import no sampler)."""
