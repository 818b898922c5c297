"""The streams' state survives a restart, exactly; a file that cannot be used is refused with the
reason; and a failure while scoring leaves the hub on its rules, never down."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from hub.bus import Bus, Subscription
from hub.events import AnomalyScore, Reading
from hub.measurements import Measurement
from models import runtime, state_file
from models.detect import detector
from models.features import WINDOW
from models.service import AnomalyService
from models.train import synthetic
from models.univariate import BlockScale, StreamState, UnivariateDetector
from models.weekly import WeeklyScale
from tests.models_support import T0, Clock, running


async def _scores(service: AnomalyService, bus: Bus, readings: list[Reading]) -> list[AnomalyScore]:
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,), maxsize=100_000)
    async with running(service):
        for r in readings:
            bus.publish(r)
        async with asyncio.timeout(10):
            await out.wait(len(readings))
    return out.drain()


def _univariate() -> UnivariateDetector:
    det = detector("univariate")
    assert isinstance(det, UnivariateDetector)
    return det


def _streams(n: int = 3000) -> list[Reading]:
    """Three sensors over a few days (a day and more is what the slow channels need)."""
    out = []
    for i, (device, kind) in enumerate(
        (("plug", "power"), ("hall", "temperature"), ("bath", "humidity"))
    ):
        s = synthetic.make_stream(kind, n, np.random.default_rng(i))
        m = Measurement(kind)
        out += [Reading(device, m, x, t) for t, x in zip(s.t.tolist(), s.x.tolist(), strict=True)]
    return sorted(out, key=lambda r: r.at)


def test_a_state_read_back_scores_exactly_as_the_state_kept_in_memory(tmp_path: Path) -> None:
    det = _univariate()
    s = synthetic.make_stream("temperature", 4000, np.random.default_rng(5))
    x = s.x.copy()
    x[3200:] += 3.0  # a shift after the restart: every channel has something to say
    kept = StreamState()
    det.score_batch(
        [(kept, t, v) for t, v in zip(s.t[:2500].tolist(), x[:2500].tolist(), strict=True)]
    )
    path = tmp_path / "streams.json"
    sha = str(det.model.card["sha256"])
    state_file.save(path, sha, T0, {"hall/temperature": (kept, float(s.t[2499]))})
    ((name, (restored, at)),) = state_file.load(path, sha, det.params, det.sustained).items()
    assert (name, at) == ("hall/temperature", float(s.t[2499]))
    assert restored.likelihood.rarity is not None  # the slow channels were running
    assert restored.sustained.recent is not None
    assert restored.blocks.likelihood.n > det.params.warmup  # and the block scale too
    rest = list(zip(s.t[2500:].tolist(), x[2500:].tolist(), strict=True))
    after_restart = det.score_batch([(restored, t, v) for t, v in rest])
    in_memory = det.score_batch([(kept, t, v) for t, v in rest])
    assert after_restart == in_memory
    assert max(score.level for score in in_memory if score is not None) >= 0.5


@pytest.mark.parametrize("kind", synthetic.KINDS)
def test_every_state_the_detector_writes_passes_the_checks(kind: str) -> None:
    """The checks refuse only what the detector cannot write: not a fresh state, nor one after
    normal readings, nor one after readings at the edge of what it takes in (±1e15), nor one
    after readings it refused (NaN), at any point of its warm-up."""
    det = _univariate()
    s = synthetic.make_stream(kind, 3000, np.random.default_rng(9))
    x = s.x.copy()
    x[2000::97] = 1e15
    x[2001::97] = -1e15
    x[5:2000:37] = np.nan
    state_file.check_numbers(StreamState())
    state_file.check_shapes(StreamState(), det.params, det.sustained)
    for values in (s.x, x):
        state = StreamState()
        rows = list(zip([state] * x.size, s.t.tolist(), values.tolist(), strict=True))
        cuts = (0, 1, 2, 3, 11, 12, 13, 40, x.size)
        for start, stop in itertools.pairwise(cuts):
            det.score_batch(rows[start:stop])
            state_file.check_numbers(state)
            state_file.check_shapes(state, det.params, det.sustained)


def _as_format_2(state: dict[str, Any]) -> None:
    """An encoded stream state as format 2 (model 1.2.0) had it: its windows deques with their
    length, and no tracked high of the surprise channel nor hold of the rarity channel."""
    det = _univariate()
    windows = [
        ("features", "window", WINDOW),
        ("likelihood", "recent", det.params.short_window),
        ("sustained", "recent", det.sustained.blocks),
    ]
    if "blocks" in state:
        windows += [
            ("blocks.features", "window", WINDOW),
            ("blocks.likelihood", "recent", det.params.short_window),
        ]
    for where, key, maxlen in windows:
        node = state
        for part in where.split("."):
            node = node[part]
        node[key] = {"deque": node[key]["array"], "maxlen": maxlen}
        if key == "recent" and "surprise_high" in node:
            del node["surprise_high"], node["rarity_quiet"]


def _kept_state() -> tuple[StreamState, str, float]:
    det = _univariate()
    s = synthetic.make_stream("temperature", 2500, np.random.default_rng(5))
    kept = StreamState()
    det.score_batch([(kept, t, v) for t, v in zip(s.t.tolist(), s.x.tolist(), strict=True)])
    return kept, str(det.model.card["sha256"]), float(s.t[-1])


def _text(state: Any) -> str:
    """A state as JSON text, to compare states holding NaN (a slot never visited: NaN != NaN)."""
    return json.dumps(state_file.encode(state))


def _older_file(tmp_path: Path, version: int) -> tuple[Path, StreamState, str]:
    """A file of format `version` (1 to 3) of a stream's state: no time-of-week scale; in formats
    1 and 2 also windows as deques, no tracked high of the surprise channel nor hold of the
    rarity channel; in format 1 no block scale."""
    kept, sha, at = _kept_state()
    assert kept.weekly.profile is not None  # it had begun to learn the week
    path = tmp_path / "streams.json"
    state_file.save(path, sha, T0, {"hall/temperature": (kept, at)})
    old = json.loads(path.read_text())
    old["format"] = version
    state = old["streams"]["hall/temperature"][0]
    del state["weekly"]
    if version < 3:
        _as_format_2(state)
        assert '"deque"' in json.dumps(old)
        assert "surprise_high" not in json.dumps(old)
    if version == 1:
        del state["blocks"]
    path.write_text(json.dumps(old))
    return path, kept, sha


def _as_upgraded(kept: StreamState, restored: StreamState) -> StreamState:
    """`kept` as a format 1 or 2 file of it reads back: the rarity channel not held, the
    surprise channel's high estimated (`restored`'s), a fresh time-of-week scale."""
    return dataclasses.replace(
        kept,
        weekly=WeeklyScale(),
        likelihood=dataclasses.replace(
            kept.likelihood, surprise_high=restored.likelihood.surprise_high, rarity_quiet=0
        ),
        blocks=dataclasses.replace(
            kept.blocks,
            likelihood=dataclasses.replace(
                kept.blocks.likelihood,
                surprise_high=restored.blocks.likelihood.surprise_high,
                rarity_quiet=0,
            ),
        ),
    )


def test_a_format_1_file_is_read_with_a_fresh_block_scale(tmp_path: Path) -> None:
    """Model 1.1 wrote no block scale: after the update its streams keep all they had learnt,
    and their block scale starts learning."""
    det = _univariate()
    path, kept, sha = _older_file(tmp_path, 1)
    ((_, (restored, _)),) = state_file.load(path, sha, det.params, det.sustained).items()
    assert restored.blocks == BlockScale()
    assert _text(restored) == _text(
        dataclasses.replace(_as_upgraded(kept, restored), blocks=BlockScale())
    )


def test_a_format_3_file_is_read_with_a_fresh_time_of_week_scale(tmp_path: Path) -> None:
    """Model 1.3.0 had no time-of-week scale: its streams keep all they had learnt, and that
    scale starts learning the week."""
    det = _univariate()
    path, kept, sha = _older_file(tmp_path, 3)
    ((_, (restored, _)),) = state_file.load(path, sha, det.params, det.sustained).items()
    assert restored.weekly == WeeklyScale()
    assert _text(restored) == _text(dataclasses.replace(kept, weekly=WeeklyScale()))


def test_a_format_2_file_is_read_whole_with_the_surprise_high_estimated(tmp_path: Path) -> None:
    """Model 1.2.0 kept the windows (last readings, error ratios, block means) as deques and had
    no tracked high of the surprise channel nor hold of the rarity channel (1.3.0): the high is
    estimated from the short-term means' running mean and spread, the rest is kept."""
    det = _univariate()
    path, kept, sha = _older_file(tmp_path, 2)
    ((_, (restored, _)),) = state_file.load(path, sha, det.params, det.sustained).items()
    assert _text(restored) == _text(_as_upgraded(kept, restored))
    assert kept.likelihood.rarity_quiet > 0  # held when the file was written: released
    for new, old in ((restored, kept), (restored.blocks, kept.blocks)):
        ratio = new.likelihood.surprise_high / old.likelihood.surprise_high
        assert 0.25 < ratio < 4.0, ratio  # near what tracking found (a Gaussian tail is thin)


