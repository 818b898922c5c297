"""Strict JSON and value checks shared by the MQTT adapters. Pure: bytes in, values or errors out."""

from __future__ import annotations

import json
import math
from typing import Any

from hub import topics
from hub.errors import BadInputError, BadInputReason
from hub.measurements import BOOLEAN, RANGES, STATES, Measurement


def _no_constants(name: str) -> Any:
    raise BadInputError(BadInputReason.NOT_FINITE, f"{name} is not a number JSON allows")


#: One decoder for every message: `json.loads(..., parse_constant=...)` builds a new one each call
#: (a few µs of every message's 15-25).
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


def parse_json(payload: bytes, max_bytes: int) -> Any:
    """Any JSON value, or `BadInputError` saying exactly why not (nesting too deep included)."""
    if len(payload) > max_bytes:
        raise BadInputError(
            BadInputReason.TOO_LARGE, f"{len(payload)} bytes is over the {max_bytes}-byte limit"
        )
    try:
        return _DECODER.decode(payload.decode())
    except (ValueError, RecursionError) as err:
        if isinstance(err, BadInputError):
            raise
        raise BadInputError(BadInputReason.MALFORMED_JSON, f"not JSON: {err}") from None


def parse_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """A JSON object, or `BadInputError` saying exactly why not."""
    data = parse_json(payload, max_bytes)
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
