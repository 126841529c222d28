"""Structural tests: every sampler registered under its file name, with fields the schema declares and what it
claims (vendor, PCI vendor ids, default, build order) read from the registry."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from agents.samplers import BUILTIN, HELPERS
from agents.samplers.base import (
    SAMPLERS,
    SamplerBase,
    build_order,
    check_device_claims,
    pci_vendors_claimed,
    register,
    sampler_class,
)
from telemetry.errors import ConfigError
from telemetry.schema import MEASUREMENTS

SAMPLER_DIR = Path(__file__).resolve().parents[3] / "agents" / "samplers"


def test_every_sampler_module_is_builtin_and_registered_under_its_file_name():
    stems = sorted(p.stem for p in SAMPLER_DIR.glob("*.py") if p.stem not in ("__init__", "base", *HELPERS))
    assert sorted(BUILTIN) == stems
    assert sorted(SAMPLERS.names()) == stems
    for stem in stems:
        cls = SAMPLERS.get(stem)
        assert cls.__module__ == f"agents.samplers.{stem}"
        assert cls.name == stem


@pytest.mark.parametrize("module", BUILTIN)
def test_every_sampler_declares_fields_with_units(module):
    importlib.import_module(f"agents.samplers.{module}")
    cls = SAMPLERS.get(module)
    assert cls.fields, f"{cls.name} declares no fields"
    for meas, names in cls.fields.items():
        for name in names:
            assert MEASUREMENTS[meas].field_index[name].unit


def test_a_second_sampler_with_the_same_name_is_refused():
    SAMPLERS.load()
    with pytest.raises(ValueError, match="registered twice"):
        register("host")(type("Impostor", (SamplerBase,), {"fields": {}}))


def test_a_field_the_schema_does_not_know_is_refused():
    with pytest.raises(ValueError, match="not in measurement"):
        register("bogus_sampler")(type("Bogus", (SamplerBase,), {"fields": {"accel": ("power_mw",)}}))


def test_two_samplers_claiming_one_device_are_refused():
    check_device_claims({"nvml": ["gpu0"], "hwmon": ["tt0"]})
    with pytest.raises(ConfigError, match="gpu0"):
        check_device_claims({"nvml": ["gpu0"], "simulated": ["gpu0"]})


def test_an_unknown_sampler_is_a_config_error_naming_the_known_ones():
    with pytest.raises(ConfigError, match=r"^\[samplers\] unknown sampler 'gpu'; known: nvml, amdgpu, hwmon, "):
        sampler_class("gpu")


@pytest.mark.parametrize("module", BUILTIN)
def test_every_sampler_declares_what_it_claims(module):
    cls = SAMPLERS.get(module)
    assert cls.vendor is None or (cls.vendor.isidentifier() and cls.vendor.islower())
    assert all(isinstance(v, int) and 0 < v <= 0xFFFF for v in cls.pci_vendor_ids)
    assert cls.enabled_by_default in (True, False, "auto")
    assert isinstance(cls.order, int)


def test_no_two_samplers_claim_one_pci_vendor():
    claims = [(v, name) for name, cls in SAMPLERS.items() for v in cls.pci_vendor_ids]
    assert len({v for v, _ in claims}) == len(claims)
    assert pci_vendors_claimed(but="hwmon") == {0x10DE: "nvml", 0x1002: "amdgpu"}


def test_samplers_feeding_others_are_built_first():
    order = build_order()
    assert order.index("nvml") < order.index("tenants")  # nvml gives tenants accelerator memory per PID
    assert order[-1] == "tenants"
