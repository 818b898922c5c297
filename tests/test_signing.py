from sync.signing import MAX_SKEW_S, authorization, parse_authorization, signature, verify


def test_signature_matches_the_contract_by_hand() -> None:
    import hashlib
    import hmac

    body = b'{"incidents":[]}'
    message = (
        b"POST\n/v1/hubs/hub-1/incidents\n1700000000\n" + hashlib.sha256(body).hexdigest().encode()
    )
    expected = hmac.new(b"k" * 32, message, hashlib.sha256).hexdigest()
    assert signature(b"k" * 32, "post", "/v1/hubs/hub-1/incidents", 1700000000, body) == expected


def test_round_trip_and_tamper() -> None:
    secret = b"s" * 32
    header = authorization(
        "hub-1", secret, "GET", "/v1/hubs/hub-1/updates?wait=30", 1700000000, b""
    )
    signed = parse_authorization(header)
    assert signed is not None
    assert (signed.hub_id, signed.ts) == ("hub-1", 1700000000)
    assert verify(signed, secret, "GET", "/v1/hubs/hub-1/updates?wait=30", b"")
    assert not verify(signed, secret, "GET", "/v1/hubs/hub-1/updates?wait=29", b"")
    assert not verify(signed, b"x" * 32, "GET", "/v1/hubs/hub-1/updates?wait=30", b"")
    assert parse_authorization("Bearer abc") is None
    assert parse_authorization(None) is None
    assert MAX_SKEW_S == 300
