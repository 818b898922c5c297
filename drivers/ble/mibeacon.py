"""MiBeacon frame counters: what xiaomi-ble does not check. Pure: no I/O, no clock.

A MiBeacon v4/v5 encrypted frame (service data 0xFE95) is laid out as

    frame control (2) | product id (2) | packet id (1) | [MAC (6)] [capability (1..2)]
    | ciphertext | ext counter (3) | MIC (4)

and is sealed with AES-CCM under the nonce MAC (6) | product id (2) | packet id (1) | ext counter
(3). The packet id is the low byte and the ext counter the high three bytes of one 32-bit frame
counter (little endian), which the device increments per new advert and repeats unchanged in the
copies of one advert. Only a frame whose tag verified has a counter worth believing: the nonce
binds it to the key and the device's MAC.

xiaomi-ble decodes every frame on its own, so a recorded frame replayed later decodes again.
`FrameCounter` keeps one device's last accepted counter and judges each authenticated frame.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

#: A backward jump is believed (the device restarted: new batteries, a reset) once its new count
#: has been seen going up for this long, in at least two distinct frames, with no frame of the
#: old count in between. Long enough that a replayer must silence the real device for that time
#: (any frame of the old count cancels the new one); short enough that a sensor with fresh
#: batteries reports again within minutes, never locked out for good.
RESTART_AFTER_S = 600.0

#: The shortest v4/v5 encrypted frame: 5 header bytes, 1 byte of ciphertext, counter and MIC.
_MIN_V45 = 5 + 1 + 3 + 4


def frame_counter(frame: bytes) -> int:
    """The 32-bit frame counter of a MiBeacon v4/v5 encrypted frame (ValueError: too short)."""
    if len(frame) < _MIN_V45:
        raise ValueError(f"a MiBeacon v4/v5 frame of {len(frame)} bytes has no frame counter")
    return frame[4] | int.from_bytes(frame[-7:-4], "little") << 8


class Verdict(enum.Enum):
    NEW = "new"  # decode it
    DUPLICATE = "duplicate"  # a copy of an advert already judged: nothing, and no error
    REPLAYED = "replayed"  # behind the device's count: refuse it


@dataclass(slots=True)
class _Track:
    """A backward jump under watch: when it began, and its latest counter."""

    since: float
    last: int


class FrameCounter:
    """One device's frame count (two numbers and a watch: bounded, one per configured device).

    * The first authenticated frame since the hub started sets the count (nothing is persisted:
      a frame recorded earlier and replayed as the very first one after a hub restart is
      believed; the device's next advert, counted higher, is believed as well).
    * A higher counter is new (a forward gap is adverts missed); the same counter again is a
      duplicate (devices send each advert several times).
    * A lower counter is a replay and is refused, every copy (each is counted), unless the device
      restarted: lower counters that keep going up (a still lower one starts the watch again) for
      `RESTART_AFTER_S`, in at least two distinct frames, with no frame of the old count in
      between, become the count; the frame that shows it is accepted. A frame of the old count
      (higher than the last accepted) ends the watch: the device never restarted, the lower
      frames were replays. So a replayer is believed only if the real device is silent (out of
      range, jammed) for `RESTART_AFTER_S`, and a real device is refused for at most that long
      (or until its second new advert) after a restart: never locked out for good.
    * The 32-bit counter wraps after 2**32 adverts (decades at one a second); a wrap looks like a
      restart and is handled as one.
    """

    __slots__ = ("_last", "_track")

    def __init__(self) -> None:
        self._last: int | None = None
        self._track: _Track | None = None

    def judge(self, counter: int, at: float) -> Verdict:
        """Judge an authenticated frame's counter, received `at` (POSIX seconds)."""
        last = self._last
        if last is None or counter > last:
            self._last = counter
            self._track = None
            return Verdict.NEW
        if counter == last:
            return Verdict.DUPLICATE
        track = self._track
        if track is None or counter < track.last:
            self._track = _Track(at, counter)  # a new watch (or a replay of something older)
            return Verdict.REPLAYED
        if counter > track.last:
            track.last = counter
            if at - track.since >= RESTART_AFTER_S:
                self._last = counter
                self._track = None
                return Verdict.NEW
        return Verdict.REPLAYED  # every copy: each is counted


__all__ = ["RESTART_AFTER_S", "FrameCounter", "Verdict", "frame_counter"]
