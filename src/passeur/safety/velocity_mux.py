"""Choosing which velocity command reaches the base: e-stop > teleop > navigation.

Every input is stamped with the time it arrived (the node clock, so sim time is honoured).
A source is *active* while its last command is younger than `timeout_s`; an active source
wins over every lower-priority one even when it commands zero (a pilot holding still must not
be overridden by the navigator). A source silent for `timeout_s` or longer counts as zero:
a browser that vanished, a crashed navigator, a dropped link all stop the robot.

Releasing the e-stop never sets the robot moving by itself (IEC 60204-1, ISO 13850): a source
whose last command asked for motion when it was released (a latched teleop key, Nav2 still
following its goal) is *held*: it wins as before, but counts as zero until it sends a zero
command (lets go) or falls silent. Only what it asks after that moves the robot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from passeur.safety.exceptions import SafetyConfigError
from passeur.safety.limits import ZERO, Velocity

ESTOP = "estop"
NONE = "none"
TELEOP = "teleop"
NAV = "nav"
#: Default input priority, highest first (the e-stop sits above all of them).
DEFAULT_SOURCES: tuple[str, ...] = (TELEOP, NAV)
#: Clock stamps are float seconds: an age within this of the timeout counts as the timeout
#: (a node waking exactly `timeout_s` after a command must see it stale, rounding aside).
_TIME_EPSILON_S = 1e-6


@dataclass(frozen=True)
class MuxOutput:
    source: str  # ESTOP, one of the sources, or NONE
    command: Velocity
    #: sources whose last command went stale at this evaluation (for status/logging)
    stale: tuple[str, ...] = ()
    #: `source` still asks for the motion it asked for before the e-stop's release: held at zero
    held: bool = False


class VelocityMux:
    def __init__(self, timeout_s: float = 0.3, sources: Sequence[str] = DEFAULT_SOURCES) -> None:
        if not math.isfinite(timeout_s) or timeout_s <= 0.0:
            raise SafetyConfigError(
                f"safety.source_timeout_s = {timeout_s}: expected a duration > 0 s (e.g. 0.3)")
        if not sources or len(set(sources)) != len(sources) or ESTOP in sources or NONE in sources:
            raise SafetyConfigError(f"velocity mux sources {list(sources)}: expected distinct "
                                    f"names other than '{ESTOP}' and '{NONE}'")
        self.timeout_s = float(timeout_s)
        self.sources = tuple(sources)
        self._last: dict[str, tuple[float, Velocity]] = {}
        self._estop = False
        self._held: set[str] = set()  # see the module docstring

    @property
    def estop(self) -> bool:
        return self._estop

    def set_estop(self, engaged: bool) -> None:
        if self._estop and not engaged:
            self._held = {s for s, (_t, cmd) in self._last.items() if cmd != ZERO}
        self._estop = bool(engaged)

    def update(self, source: str, command: Velocity, stamp_s: float) -> None:
        """Record a command from `source` received at `stamp_s` (seconds, node clock)."""
        if source not in self.sources:
            raise ValueError(f"unknown velocity source '{source}'; known: {self.sources}")
        self._last[source] = (float(stamp_s), command)
        if command == ZERO:
            self._held.discard(source)  # let go: its next command is a new one

    def clear(self, source: str) -> None:
        self._last.pop(source, None)
        self._held.discard(source)

    def age_s(self, source: str, now_s: float) -> float | None:
        entry = self._last.get(source)
        return None if entry is None else now_s - entry[0]

    def is_active(self, source: str, now_s: float) -> bool:
        age = self.age_s(source, now_s)
        # A negative age beyond the timeout means the clock jumped back (simulator reset):
        # that command belongs to another timeline and must not drive the robot.
        return age is not None and -self.timeout_s <= age < self.timeout_s - _TIME_EPSILON_S

    def select(self, now_s: float) -> MuxOutput:
        stale = tuple(s for s in self.sources if s in self._last and not self.is_active(s, now_s))
        for source in stale:
            del self._last[source]  # forget it: a late reappearance must be a new command
            self._held.discard(source)
        if self._estop:
            return MuxOutput(ESTOP, ZERO, stale)
        for source in self.sources:
            if self.is_active(source, now_s):
                if source in self._held:
                    return MuxOutput(source, ZERO, stale, held=True)
                return MuxOutput(source, self._last[source][1], stale)
        return MuxOutput(NONE, ZERO, stale)


class PublisherSequence:
    """Drops copies and stale messages per publisher, by publication sequence number.

    The e-stop topic has two subscriptions (latched and volatile, see SafetyNode), so one
    message can arrive twice, and one subscription's older copy after the other's newer
    message: a stale "released" must never undo a newer "engaged". Messages whose publisher
    or sequence number the middleware does not report are always new.
    """

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def is_new(self, publisher: bytes | None, sequence: int | None) -> bool:
        if publisher is None or sequence is None:
            return True
        last = self._last.get(publisher)
        if last is not None and sequence <= last:
            return False
        self._last[publisher] = sequence
        return True
