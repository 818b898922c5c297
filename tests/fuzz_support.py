"""What the property-based adapter tests share: JSON of every awkward shape, and the check that
whatever an adapter emits from it is well-formed."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from drivers.mqtt.adapter import Adapter
from drivers.mqtt.payload import measurement_value
from hub.errors import BadInputError
from hub.events import Reading
from tests.adapter_support import Sink

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def json_values(keys: st.SearchStrategy[str], words: Sequence[str]) -> st.SearchStrategy[object]:
    """Nested JSON: huge integers, NaN and infinities, the ecosystem's own words, any text."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**400), max_value=10**400)
        | st.floats(allow_nan=True, allow_infinity=True)
        | st.sampled_from(list(words))
        | st.text(max_size=12)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
        max_leaves=25,
    )


def decode_only_refuses(
    adapters: Sequence[Adapter], sink: Sink, topic: str, payload: bytes, kinds: tuple[type, ...]
) -> None:
    """Only `BadInputError` leaves `decode`; every event is one of `kinds`, and every reading is a
    checked, finite value of its measurement."""
    for adapter in adapters:
        if adapter.owns(topic):
            with contextlib.suppress(BadInputError):
                adapter.decode(topic, payload, 1.0)
    for event in sink.events:
        assert isinstance(event, kinds)
        if isinstance(event, Reading):
            assert measurement_value(event.measurement, event.value) == event.value
            assert not isinstance(event.value, float) or math.isfinite(event.value)
