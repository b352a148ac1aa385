"""Speed and acceleration limits for the velocity sent to the base.

Speeds are clamped to the configured maxima, and *increases* of speed are limited by the
configured accelerations. Decreases pass through at once: the safety layer never delays a
stop (the base brakes as hard as its own controller allows; `braking_decel_mps2` in the
collision monitor is what we assume it can do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from passeur.safety.exceptions import SafetyConfigError


@dataclass(frozen=True)
class Velocity:
    """A planar velocity command: forward speed (m/s) and yaw rate (rad/s, counter-clockwise)."""

    linear_mps: float = 0.0
    angular_rps: float = 0.0

    def is_zero(self) -> bool:
        return self.linear_mps == 0.0 and self.angular_rps == 0.0


ZERO = Velocity()


@dataclass(frozen=True)
class VelocityLimits:
    max_linear_mps: float = 0.5
    max_reverse_mps: float = 0.25
    max_angular_rps: float = 1.5
    max_linear_accel_mps2: float = 1.0
    max_angular_accel_rps2: float = 3.0

    def __post_init__(self) -> None:
        for name in ("max_linear_mps", "max_reverse_mps", "max_angular_rps",
                     "max_linear_accel_mps2", "max_angular_accel_rps2"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0.0:
                raise SafetyConfigError(f"safety.{name} = {value}: expected a finite value >= 0")
        if self.max_linear_accel_mps2 == 0.0 and self.max_linear_mps > 0.0:
            raise SafetyConfigError("safety.max_linear_accel_mps2 = 0 would never let the robot "
                                    "move; set it > 0 (e.g. 1.0)")
        if self.max_angular_accel_rps2 == 0.0 and self.max_angular_rps > 0.0:
            raise SafetyConfigError("safety.max_angular_accel_rps2 = 0 would never let the robot "
                                    "turn; set it > 0 (e.g. 3.0)")

    def clamp(self, cmd: Velocity) -> Velocity:
        """Clamp to the speed limits (NaN and infinities become 0: a garbled command stops)."""
        v, w = cmd.linear_mps, cmd.angular_rps
        v = 0.0 if not math.isfinite(v) else min(max(v, -self.max_reverse_mps), self.max_linear_mps)
        w = 0.0 if not math.isfinite(w) else min(max(w, -self.max_angular_rps), self.max_angular_rps)
        return Velocity(v, w)


def _ramp(current: float, target: float, max_step: float) -> float:
    if current * target < 0.0:
        current = 0.0  # a reversal passes through a (free) stop first
    if abs(target) <= abs(current):
        return target
    return current + math.copysign(min(abs(target) - abs(current), max_step), target)


class AccelerationLimiter:
    """Limits how fast the commanded speed may grow, from one control tick to the next."""

    def __init__(self, limits: VelocityLimits) -> None:
        self.limits = limits
        self._last = ZERO

    @property
    def last(self) -> Velocity:
        return self._last

    def reset(self, current: Velocity = ZERO) -> None:
        """Tell the limiter what was actually sent (e.g. after a safety stop)."""
        self._last = current

    def step(self, target: Velocity, dt_s: float) -> tuple[Velocity, bool]:
        """The next command towards `target`; True if acceleration limits changed it."""
        dt_s = max(0.0, dt_s)
        out = Velocity(
            _ramp(self._last.linear_mps, target.linear_mps, self.limits.max_linear_accel_mps2 * dt_s),
            _ramp(self._last.angular_rps, target.angular_rps,
                  self.limits.max_angular_accel_rps2 * dt_s),
        )
        self._last = out
        return out, out != target
