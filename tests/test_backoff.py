from hub.backoff import Backoff


def test_capped_jittered_and_reset() -> None:
    b = Backoff(initial=0.5, cap=30.0)
    delays = [b.next_delay() for _ in range(2000)]  # a long outage must not overflow
    assert all(0.25 <= d <= 30.0 for d in delays)
    assert max(delays[-100:]) > 15.0  # it reached the cap region
    assert delays[0] <= 0.5
    b.reset()
    assert b.next_delay() <= 0.5
