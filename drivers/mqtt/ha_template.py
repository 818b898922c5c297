"""Home Assistant value templates, read for their shape and never executed.

A discovery config may carry a Jinja2 `value_template`. Running Jinja on text from the network is
out of the question, so this module recognises the few shapes devices actually publish and turns
them into a key path and a list of harmless conversions:

* `{{ value }}` — the payload itself;
* `{{ value_json.key }}`, `{{ value_json['key'] }}`, `{{ value_json["a"]["b"] }}`,
  `{{ value_json['DS18S20'].Temperature }}`, `{{ value_json.list[0] }}` — a path into the payload's
  JSON (dots and brackets mixed freely, at most 8 steps);
* each optionally followed by the filters `| float`, `| int` (both with or without one numeric
  argument, the default HA would substitute) and `| round` / `| round(n)`, in any order.

Why these filters and no others: they only change a number's type or precision, they cannot fail in
a way that hides a reading, and together they cover what ESPHome, Tasmota, Zigbee2MQTT, rtl_433 and
the Home Assistant documentation publish. A filter's default (`float(0)`) is *not* substituted: a
value that does not convert is refused and counted, because a leak sensor silently reading 0 is
worse than one reading nothing. Anything else — conditionals, arithmetic, other filters, string
concatenation, `states(...)` — raises `BadInputError(UNSUPPORTED)` naming the template.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from hub.errors import BadInputError, BadInputReason

__all__ = ["MISSING", "Template", "parse_template"]

MAX_TEMPLATE_CHARS = 300
MAX_PATH = 8
_MAX_ROUND = 10

_WRAPPED = re.compile(r"\s*\{\{(?P<expr>.*)\}\}\s*", re.DOTALL)
_SOURCE = re.compile(r"\s*(value_json|value)(?![A-Za-z0-9_])")
_DOT = re.compile(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_BRACKET = re.compile(
    r"\s*\[\s*(?:'(?P<single>[^'\\]*)'|\"(?P<double>[^\"\\]*)\"|(?P<index>[0-9]{1,6}))\s*\]"
)
_FILTER = re.compile(
    r"\s*\|\s*(?P<name>float|int|round)"
    r"(?:\s*\(\s*(?P<arg>-?[0-9]{1,12}(?:\.[0-9]{1,12})?)?\s*\))?"
)


class _Missing:
    """The path leads nowhere in this payload (HA's "undefined"): no value, not an error."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True, slots=True)
class Template:
    """What a template reads (`json`: from the parsed payload, along `path`) and how it converts."""

    text: str
    json: bool
    path: tuple[str | int, ...] = ()
    filters: tuple[tuple[str, int | None], ...] = ()

    def extract(self, payload_text: str, data: object) -> object:
        """The template's value: `MISSING` when the path is absent; `BadInputError` when a filter
        cannot convert. `data` is the parsed JSON payload (only read when `json`)."""
        value: object = data if self.json else payload_text
        for step in self.path:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    return MISSING
                value = value[step]
            else:
                if not isinstance(value, dict) or step not in value:
                    return MISSING
                value = value[step]
        for name, arg in self.filters:
            value = _apply(name, arg, value, self.text)
        return value


def parse_template(text: object) -> Template:
    """The shape of a value template, or `BadInputError(UNSUPPORTED)` saying it cannot be used."""
    if not isinstance(text, str):
        raise BadInputError(
            BadInputReason.WRONG_TYPE, f"value_template must be a string, got {text!r:.60}"
        )
    if len(text) > MAX_TEMPLATE_CHARS:
        raise _unsupported(text)
    wrapped = _WRAPPED.fullmatch(text)
    if wrapped is None:
        raise _unsupported(text)
    expr = wrapped["expr"]
    source = _SOURCE.match(expr)
    if source is None:
        raise _unsupported(text)
    json = source[1] == "value_json"
    pos = source.end()
    path: list[str | int] = []
    while json:
        m = _DOT.match(expr, pos) or _BRACKET.match(expr, pos)
        if m is None:
            break
        if len(path) == MAX_PATH:
            raise _unsupported(text)
        if m.re is _DOT:
            path.append(m[1])
        elif m["index"] is not None:
            path.append(int(m["index"]))
        else:
            path.append(m["single"] if m["single"] is not None else m["double"])
        pos = m.end()
    filters: list[tuple[str, int | None]] = []
    while (f := _FILTER.match(expr, pos)) is not None and len(filters) < 4:
        filters.append((f["name"], _filter_arg(f["name"], f["arg"], text)))
        pos = f.end()
    if expr[pos:].strip():
        raise _unsupported(text)
    return Template(text, json, tuple(path), tuple(filters))


def _filter_arg(name: str, arg: str | None, text: str) -> int | None:
    """`round(n)` keeps `n` (0..10 places); `float(d)` / `int(d)` defaults are dropped."""
    if name != "round" or arg is None:
        return None
    if "." in arg or arg.startswith("-") or int(arg) > _MAX_ROUND:
        raise _unsupported(text)
    return int(arg)


def _apply(name: str, arg: int | None, value: object, text: str) -> object:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise BadInputError(
            BadInputReason.WRONG_TYPE, f"{text!r:.80}: cannot apply {name} to {value!r:.40}"
        )
    try:
        if name == "round":
            if not isinstance(value, int | float):
                raise ValueError(value)
            return round(float(value), arg or 0)
        if not isinstance(value, str | int | float):
            raise ValueError(value)
        number = float(value.strip() if isinstance(value, str) else value)
        if not math.isfinite(number):
            raise BadInputError(BadInputReason.NOT_FINITE, f"{text!r:.80} gave {number}")
        return number if name == "float" else int(number)
    except (ValueError, OverflowError):
        raise BadInputError(
            BadInputReason.WRONG_TYPE, f"{text!r:.80}: {value!r:.40} is not a number"
        ) from None


def _unsupported(text: str) -> BadInputError:
    return BadInputError(
        BadInputReason.UNSUPPORTED,
        f"template {text!r:.120} cannot be used: only {{{{ value_json.key }}}} / "
        "value_json['a']['b'] shapes (optionally with | float / | int / | round(n)) "
        "are understood",
    )