def test_a_stream_read_from_an_older_file_raises_no_more_detections_than_unbroken(
    tmp_path: Path,
) -> None:
    """Its surprise channel's high learnt from nothing would sit low for thousands of readings
    (about 3x the detections); estimated, the stream scores about as if it had kept it."""
    det = _univariate()
    sha = str(det.model.card["sha256"])
    path = tmp_path / "streams.json"
    counts = {"unbroken": 0, "from an older file": 0}
    for i, kind in enumerate(synthetic.KINDS):
        s = synthetic.make_stream(kind, 8000, np.random.default_rng(100 + i))
        rows = list(zip(s.t.tolist(), s.x.tolist(), strict=True))
        kept = StreamState()
        det.score_batch([(kept, t, x) for t, x in rows[:4000]])
        state_file.save(path, sha, T0, {kind: (kept, rows[3999][0])})
        old = json.loads(path.read_text())
        old["format"] = 2
        _as_format_2(old["streams"][kind][0])
        path.write_text(json.dumps(old))
        ((_, (upgraded, _)),) = state_file.load(path, sha, det.params, det.sustained).items()
        for name, state in (("unbroken", kept), ("from an older file", upgraded)):
            scores = det.score_batch([(state, t, x) for t, x in rows[4000:]])
            counts[name] += sum(1 for sc in scores if sc is not None and sc.event >= 0.5)
    assert counts["from an older file"] <= counts["unbroken"] + 2, counts


