"""Refused input: every refusal counted, each cause logged once, a flood of causes bounded."""

from __future__ import annotations

import logging

import pytest

from hub.bad_input import _MAX_CAUSES, BadInputLog
from hub.errors import BadInputError, BadInputReason

_ERR = BadInputError(BadInputReason.BAD_TOPIC, "has U+0001")


def test_each_cause_is_logged_once_and_every_refusal_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = BadInputLog()
    with caplog.at_level(logging.WARNING, logger="hub.bad_input"):
        for _ in range(3):
            log.report("ha_discovery", "evil/\x01", _ERR)
    assert len(caplog.records) == 1
    assert log.as_dict() == {"ha_discovery/bad_topic": 3}


def test_a_flood_of_distinct_causes_is_counted_but_not_logged_one_by_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = BadInputLog()
    with caplog.at_level(logging.WARNING, logger="hub.bad_input"):
        for n in range(_MAX_CAUSES + 500):
            log.report("zigbee2mqtt", f"zigbee2mqtt/stray-{n}", _ERR)
    assert len(caplog.records) == _MAX_CAUSES + 1  # one each, then one saying the rest are not
    assert "further new ones are counted" in caplog.records[-1].getMessage()
    assert log.total() == _MAX_CAUSES + 500
