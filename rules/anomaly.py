"""Sustained anomalies become incidents; single spikes do not.

Each stream's `AnomalyScore`s run through a small episode machine with hysteresis:

* an episode **starts** at a score at or above the model's threshold;
* it stays alive while scores stay at or above `threshold * hold_ratio` (the lower band keeps a
  score wobbling around the threshold from splitting one episode into many);
* it is **sustained** once its scores have stayed in the band for `sustain_s` (from its start to
  its latest score in the band: a burst followed by quiet is not sustained, however long the
  quiet lasts before the episode ends) with at least `min_points` scores at or above the
  threshold: then it opens (or adds to) the stream's incident, with the model, its
  version and the episode's score trace as evidence;
* it **ends** after `clear_s` below the lower band; the incident gets the end as evidence and stays
  open for the homeowner (a detector that adapts to a new level will go quiet while a pump is
  still drawing 15 % more: only a person can say it was fixed). A later episode of the same stream
  adds to the same open incident.

The defaults (sustain 15 min, clear 1 h, 5 points, band 0.8) are tuned for the sustained score
`models.service.AnomalyService` publishes by default, which is itself slow to rise (a window of
hours, two blocks in a row): together they open an incident for a level shift, drift, leak or stuck
sensor and none for a spike (see models/README.md for the rates).

State per stream is a few numbers and a bounded trace; streams are capped (`max_streams`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from hub.bus import Bus
from hub.events import AnomalyScore, IncidentKey, IncidentReport, scoped_key
from hub.incident import IncidentEvidence, Severity

RULE_SOURCE_KIND = "anomaly"
_SLICE = 256  # scores handled between two turns of the event loop
_TRACE = 12  # scores kept as evidence per episode

_PLANS = {
    "water_damage": (
        "Check for running water, a dripping tap, a running toilet or a leak near the pump.",
    ),
    "electrical": (
        "Check the appliance on this circuit for heat, noise or a burning smell; switch it off if "
        "in doubt.",
    ),
    "hvac_failure": ("Check the heating or cooling system: filters, vents, thermostat setting.",),
}


@dataclass(slots=True)
class _Episode:
    started: float
    last_high: float
    highs: int = 0
    peak: float = 0.0
    reported: bool = False
    trace: deque[AnomalyScore] = field(default_factory=lambda: deque(maxlen=_TRACE))


class AnomalyRule:
    def __init__(
        self,
        *,
        bus: Bus,
        locations: Mapping[str, str | None] | None = None,
        sustain_s: float = 900.0,
        clear_s: float = 3600.0,
        min_points: int = 5,
        hold_ratio: float = 0.8,
        max_streams: int = 2000,
    ) -> None:
        self._bus = bus
        self._locations = locations or {}
        self._sustain = sustain_s
        self._clear = clear_s
        self._min_points = min_points
        self._hold = hold_ratio
        self._max = max_streams
        self._episodes: dict[str, _Episode] = {}
        self._sub = bus.subscribe("anomaly-rule", (AnomalyScore,), maxsize=50_000)

    async def run(self) -> None:
        async for batch in self._sub.batches():
            for i, score in enumerate(batch, 1):
                report = self.step(score)
                if report is not None:
                    self._bus.publish(report)
                if i % _SLICE == 0:
                    await asyncio.sleep(0)  # let a leak in between slices of a large batch

    def step(self, s: AnomalyScore) -> IncidentReport | None:
        """Advance the stream's episode by one score; the report to publish, if any."""
        episode = self._episodes.get(s.stream)
        high = s.score >= s.threshold
        if episode is None:
            if not high or len(self._episodes) >= self._max:
                return None
            episode = self._episodes[s.stream] = _Episode(started=s.at, last_high=s.at)
        if s.score >= s.threshold * self._hold:
            episode.last_high = s.at
            episode.trace.append(s)
            if high:
                episode.highs += 1
                episode.peak = max(episode.peak, s.score)
        elif s.at - episode.last_high >= self._clear:
            del self._episodes[s.stream]
            return self._ended(s) if episode.reported else None
        held = episode.last_high - episode.started  # how long it has stayed in the band
        sustained = held >= self._sustain and episode.highs >= self._min_points
        if sustained and not episode.reported:
            report = self._opened(s, episode)
            episode.reported = True  # only once the report exists: a failure leaves it to come
            return report
        return None

    def _opened(self, s: AnomalyScore, e: _Episode) -> IncidentReport:
        device, _, measurement = s.stream.partition("/")
        minutes = (s.at - e.started) / 60
        what = measurement.replace("_", " ") if measurement else "readings"
        return self._report(
            s,
            title=f"Unusual {what} at {device}: anomalous for {minutes:.0f} min "
            f"(peak score {e.peak:.2f})",
            evidence=tuple(_evidence(x) for x in e.trace),
            response_plan=_PLANS.get(s.system, ()),
        )

    def _ended(self, s: AnomalyScore) -> IncidentReport:
        """The episode's end, as evidence: the incident stays open for the homeowner."""
        return self._report(s, title="", evidence=(_evidence(s),), response_plan=())

    def _report(
        self,
        s: AnomalyScore,
        *,
        title: str,
        evidence: tuple[IncidentEvidence, ...],
        response_plan: tuple[str, ...],
    ) -> IncidentReport:
        device = s.stream.partition("/")[0]
        return IncidentReport(
            key=scoped_key(IncidentKey.ANOMALY, s.stream),
            emergency_type=s.system,
            severity=Severity.MEDIUM.value,
            title=title,
            location=self._locations.get(device),
            source_id=s.model,
            source_version=s.model_version,
            source_kind=RULE_SOURCE_KIND,
            at=s.at,
            sensors=(device,),
            evidence=evidence,
            response_plan=response_plan,
        )


def _evidence(s: AnomalyScore) -> IncidentEvidence:
    return IncidentEvidence(
        s.stream.partition("/")[0], "anomaly_score", round(s.score, 4), None, s.at
    )
