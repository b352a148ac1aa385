"""Planar pose maths (REP-103: metres, radians, yaw counter-clockwise)."""

from __future__ import annotations

import math
from dataclasses import dataclass


def yaw_to_quaternion(yaw_rad: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation about z."""
    return (0.0, 0.0, math.sin(yaw_rad / 2.0), math.cos(yaw_rad / 2.0))


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def normalize_angle(angle_rad: float) -> float:
    """Wrap to [-pi, pi)."""
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class Pose2D:
    x_m: float
    y_m: float
    yaw_rad: float

    def distance_to(self, other: Pose2D) -> float:
        return math.hypot(other.x_m - self.x_m, other.y_m - self.y_m)

    def compose(self, other: Pose2D) -> Pose2D:
        """self ⊕ other: `other` expressed in self's frame, returned in self's parent frame."""
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return Pose2D(
            self.x_m + c * other.x_m - s * other.y_m,
            self.y_m + s * other.x_m + c * other.y_m,
            normalize_angle(self.yaw_rad + other.yaw_rad),
        )

    def inverse(self) -> Pose2D:
        c, s = math.cos(self.yaw_rad), math.sin(self.yaw_rad)
        return Pose2D(-c * self.x_m - s * self.y_m, s * self.x_m - c * self.y_m, -self.yaw_rad)
