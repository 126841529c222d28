"""Structural tests: every sampler registered under its file name, with fields the schema declares."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from agents.samplers import BUILTIN, load_builtin
from agents.samplers.base import SAMPLERS, SamplerBase, check_device_claims, register
from telemetry.errors import ConfigError
from telemetry.schema import MEASUREMENTS

SAMPLER_DIR = Path(__file__).resolve().parents[3] / "agents" / "samplers"


def test_every_sampler_module_is_builtin_and_registered_under_its_file_name():
    load_builtin()
    stems = sorted(p.stem for p in SAMPLER_DIR.glob("*.py") if p.stem not in ("__init__", "base"))
    assert sorted(m.rsplit(".", 1)[1] for m in BUILTIN) == stems
    for stem in stems:
        cls = SAMPLERS[stem]
        assert cls.__module__ == f"agents.samplers.{stem}"
        assert cls.name == stem


@pytest.mark.parametrize("module", BUILTIN)
def test_every_sampler_declares_fields_with_units(module):
    importlib.import_module(module)
    cls = SAMPLERS[module.rsplit(".", 1)[1]]
    assert cls.fields, f"{cls.name} declares no fields"
    for meas, names in cls.fields.items():
        for name in names:
            assert MEASUREMENTS[meas].field_index[name].unit


def test_a_second_sampler_with_the_same_name_is_refused():
    load_builtin()
    with pytest.raises(ValueError, match="registered twice"):
        register("host")(type("Impostor", (SamplerBase,), {"fields": {}}))


def test_a_field_the_schema_does_not_know_is_refused():
    with pytest.raises(ValueError, match="not in measurement"):
        register("bogus_sampler")(type("Bogus", (SamplerBase,), {"fields": {"accel": ("power_mw",)}}))


def test_two_samplers_claiming_one_device_are_refused():
    check_device_claims({"nvml": ["gpu0"], "hwmon": ["tt0"]})
    with pytest.raises(ConfigError, match="gpu0"):
        check_device_claims({"nvml": ["gpu0"], "simulated": ["gpu0"]})
