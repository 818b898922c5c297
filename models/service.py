"""The daemon's anomaly service: numeric readings in, `AnomalyScore` events out.

The published `score` is, by default, the sustained-deviation score (`models.sustained`, with the
detector's stuck channel): it reaches the threshold only when a stream has moved away from its
usual daily profile for hours (or stopped changing), never for a single spike; the
anomaly rule applies its own hysteresis and episode logic to it.

One subscription to `Reading` (telemetry: bounded, drops the oldest when scoring falls behind,
counted in the bus stats). Each batch is scored off the event loop (`asyncio.to_thread`, one call
at a time, so the per-stream state is only ever touched by one thread) with one onnxruntime
session, loaded once at start and checked against its card's sha256. A refused model is logged
once at WARNING and the hub runs on with its rules only (the service then discards readings).

Per-stream state is bounded: at most `max_streams` streams are kept (the least recently updated
is forgotten first) and a stream silent for `idle_s` is forgotten; each stream's state is about
11-13 kB. A stream is `<device_id>/<measurement>`.

Configuration (the `[anomaly]` section):
- `model` (default `univariate`): the model streams are scored with.
- `max_streams` (default 500): streams with state at once (11-13 kB each).
- `queue_size` (default 20000): readings waiting for the scorer before the oldest is dropped.
- `idle_s` (default 7 days): a stream silent this long is forgotten (it warms up again).
- `ignore` (default none): device ids, or `device_id/measurement` streams, the univariate model
  leaves alone (a sensor whose normal life looks anomalous); the water system still gets them.
- `models_dir` (default: the models shipped in the package).
- `water` (default none): a `WaterSystemConfig` naming the devices of the home's pump loop, to
  score them together with the `water_system` model (stream `water_system`, system
  `water_damage`); see `models.water_service`.
- `publish` (default `sustained`): `sustained` publishes the sustained-deviation score (what the
  anomaly rule is tuned for); `level` each reading's onset score before the detector's
  suppression of repeats, `event` the score after it (one detection per event, then 0 for
  `suppress` readings; what `models score` prints).
- `state_file` (default none; the daemon: `<data_dir>/anomaly_streams.json`): the streams' state
  is written there every `save_every_s` (default an hour) and when the service stops, and read
  back when it starts (`models.state_file`), so a restart does not send every stream back to
  its warm-up. A file that cannot be used is said (`state_note`) and the streams start afresh.
  A water system's calibration stretch still being taken (or a fit that could not be written
  when it was made) is kept at the same times, in its own file (`models.water_service`); a
  recalibration asked by `models recalibrate` is done then instead.

A failure while scoring (a bug, never expected) is logged with its traceback, `problem` says so,
and the hub runs on with its rules only: the anomaly models never take the hub down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Literal

from hub.bus import Bus, Overflow, Subscription
from hub.clock import Clock
from hub.events import AnomalyScore, Reading
from hub.measurements import Measurement
from models import state_file
from models.likelihood import Score
from models.runtime import MODELS_DIR, LoadedModel, ModelError, load
from models.univariate import StreamState, UnivariateDetector
from models.water import WaterDetector
from models.water_service import WaterRows, WaterSystemConfig

_log = logging.getLogger(__name__)

#: The measurements scored, and the emergency type an anomaly in each would be.
SYSTEMS: dict[Measurement, str] = {
    Measurement.POWER: "electrical",
    Measurement.CURRENT: "electrical",
    Measurement.VOLTAGE: "electrical",
    Measurement.FLOW: "water_damage",
    Measurement.PRESSURE: "water_damage",
    Measurement.TEMPERATURE: "hvac_failure",
    Measurement.HUMIDITY: "hvac_failure",
}

_SWEEP_EVERY_S = 3600.0
#: Rows per ONNX call: large enough to amortise the call, small enough to keep the temporaries of
#: a second's readings from growing the hub's peak memory.
_CHUNK = 256


class AnomalyService:
    def __init__(
        self,
        *,
        bus: Bus,
        clock: Clock,
        model: str = "univariate",
        max_streams: int = 500,
        queue_size: int = 20_000,
        idle_s: float = 7 * 86_400.0,
        models_dir: Path = MODELS_DIR,
        publish: Literal["sustained", "level", "event"] = "sustained",
        water: WaterSystemConfig | None = None,
        pace_s: float = 1.0,
        state_file: Path | None = None,
        save_every_s: float = 3600.0,
        ignore: frozenset[str] = frozenset(),
    ) -> None:
        self._bus = bus
        self._clock = clock
        self._model_name = model
        self._max_streams = max_streams
        self._idle_s = idle_s
        self._models_dir = models_dir
        self._field = ("level", "event", "sustained").index(publish)
        self._water_config = water
        self._pace_s = pace_s
        self._ignore = ignore
        self._state_file = state_file
        self._save_every_s = save_every_s
        self._last_save = clock.monotonic()
        #: Held by whoever reads or writes stream state (the scoring thread, a save at stop).
        self._lock = threading.Lock()
        self._water: WaterRows | None = None
        self._sub: Subscription[Reading] = bus.subscribe(
            "anomaly",
            (Reading,),
            maxsize=queue_size,
            overflow=Overflow.DROP_OLDEST,
            where=self._wanted,
        )
        self._streams: OrderedDict[str, tuple[StreamState, float]] = OrderedDict()
        self._detector: UnivariateDetector | None = None
        self._last_sweep = clock.monotonic()
        self.problem: str | None = None
        self.started = asyncio.Event()  # set once the model is loaded or refused
        self.rules_only = asyncio.Event()  # set when nothing scores (models refused, or failed)
        self.discarded = 0  # readings dropped unscored because the model was refused
        self.scored = 0
        self.refused = 0
        self.forgotten = 0
        self.restored = 0  # streams whose state was read back at start
        self._restore_note: str | None = None  # why the state file was not used at start
        self._save_note: str | None = None  # why the last save failed
        self._warned_full = False

    @property
    def streams(self) -> int:
        return len(self._streams)

    @property
    def state_note(self) -> str | None:
        """Why the state file could not be written (last save), or was not used (at start)."""
        return self._save_note or self._restore_note

    def water_status(self) -> dict[str, object] | None:
        """The water system's calibration (None when no water system is configured or loaded)."""
        water = self._water
        if water is None:
            return None
        return {
            "calibrated": water.calibrated,
            "restored": water.restored,
            **water.calibration_progress(),
            "note": water.calibration_note,
        }

    def _wanted(self, reading: Reading) -> bool:
        if isinstance(reading.value, bool | str):
            return False
        if self._scored(reading):
            return True
        water = self._water_config
        return water is not None and (reading.device_id, reading.measurement) in water.columns

    def _scored(self, reading: Reading) -> bool:
        """Whether the univariate model scores this (numeric) reading's stream."""
        if reading.measurement not in SYSTEMS:
            return False
        ignore = self._ignore
        return not ignore or (
            reading.device_id not in ignore
            and f"{reading.device_id}/{reading.measurement.value}" not in ignore
        )

    async def run(self) -> None:
        loaded = await asyncio.to_thread(self._load, self._model_name)
        if loaded is not None:
            self._detector = UnivariateDetector(loaded)
        if self._water_config is not None:
            water = await asyncio.to_thread(self._load, "water_system")
            if water is not None:
                self._water = WaterRows(self._water_config, WaterDetector(water))
        if self._detector is not None and self._state_file is not None:
            await asyncio.to_thread(self._restore, self._state_file)
        if self._detector is None and self._water is None:
            self.rules_only.set()
        self.started.set()
        try:
            await self._score_batches()
        finally:
            self._save()  # at stop; waits for a batch being scored, if any

    async def _score_batches(self) -> None:
        async for batch in self._sub.batches():
            if self._detector is None and self._water is None:
                self.discarded += len(batch)  # nothing scores them; the queue must not fill
                continue
            try:
                scores, water_scores = await asyncio.to_thread(self._score, batch)
            except Exception as err:  # noqa: BLE001 - a scoring bug must not stop the hub
                _log.exception("anomaly scoring failed; the hub runs on with rules only")
                self.problem = f"scoring failed ({type(err).__name__}: {err}); rules only"
                self._detector = self._water = None
                self.discarded += len(batch)
                self.rules_only.set()
                continue
            for start in range(0, len(batch), _CHUNK):
                # A second's scores in slices, the loop turning between them: a leak arriving
                # meanwhile waits for one slice (~0.5 ms), not for all of them.
                end = start + _CHUNK
                self._publish(batch[start:end], scores[start:end])
                await asyncio.sleep(0)
            self._publish_water(water_scores)
            if self._pace_s > 0:
                # A period, not a wait for an event: readings gather meanwhile, so the worker
                # thread wakes once a second for a large batch instead of once per message (each
                # wake costs a thread hand-off and GIL traffic that the leak path would feel).
                await asyncio.sleep(self._pace_s)

    def _load(self, name: str) -> LoadedModel | None:
        try:
            loaded = load(name, self._models_dir)
        except ModelError as err:
            self.problem = str(err)
            _log.warning("anomaly model refused, the hub runs on with rules only: %s", err)
            return None
        _log.info("anomaly model %s %s loaded", loaded.name, loaded.version)
        return loaded

    def _restore(self, path: Path) -> None:
        detector = self._detector
        assert detector is not None
        try:
            streams = state_file.load(
                path, str(detector.model.card["sha256"]), detector.params, detector.sustained
            )
        except FileNotFoundError:
            return
        except (OSError, state_file.StateFileError) as err:
            self._restore_note = f"{path} was not used ({err}): the streams start afresh"
            _log.warning("anomaly scoring: %s", self._restore_note)
            return
        kept = list(streams.items())[-self._max_streams :]  # the most recently updated
        with self._lock:
            self._streams = OrderedDict(kept)
        self.restored = len(kept)
        _log.info("anomaly scoring: %d streams' state read back from %s", len(kept), path)

    def _save(self) -> None:
        path = self._state_file
        detector = self._detector
        with self._lock:
            if self._water is not None:
                self._water.keep_progress()
            if path is not None and detector is not None:
                self._save_streams(path, detector)
        self._last_save = self._clock.monotonic()

    def _save_streams(self, path: Path, detector: UnivariateDetector) -> None:
        """Called with the state lock held."""
        try:
            state_file.save(
                path, str(detector.model.card["sha256"]), self._clock.now(), self._streams
            )
        except OSError as err:  # a full disk: scoring goes on, the state is kept next time
            self._save_note = f"cannot keep the streams' state in {path} ({err})"
            _log.warning("anomaly scoring: %s", self._save_note)
        else:
            self._save_note = None

    def _score(self, batch: list[Reading]) -> tuple[list[Score | None], list[tuple[float, float]]]:
        """Runs in the worker thread; takes the state lock (a save at stop waits for it)."""
        with self._lock:
            out = self._score_locked(batch)
        if self._clock.monotonic() - self._last_save >= self._save_every_s:
            self._save()
        return out

    def _score_locked(
        self, batch: list[Reading]
    ) -> tuple[list[Score | None], list[tuple[float, float]]]:
        detector = self._detector
        out: list[Score | None] = [None] * len(batch)
        if detector is not None:
            items = []
            where = []
            for i, r in enumerate(batch):
                if self._scored(r):
                    state = self._state(f"{r.device_id}/{r.measurement.value}", r.at)
                    items.append((state, r.at, float(r.value)))
                    where.append(i)
            scores = [
                score
                for start in range(0, len(items), _CHUNK)  # bounded temporaries per ONNX call
                for score in detector.score_batch(items[start : start + _CHUNK])
            ]
            for i, score in zip(where, scores, strict=True):
                out[i] = score
                if score is None:
                    self.refused += 1
            self._sweep()
        water = self._water
        return out, ([] if water is None else water.score(batch))

    def _state(self, stream: str, at: float) -> StreamState:
        streams = self._streams
        entry = streams.get(stream)
        if entry is not None:
            streams.move_to_end(stream)
            streams[stream] = (entry[0], at)
            return entry[0]
        if len(streams) >= self._max_streams:
            streams.popitem(last=False)
            self.forgotten += 1
            if not self._warned_full:
                self._warned_full = True
                _log.warning(
                    "anomaly scoring holds %d streams, its limit; the least recent are forgotten",
                    self._max_streams,
                )
        state = StreamState()
        streams[stream] = (state, at)
        return state

    def _sweep(self) -> None:
        now = self._clock.monotonic()
        if now - self._last_sweep < _SWEEP_EVERY_S:
            return
        self._last_sweep = now
        cutoff = self._clock.now() - self._idle_s
        idle = [k for k, (_, at) in self._streams.items() if at < cutoff]
        for k in idle:
            del self._streams[k]
        self.forgotten += len(idle)

    def _publish_water(self, scores: list[tuple[float, float]]) -> None:
        water = self._water
        if water is None:
            return
        model = water.detector.model
        for at, score in scores:
            self._bus.publish(
                AnomalyScore(
                    stream=water.config.name,
                    system="water_damage",
                    model=model.name,
                    model_version=model.version,
                    score=score,
                    threshold=water.detector.threshold,
                    at=at,
                )
            )

    def _publish(self, batch: list[Reading], scores: list[Score | None]) -> None:
        detector = self._detector
        if detector is None:
            return
        model = detector.model
        for r, score in zip(batch, scores, strict=True):
            if score is None:
                continue
            self.scored += 1
            self._bus.publish(
                AnomalyScore(
                    stream=f"{r.device_id}/{r.measurement.value}",
                    system=SYSTEMS[r.measurement],
                    model=model.name,
                    model_version=model.version,
                    score=score[self._field],
                    threshold=detector.threshold,
                    at=r.at,
                )
            )