async def test_the_daemon_keeps_its_streams_across_a_restart(tmp_path: Path) -> None:
    readings = _streams()
    half = len(readings) // 2
    path = tmp_path / "anomaly_streams.json"

    def service(bus: Bus, **kw: Any) -> AnomalyService:
        return AnomalyService(bus=bus, clock=Clock(), publish="level", pace_s=0, **kw)

    bus = Bus()
    unbroken = await _scores(service(bus), bus, readings)
    bus = Bus()
    first = await _scores(service(bus, state_file=path), bus, readings[:half])
    assert path.exists()  # written when the service stopped
    bus = Bus()
    again = service(bus, state_file=path)
    second = await _scores(again, bus, readings[half:])
    assert again.restored == 3
    assert again.state_note is None
    assert [e.score for e in first + second] == [e.score for e in unbroken]


async def test_the_state_is_written_now_and_then_not_only_at_stop(tmp_path: Path) -> None:
    path = tmp_path / "anomaly_streams.json"
    bus = Bus()
    clock = Clock()
    service = AnomalyService(bus=bus, clock=clock, pace_s=0, state_file=path, save_every_s=600)
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    async with running(service):
        bus.publish(Reading("plug", Measurement.POWER, 100.0, T0))
        async with asyncio.timeout(10):
            await out.wait(1)
        assert not path.exists()
        clock.t += 601
        bus.publish(Reading("plug", Measurement.POWER, 101.0, T0 + 601))
        async with asyncio.timeout(10):
            await out.wait(2)
        assert path.exists()  # while still running
        kept = json.loads(path.read_text())
        assert list(kept["streams"]) == ["plug/power"]


