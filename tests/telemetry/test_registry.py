"""The one plugin registry: register by name, look up, list in built-in order, detect by content."""

from __future__ import annotations

import pytest

from telemetry.errors import ConfigError
from telemetry.registry import Registry


class Plugin:
    name = ""

    def sniff(self, head: str) -> bool:
        return head.startswith(self.name)


def test_a_registered_class_is_found_by_its_name_and_knows_it():
    reg: Registry[type] = Registry("widget")

    @reg.register("blue_widget")
    class Blue:
        pass

    assert reg.get("blue_widget") is Blue and Blue.name == "blue_widget"  # type: ignore[attr-defined]
    assert reg.get("blue-widget") is Blue  # a dash reads as an underscore
    assert "blue_widget" in reg and len(reg) == 1


def test_an_unknown_name_raises_the_given_error_naming_the_known_ones():
    reg: Registry[type] = Registry("widget", error=ConfigError)
    reg.register("a")(type("A", (), {}))
    reg.register("b")(type("B", (), {}))
    with pytest.raises(ConfigError, match=r"^unknown widget 'c'; known: a, b$"):
        reg.get("c")


def test_the_default_error_is_a_lookup_error():
    with pytest.raises(LookupError, match=r"unknown widget 'x'; known: $"):
        Registry("widget").get("x")


def test_a_second_class_under_one_name_is_refused_but_the_same_one_again_is_not():
    reg: Registry[type] = Registry("widget")
    cls = reg.register("a")(type("A", (), {}))
    reg.register("a")(cls)
    with pytest.raises(ValueError, match="widget 'a' registered twice"):
        reg.register("a")(type("A2", (), {}))


def test_check_can_refuse_a_class_before_it_is_registered():
    def check(name: str, cls: type) -> None:
        if not hasattr(cls, "fields"):
            raise ValueError(f"{name} declares no fields")

    reg: Registry[type] = Registry("widget", check=check)
    with pytest.raises(ValueError, match="declares no fields"):
        reg.register("a")(type("A", (), {}))
    assert "a" not in reg


def test_build_stores_an_instance_and_first_detects_by_content_in_builtin_order():
    # built-in modules that import harmlessly (json.decoder, json.encoder); the plugins register below, out of order
    reg: Registry[Plugin] = Registry("format", "json", ("decoder", "encoder"), build=lambda cls: cls())
    reg.register("extra")(type("Extra", (Plugin,), {}))
    reg.register("encoder")(type("Encoder", (Plugin,), {}))
    reg.register("decoder")(type("Decoder", (Plugin,), {}))
    assert reg.names() == ["decoder", "encoder", "extra"]
    assert isinstance(reg.get("encoder"), Plugin)
    found = reg.first(lambda p: p.sniff("encoder-or-extra"))
    assert found is not None and found.name == "encoder"
    assert reg.first(lambda p: p.sniff("nothing")) is None


def test_builtin_modules_are_imported_on_first_use():
    reg: Registry[type] = Registry("module", "telemetry", ("no_such_module",))
    with pytest.raises(ModuleNotFoundError, match=r"telemetry\.no_such_module"):
        reg.names()
