"""The anomaly rule: a sustained anomaly opens one incident, a spike opens none, hysteresis holds
one episode together, and the incident carries the model and its score trace."""

from __future__ import annotations

from hub.bus import Bus
from hub.events import AnomalyScore, IncidentReport
from rules.anomaly import AnomalyRule

T0 = 1_795_651_200.0
STREAM = "pump-plug/current"


def _score(value: float, at: float) -> AnomalyScore:
    return AnomalyScore(STREAM, "electrical", "univariate", "1.0.0", value, 0.9, at)


def _run(rule: AnomalyRule, scores: list[float], every: float = 10.0) -> list[IncidentReport]:
    reports = [rule.step(_score(v, T0 + i * every)) for i, v in enumerate(scores)]
    return [r for r in reports if r is not None]


def test_a_single_spike_opens_nothing() -> None:
    rule = AnomalyRule(bus=Bus())
    assert _run(rule, [0.1] * 10 + [0.99] + [0.1] * 200) == []


def test_a_sustained_anomaly_opens_exactly_one_incident_with_its_trace() -> None:
    rule = AnomalyRule(bus=Bus(), locations={"pump-plug": "basement"})
    reports = _run(rule, [0.1] * 10 + [0.95] * 120)  # 1200 s above the threshold
    assert len(reports) == 1
    report = reports[0]
    assert report.key == "anomaly:pump-plug/current"
    assert report.emergency_type == "electrical"
    assert report.source_kind == "anomaly"
    assert (report.source_id, report.source_version) == ("univariate", "1.0.0")
    assert report.location == "basement"
    assert report.at == T0 + 100 * 10  # 900 s (the default sustain_s) after row 10
    assert report.title == "Unusual current at pump-plug: anomalous for 15 min (peak score 0.95)"
    assert [e.value for e in report.evidence] == [0.95] * 12  # the bounded score trace
    assert {e.measurement for e in report.evidence} == {"anomaly_score"}


def test_hysteresis_keeps_a_wobbling_score_in_one_episode() -> None:
    rule = AnomalyRule(bus=Bus())
    wobble = [0.95, 0.8] * 60  # dips below the threshold but stays above 0.8 x 0.9
    assert len(_run(rule, wobble)) == 1


def test_a_short_burst_above_the_threshold_opens_nothing() -> None:
    rule = AnomalyRule(bus=Bus())
    assert _run(rule, [0.1] * 10 + [0.95] * 60 + [0.1] * 400) == []  # 600 s < sustain_s


def test_a_score_that_only_touches_the_lower_band_never_starts_an_episode() -> None:
    rule = AnomalyRule(bus=Bus())
    assert _run(rule, [0.85] * 200) == []


def test_the_episode_ends_after_the_clear_time_and_the_next_one_reports_again() -> None:
    rule = AnomalyRule(bus=Bus(), sustain_s=60, clear_s=300)
    first = _run(rule, [0.95] * 10 + [0.1] * 31)  # 310 s below the band
    assert len(first) == 2
    opened, ended = first
    assert not opened.resolve
    assert not ended.resolve
    assert ended.title == ""
    assert ended.evidence[0].value == 0.1
    again = _run(rule, [0.95] * 10)
    assert len(again) == 1
    assert again[0].key == opened.key  # merges into the same open incident


def test_streams_are_capped() -> None:
    rule = AnomalyRule(bus=Bus(), max_streams=1)
    rule.step(AnomalyScore("a/power", "electrical", "m", "1", 0.95, 0.9, T0))
    assert rule.step(AnomalyScore("b/power", "electrical", "m", "1", 0.95, 0.9, T0)) is None
    assert len(rule._episodes) == 1


class _LocationsFailingOnce(dict[str, str]):
    """The device locations, whose first look-up meets an error nobody expected."""

    def __init__(self) -> None:
        super().__init__({"pump-plug": "basement"})
        self.failed = False

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        if not self.failed:
            self.failed = True
            raise RuntimeError("something nobody expected")
        return super().get(key, default)


def test_a_report_that_could_not_be_built_is_built_at_the_next_score() -> None:
    """The rule's run fails while it builds the report (`hub.contained` starts it again): the
    episode must not count as reported, or its incident would never open."""
    rule = AnomalyRule(bus=Bus(), locations=_LocationsFailingOnce())
    scores = [_score(v, T0 + i * 10.0) for i, v in enumerate([0.1] * 10 + [0.95] * 120)]
    reports = []
    failed_at = None
    for s in scores:
        try:
            report = rule.step(s)
        except RuntimeError:
            failed_at = s.at
            continue
        if report is not None:
            reports.append(report)
    assert failed_at == T0 + 100 * 10  # where it first became sustained
    assert len(reports) == 1
    assert reports[0].at == failed_at + 10
    assert reports[0].title.startswith("Unusual current at pump-plug: anomalous for 15 min")
