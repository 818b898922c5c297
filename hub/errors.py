"""The kernel's error tree. Callers branch on types and reasons, never on message text."""

from __future__ import annotations

import enum


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigError(HubError):
    """The configuration cannot be used; the message names the file, line and key."""


class StoreError(HubError):
    """The database could not do what was asked."""


class StoreFullError(StoreError):
    """The disk holding the database is full."""


class StoreCorruptError(StoreError):
    """The database file failed its integrity check."""


class BadInputReason(enum.StrEnum):
    """Why a payload from a device was refused (the label of the bad-input counter)."""

    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_KEY = "unknown_key"
    TOO_LARGE = "too_large"
    UNKNOWN_DEVICE = "unknown_device"
    BAD_TOPIC = "bad_topic"
    BAD_FRAME = "bad_frame"  # a serial frame or telegram that fails its checksum or framing
    UNSUPPORTED = "unsupported"  # well-formed, but nothing the hub can use (e.g. a value template)
    DECRYPT_FAILED = "decrypt_failed"  # an encrypted advertisement that fails with the bind key
    REPLAYED = "replayed"  # an authenticated advertisement older than the device's last one


class BadInputError(HubError):
    """A device payload was refused. `reason` is the counter label; `detail` is for the log."""

    def __init__(self, reason: BadInputReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def describe(err: BaseException) -> str:
    """`Type: message` of an error, looking through task groups' wrappers: an ExceptionGroup of
    one error is described as that error (what a person needs to see in `status`)."""
    while isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
        err = err.exceptions[0]
    return f"{type(err).__name__}: {err}"
