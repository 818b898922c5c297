"""mDNS / DNS-SD: find an MQTT broker on the LAN, and announce the hub itself.

Two small tools over python-zeroconf's asyncio API, both on the daemon's own event loop (a
Zeroconf made inside a running loop starts no thread of its own):

- `find_mqtt_broker()` browses `_mqtt._tcp.local.` and returns the first broker that resolves,
  as (IP address, port), or None when none answered in time. Only plain `_mqtt._tcp` is used
  automatically: a broker announced as `_secure-mqtt._tcp` is logged (INFO) and skipped, because
  TLS needs an explicit `[mqtt] host`, `port` and `[mqtt.tls]` (which CA, which client
  certificate) that an announcement cannot supply. If several plain brokers answer, whichever
  resolves first wins: name the broker in `[mqtt]` when that matters. The address is an IP,
  IPv4 preferred, so connecting needs no `.local` name resolution (no nss-mdns in the sandbox).

- `HubAnnouncer` registers `<hub_id>._homeguard._tcp.local.` with TXT `id`, `version` and
  `api`, and withdraws it (goodbye packets) on exit. The hub listens on no port of its own (it
  talks through the MQTT broker), and an SRV record must carry one: it announces port 0, which
  DNS-SD uses for "this name exists, but not this service here" (RFC 6763, section 8). Pass
  `port=` once the hub serves something. Announcing is never fatal: no network, no multicast or
  a name taken by another device logs one WARNING and the hub runs on; `run()` retries with a
  capped backoff (a Pi often boots before its Wi-Fi is up).

Note: anyone on the LAN can announce `_mqtt._tcp`. Discovery is used only when `[mqtt] host` is
unset and no broker listens on this machine, and it trusts the LAN: a hub configured with a
password would send it to whoever answered. Name the broker in `[mqtt]` (with TLS) wherever the
LAN is not trusted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Self, TypeAlias

import ifaddr
from zeroconf import Error as ZeroconfError
from zeroconf import (
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from hub.backoff import Backoff

MQTT_TYPE = "_mqtt._tcp.local."
SECURE_MQTT_TYPE = "_secure-mqtt._tcp.local."
HUB_TYPE = "_homeguard._tcp.local."
API_VERSION = "1"

#: Where to speak mDNS: InterfaceChoice.All (every interface; IPv4, zeroconf's default) or a list
#: of this machine's interface addresses (tests use ["127.0.0.1"]).
Interfaces: TypeAlias = InterfaceChoice | Sequence[str]

_log = logging.getLogger(__name__)

_RESOLVE_TIMEOUT_MS = 3000  # per service; find_mqtt_broker's own timeout bounds the whole search
_GOODBYE_TIMEOUT_S = 2.0  # bound on the goodbye packets at exit, so shutdown never hangs on them
_MAX_LABEL = 63  # bytes in one DNS label; hub ids may be 64 characters


async def find_mqtt_broker(
    timeout_s: float, interfaces: Interfaces = InterfaceChoice.All
) -> tuple[str, int] | None:
    """(IP address, port) of the first `_mqtt._tcp` broker that resolves; None after `timeout_s`.

    Never raises for network trouble (no multicast, no interface) or for what devices on the LAN
    send: it logs a WARNING and returns None, like a search that found nothing. An answer that is
    no `_mqtt._tcp` instance (any device can send one) is ignored, logged once at WARNING (then
    DEBUG), and the search goes on.
    """
    try:
        _addresses(interfaces)  # first: zeroconf leaks a socket when it fails to join a group
        aiozc = AsyncZeroconf(interfaces=interfaces)
    except (OSError, ZeroconfError, _NoAddressError) as err:
        _log.warning("mDNS unavailable, cannot look for an MQTT broker: %s", _why(err))
        return None
    try:
        async with asyncio.timeout(timeout_s):
            return await _first_plain_broker(aiozc.zeroconf)
    except TimeoutError:
        _log.info("no %s broker answered within %.1f s", MQTT_TYPE, timeout_s)
        return None
    except (OSError, ZeroconfError) as err:  # the network failed us mid-search
        _log.warning("mDNS search for an MQTT broker failed: %s", _why(err))
        return None
    finally:
        await aiozc.async_close()


async def _first_plain_broker(zc: Zeroconf) -> tuple[str, int]:
    """Browse both MQTT types until a plain broker resolves (runs until cancelled otherwise)."""
    # The browser calls back on the loop; the queue turns that into a stream. Only the first
    # usable answer matters, so a full queue drops the rest.
    found: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=16)
    seen: set[str] = set()
    ignored = 0  # malformed answers: the first is a WARNING, the rest DEBUG

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed or name in seen or found.full():
            return
        seen.add(name)
        found.put_nowait((service_type, name))

    async with AsyncServiceBrowser(zc, [MQTT_TYPE, SECURE_MQTT_TYPE], handlers=[on_change]):
        while True:
            service_type, name = await found.get()
            try:
                resolved = await _resolve(zc, service_type, name)
            except (ZeroconfError, OSError) as err:
                # Anyone on the LAN can send any PTR for the type (a printer's name, junk):
                # zeroconf refuses to resolve what is no instance of it. Not a broker; go on.
                level = logging.WARNING if ignored == 0 else logging.DEBUG
                ignored += 1
                _log.log(
                    level,
                    "mDNS: ignored a malformed %s answer %r (%s); still looking",
                    service_type,
                    name,
                    _why(err),
                )
                continue
            if resolved is None:
                _log.debug("mDNS: %s did not resolve", name)
            elif service_type == SECURE_MQTT_TYPE:
                _log.info(
                    "mDNS: TLS broker %s at %s:%d not used automatically: "
                    "set [mqtt] host, port and [mqtt.tls] to use it",
                    name,
                    *resolved,
                )
            else:
                _log.info("mDNS: using MQTT broker %s at %s:%d", name, *resolved)
                return resolved


async def _resolve(zc: Zeroconf, service_type: str, name: str) -> tuple[str, int] | None:
    """The address and port of `name`; None when it does not resolve in time. Raises zeroconf's
    `Error` (e.g. `BadTypeInNameException`) for a name that is no instance of `service_type`."""
    info = AsyncServiceInfo(service_type, name)
    if not await info.async_request(zc, _RESOLVE_TIMEOUT_MS) or not info.port:
        return None
    addresses = info.parsed_scoped_addresses(IPVersion.V4Only) or info.parsed_scoped_addresses()
    return (addresses[0], info.port) if addresses else None


class HubAnnouncer:
    """Announces this hub as `<hub_id>._homeguard._tcp.local.` while the context is open.

    `async with HubAnnouncer(...) as a:` tries once; `a.announced` tells whether it worked.
    `await HubAnnouncer(...).run()` announces until cancelled, retrying failures.
    """

    def __init__(
        self,
        hub_id: str,
        version: str,
        *,
        port: int = 0,
        interfaces: Interfaces = InterfaceChoice.All,
        backoff: Backoff | None = None,
    ) -> None:
        self.hub_id = hub_id
        self.version = version
        self.port = port
        self.interfaces = interfaces
        self.service_name = f"{hub_id[:_MAX_LABEL]}.{HUB_TYPE}"
        self._backoff = backoff or Backoff(initial=5.0, cap=300.0)
        self._aiozc: AsyncZeroconf | None = None
        self._info: AsyncServiceInfo | None = None
        self._failures = 0

    @property
    def announced(self) -> bool:
        """True from the moment the name is claimed (probing won) until the context exits."""
        return self._info is not None

    async def __aenter__(self) -> Self:
        try:
            await self._register()
        except (OSError, ZeroconfError, _NoAddressError) as err:
            await self._withdraw()
            self._failed(err)
        except BaseException:
            # Cancelled mid-announcement, or an error nobody expected (the hub starts the
            # announcer again): say goodbye and close the sockets, then re-raise.
            await self._withdraw()
            raise
        else:
            if self._failures:
                _log.info("mDNS: announcing %s again", self.service_name)
            self._failures = 0
            self._backoff.reset()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._withdraw()

    async def run(self) -> None:
        """Announce until cancelled; when announcing fails, try again after a capped backoff."""
        while True:
            async with self:
                if self.announced:
                    await asyncio.get_running_loop().create_future()  # until cancelled
            await asyncio.sleep(self._backoff.next_delay())

    async def _register(self) -> None:
        info = AsyncServiceInfo(
            HUB_TYPE,
            self.service_name,
            port=self.port,
            properties={"id": self.hub_id, "version": self.version, "api": API_VERSION},
            # Its own host name: the Pi's own `<hostname>.local` belongs to Avahi.
            server=f"homeguard-{self.hub_id}"[:_MAX_LABEL] + ".local.",
            addresses=_addresses(self.interfaces),
        )
        self._aiozc = AsyncZeroconf(interfaces=self.interfaces)
        # Probing first (NonUniqueNameException if another device has the name), then the
        # announcements: from the first one on, others may cache the name and need a goodbye.
        announcing = await self._aiozc.async_register_service(info)
        self._info = info
        await announcing
        _log.info("mDNS: announced %s (version %s)", self.service_name, self.version)

    async def _withdraw(self) -> None:
        """Goodbye packets for the announced name (bounded in time), then close the sockets."""
        try:
            if self._aiozc is not None and self._info is not None:
                async with asyncio.timeout(_GOODBYE_TIMEOUT_S):
                    await (await self._aiozc.async_unregister_service(self._info))
        except (TimeoutError, OSError, ZeroconfError) as err:
            _log.debug("mDNS: goodbye for %s not sent: %s", self.service_name, err)
        finally:
            await self._close()

    async def _close(self) -> None:
        aiozc, self._aiozc, self._info = self._aiozc, None, None
        if aiozc is not None:
            await aiozc.async_close()

    def _failed(self, err: Exception) -> None:
        if isinstance(err, NonUniqueNameException):
            reason = "another device already announces this name (a second hub with this id?)"
        else:
            reason = str(err) or type(err).__name__
        level = logging.WARNING if self._failures == 0 else logging.DEBUG
        self._failures += 1
        _log.log(
            level, "mDNS: cannot announce %s, running on without: %s", self.service_name, reason
        )


def _why(err: Exception) -> str:
    """`BadTypeInNameException` (zeroconf's errors often have no message), or `Type: message`."""
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


class _NoAddressError(Exception):
    """No interface address to announce (the network is not up yet)."""


def _addresses(interfaces: Interfaces) -> list[str]:
    """The addresses to announce: the chosen ones, or every non-loopback IPv4 address.

    Checked before zeroconf opens any socket: its constructor leaks its listen socket when an
    interface cannot join the multicast group (zeroconf 0.154, `create_sockets`).
    """
    local = {
        ip.ip if isinstance(ip.ip, str) else ip.ip[0]
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
    }
    if isinstance(interfaces, InterfaceChoice):
        found = sorted(a for a in local if ":" not in a and not ipaddress.ip_address(a).is_loopback)
        if not found:
            raise _NoAddressError("no IPv4 address on any interface yet")
        return found
    if not interfaces:
        raise _NoAddressError("no interface address given")
    missing = [a for a in interfaces if a not in local]
    if missing:
        raise _NoAddressError(f"no interface has the address {', '.join(missing)}")
    return list(interfaces)


__all__ = [
    "HUB_TYPE",
    "MQTT_TYPE",
    "SECURE_MQTT_TYPE",
    "HubAnnouncer",
    "Interfaces",
    "find_mqtt_broker",
]
