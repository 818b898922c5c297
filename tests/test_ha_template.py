"""Value templates are read for their shape, never run: the shapes devices publish, and refusals."""

from __future__ import annotations

import pytest

from drivers.mqtt.ha_template import MISSING, Template, parse_template
from hub.errors import BadInputError, BadInputReason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Home Assistant's documentation (the bedroom sensors; no space before the braces)
        ("{{ value_json.temperature}}", Template("{{ value_json.temperature}}", True, ("temperature",))),
        # Zigbee2MQTT's discovery
        ("{{ value_json.water_leak }}", Template("{{ value_json.water_leak }}", True, ("water_leak",))),
        # Tasmota's discovery (brackets, mixed with a dot)
        ("{{value_json['ENERGY']['Power']}}", Template("{{value_json['ENERGY']['Power']}}", True, ("ENERGY", "Power"))),
        ("{{value_json['DS18S20'].Temperature}}", Template("{{value_json['DS18S20'].Temperature}}", True, ("DS18S20", "Temperature"))),
        ('{{ value_json["a b"][0] }}', Template('{{ value_json["a b"][0] }}', True, ("a b", 0))),
        # rtl_433's and the HA docs' mqtt.publish example
        ("{{ value|float }}", Template("{{ value|float }}", False, (), (("float", None),))),
        ("{{ value|float|round(1) }}", Template("{{ value|float|round(1) }}", False, (), (("float", None), ("round", 1)))),
        ("{{ value_json.t | float(0) }}", Template("{{ value_json.t | float(0) }}", True, ("t",), (("float", None),))),
        ("{{ value_json.n | int }}", Template("{{ value_json.n | int }}", True, ("n",), (("int", None),))),
        ("{{ value_json.n | round }}", Template("{{ value_json.n | round }}", True, ("n",), (("round", None),))),
        ("{{ value }}", Template("{{ value }}", False)),
        ("  {{value_json}}  ", Template("  {{value_json}}  ", True)),
    ],
)  # fmt: skip
def test_shapes_that_are_understood(text: str, expected: Template) -> None:
    assert parse_template(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "{{value_json['outdoortemp'] if value_json['outdoortemp'] is defined else 0}}",  # EMS-ESP
        "{{ value_json.a + 1 }}",
        "{{ value_json.a | lower }}",
        "{{ value_json.a | round(1.5) }}",
        "{{ value_json.a | round(99) }}",
        "{{ value_json.a }}{{ value_json.b }}",
        "{{ states('sensor.x') }}",
        "{{ value_json.__class__ }}x",
        "{{ value_json.a.__class__.__mro__[1].__subclasses__() }}",
        "{% if value == 'ON' %}ON{% endif %}",
        "{{ value_jsonx }}",
        "{{ value_json[a] }}",
        "{{ value_json.0 }}",
        "value_json.a",
        "",
        "{{ value_json" + ".a" * 9 + " }}",  # deeper than 8 steps
        "{{ value_json." + "a" * 400 + " }}",
    ],
)
def test_everything_else_is_refused_naming_the_template(text: str) -> None:
    with pytest.raises(BadInputError) as err:
        parse_template(text)
    assert err.value.reason is BadInputReason.UNSUPPORTED
    assert repr(text)[:60] in err.value.detail
    assert "only {{ value_json.key }} / value_json['a']['b'] shapes" in err.value.detail


def test_a_template_that_is_not_a_string_is_the_wrong_type() -> None:
    with pytest.raises(BadInputError) as err:
        parse_template(["{{ value }}"])
    assert err.value.reason is BadInputReason.WRONG_TYPE


@pytest.mark.parametrize(
    ("text", "payload", "data", "expected"),
    [
        ("{{ value }}", "ON", None, "ON"),
        ("{{ value_json.a.b }}", "", {"a": {"b": 4}}, 4),
        ("{{ value_json.a[1] }}", "", {"a": [1, 2]}, 2),
        ("{{ value_json.a[5] }}", "", {"a": [1, 2]}, MISSING),
        ("{{ value_json.a.b }}", "", {"a": 3}, MISSING),
        ("{{ value_json.missing }}", "", {}, MISSING),
        ("{{ value_json.a }}", "", [1], MISSING),
        ("{{ value|float }}", " 21.5 ", None, 21.5),
        ("{{ value|float|round(1) }}", "21.46", None, 21.5),
        ("{{ value_json.a | int }}", "", {"a": "12.7"}, 12),
        ("{{ value_json.a | round(2) }}", "", {"a": 1.005}, round(1.005, 2)),
        ("{{ value_json.a | float(0) }}", "", {"a": "3"}, 3.0),
    ],
)
def test_values(text: str, payload: str, data: object, expected: object) -> None:
    assert parse_template(text).extract(payload, data) == expected


@pytest.mark.parametrize(
    ("text", "payload", "data", "reason"),
    [
        ("{{ value|float }}", "wet", None, BadInputReason.WRONG_TYPE),  # no default substituted
        ("{{ value|float }}", "nan", None, BadInputReason.NOT_FINITE),
        ("{{ value|int }}", "inf", None, BadInputReason.NOT_FINITE),
        ("{{ value_json.a | float }}", "", {"a": True}, BadInputReason.WRONG_TYPE),
        ("{{ value_json.a | float }}", "", {"a": None}, BadInputReason.WRONG_TYPE),
        ("{{ value_json.a | float }}", "", {"a": {"b": 1}}, BadInputReason.WRONG_TYPE),
        ("{{ value_json.a | int }}", "", {"a": 10**400}, BadInputReason.WRONG_TYPE),
        ("{{ value_json.a | round(1) }}", "", {"a": "1.5"}, BadInputReason.WRONG_TYPE),
    ],
)
def test_filters_that_cannot_convert_are_refused(
    text: str, payload: str, data: object, reason: BadInputReason
) -> None:
    with pytest.raises(BadInputError) as err:
        parse_template(text).extract(payload, data)
    assert err.value.reason is reason
