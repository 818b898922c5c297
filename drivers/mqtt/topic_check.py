"""What MQTT — and Mosquitto — accept as a topic name or a topic filter. Pure: text in, or an error.

Checked before anything is subscribed. Mosquitto does not answer a SUBSCRIBE it cannot accept with
a refusal: it drops the connection, so one bad filter among the hub's would cut the whole link, and
cut it again on every reconnect. paho raises `UnicodeEncodeError` on a filter that is not UTF-8 (a
lone surrogate, which JSON's `\\ud800` escape gives). Refused, as `BAD_TOPIC`:

* empty text, or more than MQTT's 65,535 bytes of UTF-8;
* text that does not encode to UTF-8 (lone surrogates);
* the control characters U+0000 to U+001F and U+007F to U+009F;
* Unicode noncharacters: U+FDD0 to U+FDEF and the last two code points of every plane;
* in a topic name, `+` and `#`; in a filter, a `+` or `#` that is not a whole level, or a `#` that
  is not the last one.
"""

from __future__ import annotations

import re

from hub.errors import BadInputError, BadInputReason

__all__ = ["MAX_TOPIC_BYTES", "check_filter", "check_name"]

MAX_TOPIC_BYTES = 65535

_NONCHARACTERS = "".join(
    f"\\U{plane << 16 | 0xFFFE:08x}-\\U{plane << 16 | 0xFFFF:08x}" for plane in range(17)
)
#: What Mosquitto's UTF-8 check (and Python's encoder) refuses anywhere in a topic.
_FORBIDDEN = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff\\ufdd0-\\ufdef{_NONCHARACTERS}]")


def check_name(topic: str, what: str = "topic") -> None:
    """A topic a message can be published on (no wildcards); `BadInputError` if MQTT refuses it."""
    _check_text(topic, what)
    if "+" in topic or "#" in topic:
        raise BadInputError(BadInputReason.BAD_TOPIC, f"{what} {topic!r:.80} has a wildcard")


def check_filter(topic_filter: str, what: str = "topic filter") -> None:
    """A filter a broker accepts in a SUBSCRIBE; `BadInputError` if MQTT refuses it."""
    _check_text(topic_filter, what)
    levels = topic_filter.split("/")
    for n, level in enumerate(levels):
        if ("+" in level or "#" in level) and not (
            level == "+" or (level == "#" and n == len(levels) - 1)
        ):
            raise BadInputError(
                BadInputReason.BAD_TOPIC, f"{what} {topic_filter!r:.80} misplaces a wildcard"
            )


def _check_text(topic: str, what: str) -> None:
    if not topic:
        raise BadInputError(BadInputReason.BAD_TOPIC, f"{what} is empty")
    bad = _FORBIDDEN.search(topic)
    if bad is not None:
        raise BadInputError(
            BadInputReason.BAD_TOPIC,
            f"{what} {topic!r:.80} has U+{ord(bad.group()):04X}, which MQTT does not allow",
        )
    size = len(topic.encode())
    if size > MAX_TOPIC_BYTES:
        raise BadInputError(
            BadInputReason.BAD_TOPIC, f"{what} is {size} bytes (MQTT's limit is {MAX_TOPIC_BYTES})"
        )
