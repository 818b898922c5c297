"""The signed dispatch API client: one `httpx.AsyncClient`, every request signed, errors converted
at this boundary into a small tree the loops branch on.

    async with DispatchClient.from_config(config.cloud, hub_id, clock) as client:
        results = await client.post_incidents([...])

Never logged: the secret and the Authorization header (httpx logs neither; this module logs no
request at all).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import ssl
import stat
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from hub.clock import Clock, parse_rfc3339
from hub.config import CloudSection
from sync.signing import MAX_SKEW_S, authorization

_log = logging.getLogger(__name__)

#: The contract's limits.
MAX_BATCH_ITEMS = 200
MAX_BODY_BYTES = 1024 * 1024
MIN_SECRET_BYTES = 32
#: A 401 whose `server_time` is further than this from our clock is blamed on the clock.
SKEW_BLAME_S = MAX_SKEW_S * 0.9
#: The largest revision or count the hub can hold (SQLite's INTEGER).
MAX_WHOLE = 2**63 - 1


class CloudError(Exception):
    """Root of the sync client's errors."""


class SecretError(CloudError):
    """The secret file cannot be used (missing, readable by others, too short)."""


class Unauthorized(CloudError):
    """401. When the server said its time: `clock_skew_s` is the server's time minus our clock,
    `signed_skew_s` the server's time minus the time the request was signed with (our clock plus
    the offset in use then)."""

    def __init__(
        self, message: str, clock_skew_s: float | None = None, signed_skew_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.clock_skew_s = clock_skew_s
        self.signed_skew_s = signed_skew_s

    @property
    def clock_is_off(self) -> bool:
        """The time the request was signed with is to blame (not the credentials)."""
        return self.signed_skew_s is not None and abs(self.signed_skew_s) > SKEW_BLAME_S


class Forbidden(CloudError):
    """403: the signed hub id is not the hub in the path (or not this server's)."""


class UnknownHub(Forbidden):
    """404 on a hub endpoint: the server does not know this hub id (wrong `hub.id`?)."""


class TooLarge(CloudError):
    """413: the batch must be split."""


class BadRequest(CloudError):
    """400: the server could not take the body as a batch at all (the contract says this is not
    about one item, and a gateway in front of the server may say it too): retried with backoff."""


class RateLimited(CloudError):
    """429. `retry_after`: the seconds the server asked for; None when it named no usable wait
    (missing, zero, nonsense), and the hub backs off on its own."""

    def __init__(self, retry_after: float | None) -> None:
        wait = "no usable Retry-After" if retry_after is None else f"retry after {retry_after:g}s"
        super().__init__(f"rate limited; {wait}")
        self.retry_after = retry_after


class ServerError(CloudError):
    """5xx, or an answer that does not follow the contract (retried with backoff)."""


class Transport(CloudError):
    """Timeout, refused or reset connection, TLS failure."""


@dataclass(frozen=True, slots=True)
class ItemResult:
    id: str
    revision: int
    result: str  # accepted | duplicate | stale | rejected
    error: str | None


def read_secret(path: Path) -> bytes:
    """The secret: the file's bytes without surrounding whitespace. Refused when the file is
    readable by others or shorter than the contract's 32 bytes."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes().strip()
    except OSError as err:
        raise SecretError(f"cannot read the cloud secret {path}: {err.strerror}") from err
    if mode & stat.S_IROTH:
        raise SecretError(f"{path} is readable by everyone; run: chmod o-rwx {path}")
    if len(data) < MIN_SECRET_BYTES:
        raise SecretError(f"{path} holds {len(data)} bytes; the secret must be at least 32")
    return data


def _check_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and parts.hostname and _is_loopback(parts.hostname):
        return url.rstrip("/")
    raise CloudError(f"refusing {url!r}: https only (plain http only to a loopback host)")


class DispatchClient:
    def __init__(
        self,
        *,
        base_url: str,
        hub_id: str,
        secret: bytes,
        clock: Clock,
        ca_file: Path | None = None,
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base = _check_base_url(base_url)
        self._prefix = urlsplit(self._base).path.rstrip("/")
        self._hub_id = hub_id
        self._secret = secret
        self._clock = clock
        self._timeout = timeout_s
        #: Added to our clock when signing: the server's time minus ours, as the last 401 that
        #: said it showed, while that is past what the server tolerates; 0 otherwise.
        self.clock_offset_s = 0.0
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=str(ca_file)) if ca_file is not None else True
        )
        self._http = httpx.AsyncClient(
            base_url=self._base,
            verify=verify,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": "homeguard-hub"},
        )

    @classmethod
    def from_config(
        cls, cloud: CloudSection, hub_id: str, clock: Clock, *, timeout_s: float = 15.0
    ) -> DispatchClient:
        return cls(
            base_url=cloud.url,
            hub_id=hub_id,
            secret=read_secret(cloud.secret_file),
            clock=clock,
            ca_file=cloud.ca_file,
            timeout_s=timeout_s,
        )

    async def __aenter__(self) -> DispatchClient:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    # -- endpoints ------------------------------------------------------------------------------

    async def post_incidents(self, bodies: list[str]) -> list[ItemResult]:
        """POST raw incident JSON bodies (as the outbox holds them); one result per item."""
        data = await self._request("POST", "incidents", _envelope("incidents", bodies))
        try:
            results = [
                ItemResult(str(r["id"]), _whole(r["revision"]), str(r["result"]), _text(r))
                for r in data["results"]
            ]
        except (KeyError, TypeError, ValueError) as err:
            raise ServerError(f"malformed incidents answer: {err!r}") from err
        if len(results) != len(bodies):
            raise ServerError(f"{len(results)} results for {len(bodies)} incidents")
        return results

    async def post_telemetry(self, bodies: list[str]) -> int:
        data = await self._request("POST", "telemetry", _envelope("rollups", bodies))
        try:
            return _whole(data["accepted"], len(bodies))
        except (KeyError, TypeError, ValueError) as err:
            raise ServerError(f"malformed telemetry answer: {err!r}") from err

    async def heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", "heartbeat", json.dumps(body).encode())

    async def updates(self, after: str | None, wait_s: int) -> tuple[list[dict[str, Any]], str]:
        """Long poll; the read timeout is stretched past `wait_s`."""
        query = {"wait": str(wait_s)} if after is None else {"after": after, "wait": str(wait_s)}
        data = await self._request(
            "GET", "updates", b"", query=query, timeout_s=wait_s + self._timeout
        )
        try:
            updates = data["updates"]
            nxt = data["next"]
        except (KeyError, TypeError) as err:
            raise ServerError(f"malformed updates answer: {err!r}") from err
        if not isinstance(updates, list) or not isinstance(nxt, str) or not _is_unicode(nxt):
            raise ServerError("malformed updates answer")
        return updates, nxt

    # -- the one door -----------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        endpoint: str,
        body: bytes,
        *,
        query: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        path = f"{self._prefix}/v1/hubs/{self._hub_id}/{endpoint}"
        path_with_query = f"{path}?{urlencode(query)}" if query else path
        now = self._clock.now()
        signed_at = now + self.clock_offset_s
        ts = int(signed_at)
        headers = {
            "Authorization": authorization(
                self._hub_id, self._secret, method, path_with_query, ts, body
            ),
        }
        if body:
            headers["Content-Type"] = "application/json"
        url = httpx.URL(self._base).copy_with(raw_path=path_with_query.encode("ascii"))
        try:
            response = await self._http.request(
                method,
                url,
                content=body,
                headers=headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout_s is None else timeout_s,
            )
        except httpx.TimeoutException as err:
            raise Transport(f"timeout: {type(err).__name__}") from err
        except httpx.TransportError as err:
            raise Transport(f"{type(err).__name__}: {err}") from err
        return self._answer(response, now, signed_at)

    def _answer(self, response: httpx.Response, now: float, signed_at: float) -> dict[str, Any]:
        code = response.status_code
        data = _json(response)
        if code == 200:
            if data is None:
                raise ServerError("200 without a JSON object")
            return data
        error = str((data or {}).get("error", "")) or response.reason_phrase
        if code == 400:
            raise BadRequest(f"400 {error}")
        if code == 401:
            raise self._unauthorized(
                f"401 {error}", (data or {}).get("server_time"), now, signed_at
            )
        if code == 403:
            raise Forbidden(f"403 {error}")
        if code == 404:
            raise UnknownHub(f"404 {error}")
        if code == 413:
            raise TooLarge(f"413 {error}")
        if code == 429:
            raise RateLimited(_retry_after(response.headers.get("Retry-After"), signed_at))
        raise ServerError(f"{code} {error}")

    def _unauthorized(
        self, message: str, server_time: object, now: float, signed_at: float
    ) -> Unauthorized:
        """The 401, and what its `server_time` teaches: sign with the server's time while our
        clock is further off than the server tolerates, with our own clock again once it is not
        (NTP fixed it). Set, not adjusted, so answers to requests signed before it changed (other
        loops share this client) teach the same thing again instead of correcting twice."""
        if not isinstance(server_time, str):
            return Unauthorized(message)
        try:
            server = parse_rfc3339(server_time)
        except (ValueError, OverflowError):
            return Unauthorized(message)
        skew = server - now
        self.clock_offset_s = skew if abs(skew) > SKEW_BLAME_S else 0.0
        return Unauthorized(message, skew, server - signed_at)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _envelope(key: str, bodies: list[str]) -> bytes:
    return f'{{"{key}":[{",".join(bodies)}]}}'.encode()


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        return None
    return data if isinstance(data, dict) else None


def _whole(value: object, most: int = MAX_WHOLE) -> int:
    """A revision or count from the server: a JSON integer from 0 to `most` (3.0 is 3, as JSON
    Schema reads it). ValueError for anything else: true, "3", 3.5, NaN, Infinity, 400 digits."""
    if isinstance(value, float) and value.is_integer():  # never NaN or Infinity
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not an integer: {value!r:.40}")
    if not 0 <= value <= most:
        raise ValueError(f"not an integer from 0 to {most}: {value!r:.40}")
    return value


def _text(result: dict[str, Any]) -> str | None:
    """A result's `error`, as text the hub can store and log (what UTF-8 cannot hold escaped)."""
    error = result.get("error")
    if error is None:
        return None
    return str(error).encode("utf-8", "backslashreplace").decode("utf-8")


def _is_unicode(text: str) -> bool:
    """False for a string JSON allowed but UTF-8 cannot hold (a lone surrogate, from `\\ud800`)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: The longest `Retry-After` the hub obeys: a day. The contract says to wait at least what the
#: server asks; a server asking for centuries is broken, and the hub would never sync again.
MAX_RETRY_AFTER_S = 86_400


def _retry_after(value: str | None, server_now: float) -> float | None:
    """Seconds from a `Retry-After` header, either form of RFC 9110 (delay-seconds, or an
    HTTP-date, counted from `server_now`: our best guess of the server's time). None when the
    header is missing or names no wait (zero, in the past, nonsense)."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)  # Infinity for 309 digits or more: no usable wait
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):  # Overflow: fields of 20 digits
            return None
        # An HTTP-date is GMT; a zone-less one ("-0000") must not be read as local time.
        seconds = when.replace(tzinfo=when.tzinfo or UTC).timestamp() - server_now
    if not 0 < seconds < math.inf:
        return None
    if seconds > MAX_RETRY_AFTER_S:
        _log.warning(
            "the cloud asked for a wait of %.3g s; waiting %d s at most", seconds, MAX_RETRY_AFTER_S
        )
    return min(seconds, MAX_RETRY_AFTER_S)
