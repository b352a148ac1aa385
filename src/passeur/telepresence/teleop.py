"""Hold-to-drive state with a dead-man watchdog.

The browser repeats a drive command while a button or key is held (every ~100 ms). If nothing
arrives for `watchdog_s` (300 ms), the output falls to zero: a closed tab, a killed browser or a
lost link all stop the robot, whatever the transport notices. A look-around step is a bounded
rotation (angle / speed) that needs no holding and ends by itself. After `disable()` (session
ended, pilot taken over) every command is ignored until `enable()`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Velocity:
    linear_mps: float = 0.0
    angular_rps: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.linear_mps == 0.0 and self.angular_rps == 0.0


ZERO = Velocity()


class TeleopState:
    def __init__(self, watchdog_s: float = 0.3, look_step_rad: float = math.radians(30),
                 look_speed_rps: float = 0.6, clock: Callable[[], float] = time.monotonic) -> None:
        if not watchdog_s > 0:
            raise ValueError("watchdog_s must be > 0")
        if not (look_step_rad > 0 and look_speed_rps > 0):
            raise ValueError("look step and speed must be > 0")
        self.watchdog_s = watchdog_s
        self.look_step_rad = look_step_rad
        self.look_speed_rps = look_speed_rps
        self._clock = clock
        self._command = ZERO
        self._last_command_at = -math.inf
        self._look_until = -math.inf
        self._look_rps = 0.0
        self._enabled = True
        # Emergency stop: while it is on, and after its release until the pilot has let go
        # (a zero drive or a stop sent after the release), drive and look commands are
        # refused, so that the release never sets the robot moving by itself (a latched or
        # still-held drive, a press held across the release; IEC 60204-1). The pilot page
        # lets go for the pilot when it hears of the release.
        self._estop = False
        self._let_go_needed = False
        # The web server's loop feeds commands while the ROS executor polls output().
        self._lock = threading.RLock()

    @property
    def enabled(self) -> bool:
        return self._enabled

    def enable(self) -> None:
        with self._lock:
            self.stop()
            self._enabled = True

    def disable(self) -> None:
        """Stop now and ignore commands until enable()."""
        with self._lock:
            self.stop()
            self._enabled = False

    def set_estop(self, engaged: bool) -> None:
        """The emergency stop's state: engaging it stops now and asks for a let-go."""
        with self._lock:
            if engaged:
                self._halt()
                self._let_go_needed = True
            self._estop = engaged

    def refusal(self) -> str | None:
        """Why a drive or look command would be refused now: 'estop' (it is on),
        'let_go_first' (released, but the pilot has not let go since), or None."""
        with self._lock:
            if self._estop:
                return "estop"
            return "let_go_first" if self._let_go_needed else None

    def drive(self, linear_mps: float, angular_rps: float) -> Velocity:
        """A (repeated) hold-to-drive command; returns the velocity to publish now (zero
        when refused: see refusal())."""
        with self._lock:
            if not self._enabled:
                return ZERO
            if linear_mps == 0.0 and angular_rps == 0.0:
                self._let_go_needed = self._estop  # a let-go counts once it is released
            elif self.refusal() is not None:
                return self._halt()
            self._command = Velocity(linear_mps, angular_rps)
            self._last_command_at = self._clock()
            self._look_until = -math.inf
            return self.output()

    def look(self, direction: str) -> Velocity:
        with self._lock:
            if not self._enabled:
                return ZERO
            if self.refusal() is not None:
                return self._halt()
            sign = 1.0 if direction == "left" else -1.0
            self._command = ZERO
            self._look_rps = sign * self.look_speed_rps
            self._look_until = self._clock() + self.look_step_rad / self.look_speed_rps
            return self.output()

    def stop(self) -> Velocity:
        """The pilot's stop (also a let-go, once an emergency stop is released)."""
        with self._lock:
            self._let_go_needed = self._estop
            return self._halt()

    def _halt(self) -> Velocity:
        with self._lock:
            self._command = ZERO
            self._look_until = -math.inf
            return ZERO

    def output(self) -> Velocity:
        with self._lock:
            now = self._clock()
            if not self._enabled:
                return ZERO
            if now < self._look_until:
                return Velocity(0.0, self._look_rps)
            if now - self._last_command_at > self.watchdog_s:
                self._command = ZERO
            return self._command

    @property
    def moving(self) -> bool:
        return not self.output().is_zero
