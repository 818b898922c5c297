"""Strict JSON and value checks shared by the MQTT adapters. Pure: bytes in, values or errors out."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from hub import topics
from hub.errors import BadInputError, BadInputReason
from hub.measurements import BOOLEAN, RANGES, STATES, Measurement

#: One decoder for every message: `json.loads(..., parse_constant=...)` builds a new one each call
#: (a few µs of every message's 15-25). `NaN` and `Infinity`, which JSON does not allow but
#: Python's `json.dumps` and some firmware write, are read as the floats they name, so that the
#: checks of each value refuse that key (`NOT_FINITE`) and keep the rest: a leak board's
#: `{"water_leak": true, "temperature": NaN}` (a dead probe) still reports the leak.
JSON_DECODER = json.JSONDecoder(parse_constant=float)


#: A `\uD800`..`\uDFFF` escape: the only way a lone UTF-16 surrogate gets into a decoded string
#: (valid UTF-8 holds none, and `bytes.decode()` refuses encoded ones). A backslash-escaped
#: `\\ud83d` matches too: harmless, the check that follows finds nothing to replace.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(payload: bytes, max_bytes: int, *, keep_surrogates: bool = False) -> Any:
    """Any JSON value, or `BadInputError` saying exactly why not (nesting too deep included).

    Every string in it can be encoded as UTF-8: a lone UTF-16 surrogate (`"\\ud83d"`, which JSON
    allows and JavaScript writes for a name cut in the middle of an emoji) becomes U+FFFD, the
    replacement character, in keys and values alike. SQLite, MQTT topics and the logs cannot take
    a lone surrogate, and refusing the payload would drop a whole device list, or a leak sensor's
    data, for one broken character of a name. U+FFFD is also what the JavaScript bridge itself
    puts on the wire in that device's topic, so the device keeps working.

    `keep_surrogates=True` leaves them, for a caller that checks each string itself (Home
    Assistant discovery refuses a topic with one as `BAD_TOPIC` and makes its names UTF-8).
    """
    if len(payload) > max_bytes:
        raise BadInputError(
            BadInputReason.TOO_LARGE, f"{len(payload)} bytes is over the {max_bytes}-byte limit"
        )
    try:
        text = payload.decode()
        value = JSON_DECODER.decode(text)
    except (ValueError, RecursionError) as err:
        if isinstance(err, BadInputError):
            raise
        raise BadInputError(BadInputReason.MALFORMED_JSON, f"not JSON: {err}") from None
    if not keep_surrogates and _SURROGATE_ESCAPE.search(text) is not None:
        value = _without_surrogates(value)
    return value


def utf8_text(text: str) -> str:
    """`text` with each lone UTF-16 surrogate replaced by U+FFFD, so it can be encoded as UTF-8."""
    return _SURROGATE.sub("\ufffd", text)


def _without_surrogates(value: Any) -> Any:
    """`value` (decoded JSON) with every string passed through `utf8_text`, in place. Iterative:
    a value nested as deep as the decoder allows must not hit the recursion limit here."""
    if isinstance(value, str):
        return utf8_text(value)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = utf8_text(item)
                elif isinstance(item, list | dict):
                    stack.append(item)
        elif isinstance(node, dict):
            items = [(utf8_text(k), v) for k, v in node.items()]
            node.clear()
            for key, item in items:
                if isinstance(item, str):
                    item = utf8_text(item)  # noqa: PLW2901
                elif isinstance(item, list | dict):
                    stack.append(item)
                node[key] = item
    return value


def parse_object(
    payload: bytes, max_bytes: int, *, keep_surrogates: bool = False
) -> dict[str, Any]:
    """A JSON object, or `BadInputError` saying exactly why not (strings as `parse_json`'s)."""
    data = parse_json(payload, max_bytes, keep_surrogates=keep_surrogates)
    if not isinstance(data, dict):
        raise BadInputError(
            BadInputReason.NOT_AN_OBJECT, f"expected a JSON object, got {type(data).__name__}"
        )
    return data


def measurement_value(measurement: Measurement, raw: object) -> float | bool | str:
    """Check `raw` against the measurement's type and plausible range."""
    if measurement in BOOLEAN:
        if isinstance(raw, bool):
            return raw
        raise BadInputError(
            BadInputReason.WRONG_TYPE, f"{measurement.value} must be true or false, got {raw!r:.40}"
        )
    states = STATES.get(measurement)
    if states is not None:
        if isinstance(raw, str) and raw in states:
            return raw
        raise BadInputError(
            BadInputReason.WRONG_TYPE,
            f"{measurement.value} must be one of {sorted(states)}, got {raw!r:.40}",
        )
    return number(measurement, raw)


def finite(measurement: Measurement, raw: object) -> float:
    """A JSON number as a finite float, refusing what `float()` cannot hold (400-digit ints)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise BadInputError(
            BadInputReason.WRONG_TYPE, f"{measurement.value} must be a number, got {raw!r:.40}"
        )
    try:
        value = float(raw)
    except OverflowError:
        raise BadInputError(
            BadInputReason.OUT_OF_RANGE, f"{measurement.value} is too large for a number"
        ) from None
    if not math.isfinite(value):
        raise BadInputError(BadInputReason.NOT_FINITE, f"{measurement.value} is {value}")
    return value


def number(measurement: Measurement, raw: object) -> float:
    """`finite`, and within the measurement's plausible range."""
    value = finite(measurement, raw)
    low, high = RANGES.get(measurement, (-math.inf, math.inf))
    if not low <= value <= high:
        raise BadInputError(
            BadInputReason.OUT_OF_RANGE,
            f"{measurement.value} = {value} is outside its plausible range {low}..{high}",
        )
    return value


def parse_availability(payload: bytes) -> bool:
    """`{"state": "online"}` (Zigbee2MQTT's current form) or a bare `online` / `offline`."""
    text = payload[:256].decode("utf-8", "replace").strip()
    if text.startswith("{"):
        state = parse_object(payload, 4096).get("state")
        text = state if isinstance(state, str) else ""
    if text in (topics.ONLINE, topics.OFFLINE):
        return text == topics.ONLINE
    raise BadInputError(
        BadInputReason.WRONG_TYPE, f"availability must be online or offline, got {text!r:.40}"
    )
