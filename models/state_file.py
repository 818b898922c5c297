"""The univariate detector's per-stream state, kept in a file across restarts.

Without it a restart (an update, a power cut) would make every stream start learning again: no
scores for its first 300 readings, no rarity and no sustained score for a day. The daemon writes
the state of all its streams now and then and when it stops (`save`), and reads it back when it
starts (`load`).

The file is JSON: `{"format", "model_sha256", "saved_at", "streams": {name: [state, last_at]}}`.
A state is encoded field by field (`encode`): numbers as they are (NaN and infinities as JSON's
`NaN`/`Infinity` extension, which Python reads back exactly), an array as `{"array": [...]}`, and a
dataclass of the state as `{"type": name, ...fields}` (formats 1 and 2 kept the windows as deques,
`{"deque": [...], "maxlen": n}`: read as arrays). Reading it back (`decode`) builds only those
classes, checks every field against its declared type, every array against the length the detector
indexes it with (a window: the values taken in, up to those it keeps) and every number against what
the detector can write (`check_numbers`: no NaN, infinity or negative count where it cannot be), so
a damaged or hand-edited file is refused with the reason, never half-used; the hub then starts its
streams afresh. A file written by another model (sha256) is not used either, nor one of a format
other than `FORMAT`, 3 (model 1.3.0's, read with a fresh time-of-week scale for each stream), 2
(the windows as deques) and 1 (model 1.1.0's, read with a fresh block scale too). A state written
before model 1.3.0 gets the surprise channel's usual high estimated.
"""

from __future__ import annotations

import dataclasses
import json
import math
from array import array
from collections.abc import Mapping
from pathlib import Path
from statistics import NormalDist
from typing import Any

from hub.atomic_file import is_json_number, json_number, read_json_object, write_text
from models.features import MAX_MAGNITUDE, PROFILE_SLOTS, WINDOW, UnivariateFeatures
from models.likelihood import (
    MAX_RATIO,
    MIN_HIGH,
    ErrorTrack,
    LikelihoodParams,
    LikelihoodState,
    Rarity,
)
from models.sustained import SustainedParams, SustainedState
from models.univariate import BlockScale, StreamState
from models.weekly import WeeklyScale, week_slots

#: The file's layout. Format 1 (model 1.1) had no block scale and formats 1 to 3 (up to model 1.3)
#: no time-of-week scale: their streams are read with fresh ones (those scales learn again, the
#: rest is kept). Formats 1 and 2 kept the windows as deques, read as arrays. A file of any other
#: format is not used.
FORMAT = 4

_CLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        StreamState,
        UnivariateFeatures,
        LikelihoodState,
        Rarity,
        SustainedState,
        BlockScale,
        WeeklyScale,
    )
}


class StateFileError(ValueError):
    """The file cannot be used; the message says why."""


