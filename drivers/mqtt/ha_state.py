"""A Home Assistant entity's state message → the value of its reading. Pure: bytes in, value out.

A state without a value template is the payload text. Sensors take numbers or numeric text,
converted to the measurement's unit (`EntitySpec.factor` / `offset`) and checked against its
plausible range; binary sensors compare the value as Home Assistant renders it (`True`, `ON`,
`1`...) with `payload_on` / `payload_off`. `""`, `None`, `unknown` and `unavailable` mean "no
value" and give `None`, as does a template path the payload lacks (HA keeps the previous state
then). Anything else that cannot be used raises `BadInputError`.
"""

from __future__ import annotations

from drivers.mqtt.ha_entity import EntitySpec, payload_text
from drivers.mqtt.ha_template import MISSING, Template
from drivers.mqtt.payload import JSON_DECODER, finite, measurement_value, number
from hub.errors import BadInputError, BadInputReason
from hub.measurements import BOOLEAN

__all__ = ["Message", "state_value"]

_NO_VALUE = frozenset({"", "None", "unknown", "unavailable"})


class Message:
    """One state message: its text, and its JSON parsed at most once (only if a template asks)."""

    __slots__ = ("_data", "_error", "_parsed", "text")

    def __init__(self, payload: bytes) -> None:
        self.text = payload.decode("utf-8", "replace")
        self._parsed = False
        self._data: object = None
        self._error: BadInputError | None = None

    def extract(self, template: Template | None) -> object:
        if template is None:
            return self.text
        if template.json and not self._parsed:
            self._parsed = True
            try:
                self._data = JSON_DECODER.decode(self.text)
            except (ValueError, RecursionError) as err:
                self._error = BadInputError(BadInputReason.MALFORMED_JSON, f"not JSON: {err}")
        if template.json and self._error is not None:
            raise self._error
        return template.extract(self.text, self._data)


def state_value(spec: EntitySpec, message: Message) -> float | bool | str | None:
    """The reading's value, `None` for "no value in this message", or `BadInputError`."""
    raw = message.extract(spec.template)
    if raw is MISSING:
        return None
    if spec.measurement in BOOLEAN:
        text = payload_text(raw)
        if text in (spec.payload_on, spec.payload_off):
            return measurement_value(spec.measurement, text == spec.payload_on)
        if text in _NO_VALUE or raw is None:
            return None
        raise BadInputError(
            BadInputReason.WRONG_TYPE,
            f"{spec.measurement.value} state {raw!r:.40} is neither payload_on "
            f"{spec.payload_on!r:.20} nor payload_off {spec.payload_off!r:.20}",
        )
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        if text in _NO_VALUE:
            return None
        try:
            raw = float(text)
        except ValueError:
            raise BadInputError(
                BadInputReason.WRONG_TYPE,
                f"{spec.measurement.value} must be a number, got {text!r:.40}",
            ) from None
    value = finite(spec.measurement, raw)
    return number(spec.measurement, value * spec.factor + spec.offset)
