"""Topic names and filters MQTT does not allow are refused before anything is subscribed.

What is refused is what Mosquitto 2.0 answers by dropping the connection (tried on the test broker:
a SUBSCRIBE with U+0001, U+001F, U+007F, U+0085, U+009F, U+FDD0, U+FDEF, U+FFFE, U+1FFFE,
U+10FFFF or NUL, each ends the link; U+00A0, U+FFFD and an emoji are granted), and what paho raises
on (a lone surrogate, more than 65,535 bytes, a misplaced wildcard).
"""

from __future__ import annotations

import pytest

from drivers.mqtt.topic_check import MAX_TOPIC_BYTES, check_filter, check_name
from hub.errors import BadInputError, BadInputReason

REFUSED_ANYWHERE = [
    "",
    "a/\x00",
    "a/\x01/b",
    "a/\x1f",
    "a/\x7f",
    "a/\x85",
    "a/\x9f",
    "a/\ufdd0",
    "a/\ufdef",
    "a/\ufffe",
    "a/\uffff",
    "a/\U0001fffe",
    "a/\U0010ffff",
    "evil/\ud800",  # a lone surrogate: JSON's "\ud800" escape; not UTF-8
    "a/\udfff",
    "x" * (MAX_TOPIC_BYTES + 1),
    "é" * (MAX_TOPIC_BYTES // 2 + 1),  # 65,536 bytes in 32,768 characters
]
ALLOWED_ANYWHERE = [
    "a/\xa0",
    "a/\ufffd",
    "a/\ufdcf",
    "a/\ufdf0",
    "a/\U0001f600",
    "a/\U0001fffd",
    "x" * MAX_TOPIC_BYTES,
    "/",
    "a//b",
    "$SYS/broker",
]


@pytest.mark.parametrize("topic", REFUSED_ANYWHERE)
def test_refused_as_name_and_as_filter(topic: str) -> None:
    for check in (check_name, check_filter):
        with pytest.raises(BadInputError) as info:
            check(topic)
        assert info.value.reason is BadInputReason.BAD_TOPIC


@pytest.mark.parametrize("topic", ALLOWED_ANYWHERE)
def test_allowed_as_name_and_as_filter(topic: str) -> None:
    check_name(topic)
    check_filter(topic)


@pytest.mark.parametrize("topic_filter", ["#", "+", "a/#", "a/+/b", "+/+/config", "a/+/+/#"])
def test_wildcards_filling_a_level_are_filters_not_names(topic_filter: str) -> None:
    check_filter(topic_filter)
    with pytest.raises(BadInputError) as info:
        check_name(topic_filter)
    assert info.value.reason is BadInputReason.BAD_TOPIC


@pytest.mark.parametrize("topic_filter", ["a/#/b", "a+", "a/b#", "##", "a/+b/c", "#/"])
def test_misplaced_wildcards_are_refused(topic_filter: str) -> None:
    with pytest.raises(BadInputError) as info:
        check_filter(topic_filter)
    assert info.value.reason is BadInputReason.BAD_TOPIC
