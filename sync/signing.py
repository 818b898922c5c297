"""The dispatch API's request signature (`HomeGuard-HMAC-SHA256`), shared by the hub's client and
the reference server.

    Authorization: HomeGuard-HMAC-SHA256 hub=<hub_id>, ts=<unix seconds>, sig=<hex>
    sig = HMAC-SHA256(secret, METHOD + "\\n" + PATH_WITH_QUERY + "\\n" + ts + "\\n" + hex(SHA-256(body)))
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

SCHEME = "HomeGuard-HMAC-SHA256"
#: A signature older or newer than this (seconds) is refused by the server.
MAX_SKEW_S = 300

_HEADER = re.compile(
    rf"^{SCHEME} hub=(?P<hub>[A-Za-z0-9_-]{{3,64}}), ts=(?P<ts>\d{{1,12}}), sig=(?P<sig>[0-9a-f]{{64}})$"
)


def signature(secret: bytes, method: str, path_with_query: str, ts: int, body: bytes) -> str:
    message = "\n".join(
        (method.upper(), path_with_query, str(ts), hashlib.sha256(body).hexdigest())
    ).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def authorization(
    hub_id: str, secret: bytes, method: str, path_with_query: str, ts: int, body: bytes
) -> str:
    """The Authorization header value for one request. Never log it."""
    sig = signature(secret, method, path_with_query, ts, body)
    return f"{SCHEME} hub={hub_id}, ts={ts}, sig={sig}"


@dataclass(frozen=True, slots=True)
class SignedBy:
    hub_id: str
    ts: int
    sig: str


def parse_authorization(value: str | None) -> SignedBy | None:
    """The parts of a well-formed header; None for a missing or malformed one."""
    if not value:
        return None
    m = _HEADER.match(value.strip())
    if m is None:
        return None
    return SignedBy(m["hub"], int(m["ts"]), m["sig"])


def verify(signed: SignedBy, secret: bytes, method: str, path_with_query: str, body: bytes) -> bool:
    """Constant-time check of the signature (the clock check is the caller's: it knows `now`)."""
    expected = signature(secret, method, path_with_query, signed.ts, body)
    return hmac.compare_digest(expected, signed.sig)