def _saved(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    det = _univariate()
    state = StreamState()
    s = synthetic.make_stream("power", 1500, np.random.default_rng(2))
    det.score_batch([(state, t, v) for t, v in zip(s.t.tolist(), s.x.tolist(), strict=True)])
    path = tmp_path / "anomaly_streams.json"
    state_file.save(path, str(det.model.card["sha256"]), T0, {"plug/power": (state, T0)})
    return path, json.loads(path.read_text())


def _nested(depth: int) -> dict[str, Any]:
    """A state whose `features` holds a whole state, `depth` times over (every field present)."""
    node: dict[str, Any] = {"type": "StreamState"}
    for _ in range(depth):
        node = {
            "type": "StreamState",
            "features": node,
            "likelihood": 0,
            "sustained": 0,
            "blocks": 0,
            "refused": 0,
        }
    return node


def _edit(field: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def edit(kept: dict[str, Any]) -> dict[str, Any]:
        node = kept["streams"]["plug/power"][0]
        *parents, last = field.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
        return kept

    return edit


def _huge_usual_week(kept: dict[str, Any]) -> dict[str, Any]:
    """The time-of-week profile's visited slots at a value no reading can have."""
    weekly = kept["streams"]["plug/power"][0]["weekly"]
    visits = weekly["visits"]["array"]
    weekly["profile"]["array"] = [1.7e308 if v else math.nan for v in visits]
    return kept


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda kept: {**kept, "model_sha256": "0" * 64}, "another model file"),
        (lambda kept: {**kept, "format": 99}, "not a state file of format 1, 2, 3 or 4"),
        (lambda kept: {**kept, "streams": []}, "no streams"),
        (_edit("features.n", "12"), "str is not int"),
        (_edit("features.mean", True), "bool is not float"),
        (_edit("features.profile", {"array": [1.0, 2.0]}), "features.profile holds 2 values"),
        (_edit("features.window", {"array": [1.0] * 13}), "features.window holds 13 values"),
        (_edit("features.window", {"array": []}), "features.window holds 0 values, not 12"),
        (_edit("features.window", None), "features.window holds 0 values, not 12"),
        (_edit("features.profile", None), "features has a window or a profile without the other"),
        (_edit("blocks.features.profile", None), "blocks.features has a window or a profile"),
        (_edit("features.last_t", math.inf), "features.last_t is inf after 1500 readings"),
        (_edit("likelihood.rarity", None), "likelihood has both or neither of first and rarity"),
        (_edit("blocks.likelihood.first", None), "blocks.likelihood has both or neither of"),
        (_edit("likelihood.recent", {"array": [1e300] + [1.0] * 9}), "a ratio beyond 0..50"),
        (_edit("likelihood.recent", {"array": [-1.0] * 10}), "a ratio beyond 0..50"),
        (_edit("likelihood.recent_sum", 1e308), "likelihood.recent_sum is not the sum"),
        (_edit("sustained.profile_hi", None), "sustained has block means but no profile"),
        (_edit("sustained.block_n", 0), "sustained has block means but no block being filled"),
        (_edit("sustained.block_t", math.nan), "sustained has block means but no block"),
        (_edit("blocks.likelihood.recent", {"array": [1.0]}), "recent holds 1 values, not 10"),
        (_edit("features.window", {"deque": [1.0] * 13, "maxlen": 13}), "holds 13 values"),
        (_edit("likelihood.recent", {"array": [1.0] * 11}), "likelihood.recent holds 11"),
        (_edit("sustained.recent", {"array": [1.0] * 13}), "sustained.recent holds 13"),
        (_edit("features.window", {"deque": ["x"], "maxlen": 12}), "not a list of numbers"),
        (_edit("likelihood.rarity.counts", {"array": [0.0]}), "holds 1 values"),
        (_edit("likelihood.rarity.type", "Popen"), "unknown type 'Popen'"),
        (_edit("sustained.extra", 1), "differ from SustainedState's"),
        (_edit("features.window", {"deque": [], "maxlen": -1}), "a bad maxlen"),
        (_edit("blocks.count", 8), "blocks.count is 8"),
        (_edit("blocks.total", math.nan), "blocks.total is NaN"),
        (_edit("blocks.total", 1e300), "blocks.total is 1e+300 for"),
        (_edit("blocks.features.var", -1.0), "blocks.features.var is negative"),
        (_edit("likelihood.n", -1), "likelihood.n is negative"),
        (_edit("likelihood.mae", math.inf), "likelihood.mae is infinite"),
        (_edit("likelihood.surprise_high", -1.0), "likelihood.surprise_high is negative"),
        (_edit("likelihood.rarity_quiet", 10**6), "likelihood.rarity_quiet is 1000000"),
        (_edit("blocks.likelihood.surprise_high", math.inf), "surprise_high is infinite"),
        (_edit("sustained.level", math.nan), "sustained.level is NaN"),
        (_edit("blocks.features.profile", {"array": [1.0]}), "blocks.features.profile holds 1"),
        (_edit("weekly.profile", None), "weekly has some of profile, visits and odd without"),
        (_edit("weekly.odd", {"array": [0.5] * 168}), "weekly slot 0: odd is 0.5"),
        (_edit("weekly.visits", {"array": [1.0] * 5}), "weekly.visits holds 5 values"),
        (_edit("weekly.visits", {"array": [3.0] * 168}), "after 3.0 visits"),
        (_edit("weekly.profile", {"array": [math.nan] * 168}), "usual nan after 1.0 visits"),
        (
            _edit("weekly.slot", math.nan),
            "weekly's slot being filled is not that of the last reading",
        ),
        (_edit("weekly.total", 1e300), "weekly.total is 1e+300 for"),
        (_edit("weekly.recent", {"array": [1.0]}), "weekly.recent holds 1 values, not 0"),
        (_edit("weekly.held", 10**6), "weekly.held is 1000000"),
        (_edit("weekly.mae", -1.0), "weekly.mae is negative"),
        (_edit("weekly.mae", 1e300), "weekly.mae is 1e+300"),
        (_huge_usual_week, "usual 1.7e+308 is beyond any reading"),
        (_edit("weekly.long_mean", 1e200), "weekly.long_mean or long_var is beyond what ratios"),
        (_edit("weekly.long_var", math.nan), "weekly.long_var is NaN"),
        (_edit("weekly.long_mean", 1.0), "weekly.long_mean or long_var is set after 0 errors"),
        (_edit("likelihood.long_var", 1e300), "likelihood.long_mean or long_var is beyond"),
        (_edit("weekly.count", 2**60), "weekly holds 1152921504606846976 readings of a stream"),
        (_edit("weekly.slot", 1e300), "weekly's slot being filled is not that of the last"),
        (_edit("features.last_t", 0.0), "weekly's slot being filled is not that of the last"),
        (lambda kept: {**kept, "streams": {"deep": [_nested(400), T0]}}, "differ from"),
        # Valid JSON that no float holds: a 400-digit integer.
        (
            _edit("features.window", {"deque": [10**400] * 12, "maxlen": 12}),
            "not a list of numbers",
        ),
        (_edit("features.mean", 10**400), "features.mean: a number too large for a float"),
        (_edit("features.n", 10**400), "features.n: a number too large for a float"),
        (
            lambda kept: {
                **kept,
                "streams": {k: [v[0], 10**400] for k, v in kept["streams"].items()},
            },
            "last_at is not finite",
        ),
    ],
)
async def test_a_state_file_that_cannot_be_used_is_said_and_the_streams_start_afresh(
    tmp_path: Path, damage: Callable[[dict[str, Any]], dict[str, Any]], why: str
) -> None:
    path, kept = _saved(tmp_path)
    path.write_text(json.dumps(damage(kept)))
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), pace_s=0, state_file=path)
    scores = await _scores(service, bus, [Reading("plug", Measurement.POWER, 100.0, T0 + 1)])
    assert service.restored == 0
    assert service.state_note is not None
    assert why in service.state_note
    assert "the streams start afresh" in service.state_note
    assert [e.score for e in scores] == [0.0]  # a new stream: its warm-up
    assert service.problem is None
    assert state_file.load(
        path, kept["model_sha256"], _univariate().params, _univariate().sustained
    )


