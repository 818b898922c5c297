"""The cloud link's state, shared by the sync loops: what `sync status` shows, and how long a loop
waits after each kind of failure."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hub.backoff import Backoff
from hub.clock import Clock
from hub.errors import describe
from sync.client import (
    SKEW_BLAME_S,
    CloudError,
    Forbidden,
    RateLimited,
    SecretError,
    Unauthorized,
)

_log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]

#: Backoff for network and server trouble (the contract suggests a 5-minute cap).
RETRY_INITIAL_S = 1.0
RETRY_CAP_S = 300.0
#: Refused credentials need a person; retry rarely.
AUTH_INITIAL_S = 60.0
AUTH_CAP_S = 1800.0


class LinkState(enum.StrEnum):
    STARTING = "starting"
    ONLINE = "online"
    OFFLINE = "offline"  # network or server trouble, retrying with backoff
    RATE_LIMITED = "rate_limited"
    CLOCK_SKEW = "clock_skew"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    DISABLED = "disabled"  # the secret cannot be used
    STOPPED = "stopped"  # the sync loops met an error nobody expected; the hub starts them again


def retry_backoff() -> Backoff:
    return Backoff(initial=RETRY_INITIAL_S, cap=RETRY_CAP_S)


class Link:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.state = LinkState.STARTING
        self.online = asyncio.Event()
        self.last_ok_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.clock_skew_s: float | None = None
        self.retry_at: float | None = None
        self._auth_backoff = Backoff(initial=AUTH_INITIAL_S, cap=AUTH_CAP_S)
        self._warned = False
        self._resigned = False

    def ok(self) -> None:
        if self.state is not LinkState.ONLINE:
            if self.state is not LinkState.STARTING:
                _log.info("cloud link is back online")
            self.state = LinkState.ONLINE
        self._warned = False
        self._resigned = False
        self._auth_backoff.reset()
        self.retry_at = None
        self.last_ok_at = self._clock.now()
        self.online.set()

    def disabled(self, err: SecretError) -> None:
        self.state = LinkState.DISABLED
        self._error(str(err))
        _log.error("cloud sync disabled: %s", err)

    def stopped(self, err: BaseException) -> None:
        """The sync loops ended on an unexpected error (`hub.contained` starts them again)."""
        self.state = LinkState.STOPPED
        self.online.clear()
        self.retry_at = None
        self._error(describe(err))

    def failed(self, err: CloudError, backoff: Backoff) -> float:
        """Record a failure; returns how long the failing loop waits before its next try."""
        self.online.clear()
        self._error(f"{type(err).__name__}: {err}")
        if isinstance(err, Unauthorized) and err.clock_is_off:
            # The time we signed with was off; the client has already corrected what it signs
            # with from the answer's `server_time`, so the first such failure retries at once.
            skew = err.clock_skew_s
            self.clock_skew_s = skew if skew is not None and abs(skew) > SKEW_BLAME_S else None
            self.state = LinkState.CLOCK_SKEW
            if not self._resigned:
                self._resigned = True
                if self.clock_skew_s is None:
                    _log.warning(
                        "the cloud refused a signature made with the server's time: this hub's "
                        "clock is right again; signing with it from now on"
                    )
                else:
                    _log.warning(
                        "the cloud refused our signature: this hub's clock is %+.0f s off the "
                        "server's; signing with the server's time from now on (fix NTP on this "
                        "hub)",
                        -self.clock_skew_s,
                    )
                return 0.0
            delay = self._auth_backoff.next_delay()
        elif isinstance(err, Unauthorized | Forbidden):
            self.state = (
                LinkState.UNAUTHORIZED if isinstance(err, Unauthorized) else LinkState.FORBIDDEN
            )
            delay = self._auth_backoff.next_delay()
            level = logging.ERROR if self._auth_backoff.failures == 1 else logging.DEBUG
            _log.log(
                level,
                "the cloud refused this hub's credentials (%s); check hub.id and the secret "
                "file; retrying in %.0f s",
                err,
                delay,
            )
        elif isinstance(err, RateLimited):
            self.state = LinkState.RATE_LIMITED
            # At least Retry-After, and a little jitter so several loops do not return together;
            # without a usable Retry-After, the usual capped backoff.
            jittered = backoff.next_delay()
            delay = (
                jittered if err.retry_after is None else err.retry_after + min(1.0, jittered / 10)
            )
            self._log_once("cloud asked us to slow down; waiting %.1f s", delay)
        else:
            self.state = LinkState.OFFLINE
            delay = backoff.next_delay()
            self._log_once("cannot reach the cloud (%s); retrying in %.1f s", err, delay)
        self.retry_at = self._clock.now() + delay
        return delay

    def _error(self, text: str) -> None:
        self.last_error = text
        self.last_error_at = self._clock.now()

    def _log_once(self, msg: str, *args: object) -> None:
        _log.log(logging.DEBUG if self._warned else logging.WARNING, msg, *args)
        self._warned = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "last_ok_at": self.last_ok_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "clock_skew_s": self.clock_skew_s,
            "retry_at": self.retry_at,
        }