def encode(value: Any) -> Any:
    """A JSON-ready form of a state (or of one of its fields)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, array):
        return {"array": value.tolist()}
    if type(value).__name__ in _CLASSES:
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    raise TypeError(f"cannot encode {type(value).__name__}")


def decode(data: Any, where: str = "state") -> Any:
    """The state `encode` made of it; `StateFileError` naming the field for anything else."""
    if not isinstance(data, dict):
        return data
    if "deque" in data:  # formats 1 and 2: a window, now an array
        items = _numbers(data["deque"], where)
        maxlen = data.get("maxlen")
        if not (isinstance(maxlen, int) and len(items) <= maxlen):
            raise StateFileError(f"{where}: a bad maxlen")
        return array("d", items)
    if "array" in data:
        return array("d", _numbers(data["array"], where))
    cls = _CLASSES.get(str(data.get("type")))
    if cls is None:
        raise StateFileError(f"{where}: unknown type {data.get('type')!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    given = set(data) - {"type"}
    if given != set(fields):
        raise StateFileError(
            f"{where}: fields {sorted(given ^ set(fields))} differ from {cls.__name__}'s"
        )
    values = {}
    for name, f in fields.items():
        value = decode(data[name], f"{where}.{name}")
        if is_json_number(value) and json_number(value) is None:
            raise StateFileError(f"{where}.{name}: a number too large for a float")
        if not _is_a(value, str(f.type)):
            raise StateFileError(f"{where}.{name}: {type(value).__name__} is not {f.type}")
        values[name] = value
    return cls(**values)


def _numbers(items: Any, where: str) -> list[float]:
    numbers = [json_number(v) for v in items] if isinstance(items, list) else [None]
    if None in numbers:
        raise StateFileError(f"{where}: not a list of numbers (each a float)")
    return numbers  # type: ignore[return-value]  # no None, checked above


def _is_a(value: Any, annotation: str) -> bool:
    """Whether `value` fits a field declared as `annotation` (the states' few kinds of field)."""
    for kind in (part.strip() for part in annotation.split("|")):
        base = kind.split("[")[0]
        if base == "None" and value is None:
            return True
        number = is_json_number(value)
        if number and (base == "float" or (base == "int" and isinstance(value, int))):
            return True
        if base == "array" and isinstance(value, array):
            return True
        if base in _CLASSES and isinstance(value, _CLASSES[base]):
            return True
    return False


#: By class, the fields whose numbers may be NaN (not known yet) and those that may be infinite
#: (nothing seen yet); every other number of a state is finite. Every int field is a count and the
#: `_NOT_NEGATIVE` floats are spreads, weights and durations: none is negative. A damaged number
#: would otherwise stop the scorer (the square root of a negative variance, a NaN sum turned into
#: a histogram bin) or make a stream score 1.0 for ever.
_MAY_BE_NAN = {
    "UnivariateFeatures": {"profile"},
    "LikelihoodState": {"first_at", "last_value", "surprise_high"},
    "SustainedState": {"first_t", "block_t", "last_t", "tail", "profile", "profile_hi"},
    "WeeklyScale": {"slot", "profile"},
}
_MAY_BE_INFINITE = {
    "UnivariateFeatures": {"last_t"},
    "LikelihoodState": {"low", "high"},
    "WeeklyScale": {"widest"},
}
_NOT_NEGATIVE = {
    "UnivariateFeatures": {"var", "gap"},
    "LikelihoodState": {"mae", "long_var", "surprise_high"},
    "Rarity": {"counts", "total", "weight"},
    "SustainedState": {"var", "seen", "tail"},
    "WeeklyScale": {"widest", "visits", "mae", "long_var"},
}


def check_numbers(state: Any, where: str = "") -> None:
    """Raise `StateFileError` for a number in `state` (a decoded state or part of one) that the
    detector could not have written: NaN, infinite or negative where it cannot be."""
    kind = type(state).__name__
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        what = f"{where}{f.name}"
        if type(value).__name__ in _CLASSES:
            check_numbers(value, what + ".")
            continue
        if isinstance(value, array):
            numbers = list(value)
        elif isinstance(value, int | float):
            numbers = [value]
        else:
            continue
        for x in numbers:
            if math.isnan(x) and f.name not in _MAY_BE_NAN.get(kind, ()):
                raise StateFileError(f"{what} is NaN")
            if math.isinf(x) and f.name not in _MAY_BE_INFINITE.get(kind, ()):
                raise StateFileError(f"{what} is infinite")
            if x < 0 and (str(f.type) == "int" or f.name in _NOT_NEGATIVE.get(kind, ())):
                raise StateFileError(f"{what} is negative")


def check_shapes(
    state: StreamState, likelihood: LikelihoodParams, sustained: SustainedParams
) -> None:
    """Raise `StateFileError` unless every array has the length the detector uses (a window:
    the values it has taken in, up to those it keeps) and the parts of each scale agree."""
    _check_scale(state.features, state.likelihood, likelihood, "")
    blocks = state.blocks
    _check_scale(blocks.features, blocks.likelihood, likelihood, "blocks.")
    if not 0 <= blocks.count < likelihood.slow_block:
        raise StateFileError(f"blocks.count is {blocks.count}")
    _check_filling(blocks.total, blocks.count, "blocks.")
    _check_weekly(state.weekly, state.features, likelihood)
    su = state.sustained
    _check_length(su.recent, range(sustained.blocks + 1), "sustained.recent")
    _check_length(su.profile, _DAY_SLOTS, "sustained.profile")
    _check_length(su.profile_hi, _DAY_SLOTS, "sustained.profile_hi")
    if su.recent is not None:  # the first reading made them all
        _check_length(su.seen, _DAY_SLOTS, "sustained.seen")
        if su.profile is None or su.profile_hi is None:
            raise StateFileError("sustained has block means but no profile")
        if su.block_n < 1 or not all(map(math.isfinite, (su.first_t, su.block_t, su.last_t))):
            raise StateFileError("sustained has block means but no block being filled")


_DAY_SLOTS = range(PROFILE_SLOTS, PROFILE_SLOTS + 1)


def _check_length(value: array[float] | None, allowed: range, what: str) -> None:
    if value is not None and len(value) not in allowed:
        raise StateFileError(f"{what} holds {len(value)} values")


def _check_holds(value: array[float] | None, n: int, what: str) -> None:
    # A window too short for its stream's count would stop the scorer (an empty one at once).
    if (value is None and n > 0) or (value is not None and len(value) != n):
        raise StateFileError(f"{what} holds {len(value or ())} values, not {n}")


def _check_errors(track: ErrorTrack, n: int, window: int, where: str) -> None:
    """What `likelihood.error_likelihood` keeps after `n` errors: a window of error ratios
    (`recent`: the last `window` of them, from the 3rd error on) and its running sum, and the
    running mean and variance of their short-term means (each in 0..`MAX_RATIO`: the mean stays
    in that range and the variance below its square; both 0 until the 3rd error)."""
    _check_holds(track.recent, min(max(n - 2, 0), window), f"{where}recent")
    values = track.recent or array("d")
    if not all(0.0 <= r <= MAX_RATIO for r in values):
        raise StateFileError(f"{where}recent holds a ratio beyond 0..{MAX_RATIO}")
    exact = math.fsum(values)
    if not abs(track.recent_sum - exact) <= 1e-6 * max(1.0, exact):
        raise StateFileError(f"{where}recent_sum is not the sum of recent")
    if not 0.0 <= track.long_mean <= MAX_RATIO or not track.long_var <= MAX_RATIO**2:
        raise StateFileError(f"{where}long_mean or long_var is beyond what ratios can give")
    if n <= 2 and (track.long_mean or track.long_var):
        raise StateFileError(f"{where}long_mean or long_var is set after {n} errors")


def _check_filling(total: float, count: int, where: str) -> None:
    """The sum of the readings of a block or slot being filled (finite readings, bounded)."""
    if not abs(total) <= count * MAX_MAGNITUDE:
        raise StateFileError(f"{where}total is {total} for {count} readings")


def _check_scale(
    f: UnivariateFeatures, lk: LikelihoodState, p: LikelihoodParams, where: str
) -> None:
    """The features and likelihood state of the readings' scale or the block scale."""
    _check_holds(f.window, min(f.n, WINDOW), f"{where}features.window")
    if (f.profile is None) != (f.window is None):
        raise StateFileError(f"{where}features has a window or a profile without the other")
    _check_length(f.profile, _DAY_SLOTS, f"{where}features.profile")
    if math.isfinite(f.last_t) != (f.n > 0):  # -inf until the first reading, then its time
        raise StateFileError(f"{where}features.last_t is {f.last_t} after {f.n} readings")
    _check_errors(lk, lk.n, p.short_window, f"{where}likelihood.")
    _check_length(lk.first, range(p.warmup + 1), f"{where}likelihood.first")
    if (lk.first is None) == (lk.rarity is None):  # the first values, until the histogram
        raise StateFileError(f"{where}likelihood has both or neither of first and rarity")
    if lk.rarity_quiet >= p.rarity_hold:
        raise StateFileError(f"{where}likelihood.rarity_quiet is {lk.rarity_quiet}")
    if lk.rarity is not None:
        bins = p.value_bins + 2
        _check_length(lk.rarity.counts, range(bins, bins + 1), f"{where}likelihood.rarity.counts")
        if not lk.rarity.low < lk.rarity.high:
            raise StateFileError(f"{where}likelihood.rarity has an empty range")


def _check_weekly(week: WeeklyScale, f: UnivariateFeatures, p: LikelihoodParams) -> None:
    """The time-of-week scale: the slot being filled holds the stream's last readings (none in
    a scale younger than its stream: one read from a file of format 3 or before), its profile
    and visits agree slot by slot (a slot is visited once it has a usual mean, of a size a
    reading can have)."""
    if week.count > f.n:
        raise StateFileError(f"weekly holds {week.count} readings of a stream of {f.n}")
    if week.count and week.slot != f.last_t // p.week_slot_s:
        raise StateFileError("weekly's slot being filled is not that of the last reading")
    _check_filling(week.total, week.count, "weekly.")
    slots = week_slots(p)
    arrays = (week.profile, week.visits, week.odd)
    if len({a is None for a in arrays}) > 1:
        raise StateFileError("weekly has some of profile, visits and odd without the others")
    for value, name in zip(arrays, ("profile", "visits", "odd"), strict=True):
        _check_length(value, range(slots, slots + 1), f"weekly.{name}")
    if week.profile is not None and week.visits is not None and week.odd is not None:
        counts = {float(n) for n in range(p.week_after + 1)}
        rows = zip(week.profile, week.visits, week.odd, strict=True)
        for k, (usual, seen, odd) in enumerate(rows):
            if seen not in counts or (seen == 0.0) != math.isnan(usual):
                raise StateFileError(f"weekly slot {k}: usual {usual} after {seen} visits")
            if abs(usual) > MAX_MAGNITUDE:
                raise StateFileError(f"weekly slot {k}: usual {usual} is beyond any reading")
            if odd not in (-1.0, 0.0, 1.0):
                raise StateFileError(f"weekly slot {k}: odd is {odd}")
    elif week.compared:
        raise StateFileError(f"weekly compared {week.compared} slots without a profile")
    if week.mae > 2 * MAX_MAGNITUDE:  # the difference of two means of readings
        raise StateFileError(f"weekly.mae is {week.mae}")
    _check_errors(week, week.compared, p.week_short, "weekly.")
    if week.held > p.week_hold:
        raise StateFileError(f"weekly.held is {week.held}")


def save(
    path: Path, model_sha256: str, saved_at: float, streams: Mapping[str, tuple[StreamState, float]]
) -> None:
    """Write the streams' state to `path` atomically (`hub.atomic_file`); `OSError` if it cannot.

    Each stream is encoded on its own (a few kB): one `json.dumps` of all 500 streams held the
    GIL, and so the event loop, for 70 ms; this way it waits 3 ms at most."""
    head = json.dumps({"format": FORMAT, "model_sha256": model_sha256, "saved_at": saved_at})
    entries = (
        json.dumps(name) + ":" + json.dumps([encode(state), at], separators=(",", ":"))
        for name, (state, at) in streams.items()
    )
    write_text(path, head[:-1] + ', "streams": {' + ",".join(entries) + "}}")


def _upgrade(state: Any, version: int, quantile: float) -> None:
    """An encoded stream state brought to this model's in place: format 1 had no block scale and
    formats 1 to 3 no time-of-week scale (fresh ones); a state written before model 1.3.0 has no
    tracked high of the surprise channel (`_usual_high`) nor hold of the rarity channel (none)."""
    if not isinstance(state, dict):
        return  # refused by `decode`
    if version == 1 and "blocks" not in state:
        state["blocks"] = encode(BlockScale())
    if version < 4 and "weekly" not in state:
        state["weekly"] = encode(WeeklyScale())
    for scale in (state, state.get("blocks")):
        likelihood = scale.get("likelihood") if isinstance(scale, dict) else None
        if isinstance(likelihood, dict):
            if "surprise_high" not in likelihood:
                likelihood["surprise_high"] = _usual_high(likelihood, quantile)
            likelihood.setdefault("rarity_quiet", 0)


def _usual_high(likelihood: dict[str, Any], quantile: float) -> float:
    """The surprise channel's tracked high for a state that had none: the `quantile` of its
    short-term means as their running mean and variance have it (a Gaussian's), to be tracked on
    from there. Learnt from nothing instead, it would sit low for thousands of readings: about 3x
    the false detections until then. NaN (learnt afresh) for a state too young or damaged."""
    n, mean, var = (likelihood.get(k) for k in ("n", "long_mean", "long_var"))
    if not (isinstance(n, int) and n > 2 and is_json_number(mean) and is_json_number(var)):
        return math.nan
    high = float(mean) + NormalDist().inv_cdf(quantile) * math.sqrt(max(float(var), 0.0))
    return max(high, MIN_HIGH) if math.isfinite(high) else math.nan


def load(
    path: Path,
    model_sha256: str,
    likelihood: LikelihoodParams,
    sustained: SustainedParams,
) -> dict[str, tuple[StreamState, float]]:
    """The streams `save` wrote, in their order; `StateFileError` (or `OSError`) if unusable."""
    try:
        data = read_json_object(path)
    except ValueError as err:
        raise StateFileError(str(err)) from None
    version = data.get("format")
    if version not in (1, 2, 3, FORMAT):
        raise StateFileError(f"not a state file of format 1, 2, 3 or {FORMAT}")
    if data.get("model_sha256") != model_sha256:
        raise StateFileError("written for another model file")
    streams = data.get("streams")
    if not isinstance(streams, dict):
        raise StateFileError("no streams")
    out: dict[str, tuple[StreamState, float]] = {}
    for name, entry in streams.items():
        if not (isinstance(entry, list) and len(entry) == 2):
            raise StateFileError(f"stream {name!r}: not [state, last_at]")
        at = json_number(entry[1])
        if at is None or not math.isfinite(at):
            raise StateFileError(f"stream {name!r}: last_at is not finite")
        _upgrade(entry[0], version, likelihood.surprise_quantile)
        try:
            state = decode(entry[0], f"stream {name!r}")
        except RecursionError:
            raise StateFileError(f"stream {name!r}: nested too deeply") from None
        if not isinstance(state, StreamState):
            raise StateFileError(f"stream {name!r}: not a stream state")
        try:
            check_numbers(state)
            check_shapes(state, likelihood, sustained)
        except StateFileError as err:
            raise StateFileError(f"stream {name!r}: {err}") from None
        out[name] = (state, at)
    return out