def test_a_file_nested_beyond_the_interpreter_s_depth_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "anomaly_streams.json"
    path.write_text('{"format": 1, "streams": ' + '{"a": ' * 100_000 + "0" + "}" * 100_001)
    det = _univariate()
    with pytest.raises(state_file.StateFileError, match="nested too deeply"):
        state_file.load(path, str(det.model.card["sha256"]), det.params, det.sustained)


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "anomaly_streams.json"
    path.write_bytes(b"\x00\xff garbage")
    det = _univariate()
    with pytest.raises(state_file.StateFileError, match="not JSON"):
        state_file.load(path, str(det.model.card["sha256"]), det.params, det.sustained)


async def test_more_streams_than_the_limit_keeps_the_most_recent(tmp_path: Path) -> None:
    path = tmp_path / "anomaly_streams.json"
    det = _univariate()
    streams = {}
    for i in range(5):
        state = StreamState()
        det.score_batch([(state, T0 + i, 1.0 + i)])
        streams[f"plug-{i}/power"] = (state, T0 + i)
    state_file.save(path, str(det.model.card["sha256"]), T0, streams)
    service = AnomalyService(bus=Bus(), clock=Clock(), max_streams=2, state_file=path)
    async with running(service):
        pass
    assert service.restored == 2
    kept = json.loads(path.read_text())  # written again at stop
    assert list(kept["streams"]) == ["plug-3/power", "plug-4/power"]


