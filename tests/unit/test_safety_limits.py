"""Speed clamps and acceleration limits."""

from __future__ import annotations

import math

import pytest

from passeur.safety.exceptions import SafetyConfigError
from passeur.safety.limits import AccelerationLimiter, Velocity, VelocityLimits

LIMITS = VelocityLimits(max_linear_mps=0.5, max_reverse_mps=0.2, max_angular_rps=1.0,
                        max_linear_accel_mps2=1.0, max_angular_accel_rps2=2.0)


def test_clamp_speeds_and_garbage() -> None:
    assert LIMITS.clamp(Velocity(2.0, -5.0)) == Velocity(0.5, -1.0)
    assert LIMITS.clamp(Velocity(-1.0, 5.0)) == Velocity(-0.2, 1.0)
    assert LIMITS.clamp(Velocity(0.3, 0.2)) == Velocity(0.3, 0.2)
    assert LIMITS.clamp(Velocity(math.nan, math.inf)) == Velocity(0.0, 0.0)


def test_acceleration_is_limited_but_braking_is_not() -> None:
    lim = AccelerationLimiter(LIMITS)
    outs = [lim.step(Velocity(0.5, 1.0), 0.1)[0] for _ in range(6)]
    assert [round(o.linear_mps, 6) for o in outs] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.5]
    assert [round(o.angular_rps, 6) for o in outs] == [0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    out, limited = lim.step(Velocity(0.0, 0.0), 0.1)
    assert out == Velocity(0.0, 0.0) and not limited  # stopping is immediate


def test_reversal_passes_through_zero_then_accelerates() -> None:
    lim = AccelerationLimiter(LIMITS)
    lim.reset(Velocity(0.4, 0.0))
    out, limited = lim.step(Velocity(-0.2, 0.0), 0.05)
    assert out.linear_mps == pytest.approx(-0.05) and limited


def test_negative_dt_does_not_accelerate() -> None:
    lim = AccelerationLimiter(LIMITS)
    assert lim.step(Velocity(0.5, 0.0), -1.0)[0] == Velocity(0.0, 0.0)


@pytest.mark.parametrize("field", ["max_linear_mps", "max_angular_accel_rps2", "max_reverse_mps"])
def test_invalid_limits_name_the_parameter(field: str) -> None:
    with pytest.raises(SafetyConfigError, match=field):
        VelocityLimits(**{field: -1.0})
    with pytest.raises(SafetyConfigError):
        VelocityLimits(max_linear_accel_mps2=0.0)
