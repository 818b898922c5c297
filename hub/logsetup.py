"""Logging to stderr (journald adds time and unit); one line per record, no secrets by design."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str) -> None:
    under_journal = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = (
        "%(levelname)s %(name)s: %(message)s"
        if under_journal
        else ("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level, format=fmt, stream=sys.stderr, force=True)
    # httpx logs one INFO line per request: a draining backlog would flood the journal.
    for noisy in ("aiomqtt", "paho", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # paho (through aiomqtt's "mqtt" logger) logs a lost connection at ERROR; the MQTT service
    # reports the broker link itself (a WARNING, and the broker's `Availability`) and reconnects.
    logging.getLogger("mqtt").setLevel(logging.CRITICAL)
    # pymodbus logs an ERROR for every unanswered poll, dsmr-parser a traceback for every line it
    # cannot parse; the serial drivers count those and log each cause once themselves.
    for noisy in ("pymodbus", "dsmr_parser"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