async def test_a_state_that_cannot_be_written_is_said_and_scoring_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    bus = Bus()
    service = AnomalyService(
        bus=bus, clock=Clock(), pace_s=0, state_file=blocker / "anomaly_streams.json"
    )
    scores = await _scores(service, bus, [Reading("plug", Measurement.POWER, 1.0, T0)])
    assert len(scores) == 1
    assert service.state_note is not None
    assert "cannot keep the streams' state" in service.state_note


def _failing_model(directory: Path) -> None:
    """A univariate model that passes its checksum and loads, but fails in onnxruntime on every
    batch (a reshape no batch fits): what a runtime fault inside the library looks like."""
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 15])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 1])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [7, -1])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["features", "shape"], ["output"])],
        "failing",
        [features],
        [output],
        [shape],
    )
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    (directory / "univariate.onnx").write_bytes(data)
    card = json.loads((runtime.MODELS_DIR / "univariate.card.json").read_text())
    card["sha256"] = runtime.sha256_of(data)
    (directory / "univariate.card.json").write_text(json.dumps(card))


async def test_a_failure_while_scoring_leaves_the_hub_on_its_rules(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _failing_model(tmp_path)
    for suffix in (".onnx", ".card.json"):
        shutil.copy(runtime.MODELS_DIR / f"water_system{suffix}", tmp_path)
    bus = Bus()
    service = AnomalyService(bus=bus, clock=Clock(), pace_s=0, models_dir=tmp_path)
    out: Subscription[AnomalyScore] = bus.subscribe("test", (AnomalyScore,))
    async with running(service) as task:
        assert service.problem is None  # it loaded
        assert not service.rules_only.is_set()
        bus.publish(Reading("plug", Measurement.POWER, 1.0, T0))
        async with asyncio.timeout(10):
            await service.rules_only.wait()
        assert not task.done()  # still running: the hub's task group is not torn down
    assert service.problem is not None
    assert "scoring failed" in service.problem
    assert "rules only" in service.problem
    assert service.discarded == 1
    assert out.drain() == []
    assert "anomaly scoring failed" in caplog.text
