"""The safety node's parameters turned into validated settings (no rclpy: unit-testable).

Used at start-up and again whenever a parameter is changed at run time (`ros2 param set`), so a
bad value is refused with the same clear message instead of being half-applied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from passeur.safety.collision_monitor import CollisionConfig, Footprint, LidarMount
from passeur.safety.exceptions import SafetyConfigError
from passeur.safety.limits import VelocityLimits
from passeur.safety.velocity_mux import VelocityMux


@dataclass(frozen=True)
class SafetySettings:
    limits: VelocityLimits
    collision: CollisionConfig
    source_timeout_s: float
    scan_timeout_s: float
    status_period_s: float


def _positive(values: Mapping[str, Any], name: str) -> float:
    value = float(values[name])
    if not math.isfinite(value) or value <= 0.0:
        raise SafetyConfigError(f"safety.{name} = {value}: expected a value > 0")
    return value


def settings_from_parameters(values: Mapping[str, Any]) -> SafetySettings:
    """Build every setting from parameter values (names as in config/passeur.yaml)."""
    try:
        limits = VelocityLimits(
            max_linear_mps=float(values["max_linear_mps"]),
            max_reverse_mps=float(values["max_reverse_mps"]),
            max_angular_rps=float(values["max_angular_rps"]),
            max_linear_accel_mps2=float(values["max_linear_accel_mps2"]),
            max_angular_accel_rps2=float(values["max_angular_accel_rps2"]))
        shape = str(values["footprint_shape"])
        if shape == "circle":
            footprint = Footprint.circle(float(values["footprint_radius_m"]))
        elif shape == "polygon":
            footprint = Footprint.polygon([float(v) for v in values["footprint_polygon"]])
        else:
            raise SafetyConfigError(f"safety.footprint_shape = '{shape}': expected 'circle' "
                                    "(uses footprint_radius_m) or 'polygon' (footprint_polygon)")
        collision = CollisionConfig(
            footprint=footprint, padding_m=float(values["footprint_padding_m"]),
            stop_margin_m=float(values["stop_margin_m"]),
            reaction_time_s=float(values["reaction_time_s"]),
            braking_decel_mps2=float(values["braking_decel_mps2"]),
            slowdown_margin_m=float(values["slowdown_margin_m"]),
            slowdown_min_ratio=float(values["slowdown_min_ratio"]),
            min_speed_mps=float(values["min_speed_mps"]),
            allow_rotation_in_place=bool(values["allow_rotation_in_place"]),
            mount=LidarMount(float(values["lidar_x_m"]), float(values["lidar_y_m"]),
                             float(values["lidar_yaw_rad"])),
            self_filter_radius_m=float(values["self_filter_radius_m"]))
    except KeyError as exc:
        raise SafetyConfigError(f"safety parameter {exc} is missing") from exc
    except (TypeError, ValueError) as exc:
        raise SafetyConfigError(f"safety parameters: a value has the wrong type ({exc})") from exc
    source_timeout = float(values["source_timeout_s"])
    VelocityMux(timeout_s=source_timeout)  # validates it, with the parameter's name
    return SafetySettings(
        limits=limits, collision=collision, source_timeout_s=source_timeout,
        scan_timeout_s=_positive(values, "scan_timeout_s"),
        status_period_s=1.0 / _positive(values, "status_rate_hz"))
