"""Click-to-go on the video: project a pixel onto the floor, then into the map frame.

The camera follows REP-103/105 conventions: the optical frame (`camera_optical_link`) has z
forward, x right, y down; it is mounted on `base_link` (x forward, y left, z up) at
`CameraMount.xyz_m`, looking along the robot's x axis turned by `yaw_rad` and tilted DOWN by
`pitch_rad`. Intrinsics come from CameraInfo's K (fx, fy, cx, cy). The floor is the plane z = 0
of base_link. The robot's pose in the map is odom's pose composed with map -> odom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from passeur.ros.geometry import Pose2D
from passeur.telepresence.exceptions import ProjectionError


@dataclass(frozen=True)
class CameraIntrinsics:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> CameraIntrinsics:
        """From CameraInfo.k (row-major 3x3)."""
        if len(k) != 9 or not (k[0] > 0 and k[4] > 0) or width <= 0 or height <= 0:
            raise ProjectionError("camera_info has no usable intrinsics")
        return cls(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(width), int(height))

    @classmethod
    def from_fov(cls, width: int, height: int, vertical_fov_rad: float) -> CameraIntrinsics:
        """A pinhole camera with square pixels (MuJoCo's model: fovy)."""
        f = (height / 2.0) / math.tan(vertical_fov_rad / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)


@dataclass(frozen=True)
class CameraMount:
    xyz_m: tuple[float, float, float] = (0.1, 0.0, 1.3)
    pitch_rad: float = 0.35  # positive = looking down
    yaw_rad: float = 0.0


def pixel_ray_base(u: float, v: float, k: CameraIntrinsics,
                   mount: CameraMount) -> tuple[float, float, float]:
    """Direction (base_link) of the ray through pixel (u, v)."""
    # Optical frame ray, then into the camera's body frame (x fwd, y left, z up).
    xo, yo = (u - k.cx) / k.fx, (v - k.cy) / k.fy
    bx, by, bz = 1.0, -xo, -yo
    # Pitch down by p: rotation about y by +p (x towards -z).
    cp, sp = math.cos(mount.pitch_rad), math.sin(mount.pitch_rad)
    px, pz = cp * bx + sp * bz, -sp * bx + cp * bz
    cy_, sy_ = math.cos(mount.yaw_rad), math.sin(mount.yaw_rad)
    return (cy_ * px - sy_ * by, sy_ * px + cy_ * by, pz)


def pixel_to_base(u: float, v: float, k: CameraIntrinsics, mount: CameraMount,
                  max_range_m: float = 15.0) -> tuple[float, float]:
    """Floor point (base_link, metres) seen at pixel (u, v); ProjectionError if none."""
    if not (0 <= u < k.width and 0 <= v < k.height):
        raise ProjectionError("the point is outside the picture")
    dx, dy, dz = pixel_ray_base(u, v, k, mount)
    height = mount.xyz_m[2]
    if dz >= -1e-6 or height <= 0:
        raise ProjectionError("that point is not on the floor (above the horizon)")
    t = height / -dz
    x, y = mount.xyz_m[0] + t * dx, mount.xyz_m[1] + t * dy
    if math.hypot(x, y) > max_range_m:
        raise ProjectionError("that point is too far away to go to")
    return x, y


def base_to_pixel(x: float, y: float, k: CameraIntrinsics,
                  mount: CameraMount) -> tuple[float, float] | None:
    """Inverse projection of a floor point (base_link); None if behind the camera."""
    rx, ry, rz = x - mount.xyz_m[0], y - mount.xyz_m[1], -mount.xyz_m[2]
    cy_, sy_ = math.cos(mount.yaw_rad), math.sin(mount.yaw_rad)
    px, by = cy_ * rx + sy_ * ry, -sy_ * rx + cy_ * ry
    cp, sp = math.cos(mount.pitch_rad), math.sin(mount.pitch_rad)
    bx, bz = cp * px - sp * rz, sp * px + cp * rz
    if bx <= 1e-9:
        return None
    return k.cx + k.fx * (-by / bx), k.cy + k.fy * (-bz / bx)


def pixel_to_map(u: float, v: float, k: CameraIntrinsics, mount: CameraMount,
                 robot_in_odom: Pose2D, odom_in_map: Pose2D | None = None,
                 max_range_m: float = 15.0) -> tuple[float, float]:
    """Floor point in the map frame for pixel (u, v)."""
    bx, by = pixel_to_base(u, v, k, mount, max_range_m)
    robot_in_map = (odom_in_map or Pose2D(0.0, 0.0, 0.0)).compose(robot_in_odom)
    p = robot_in_map.compose(Pose2D(bx, by, 0.0))
    return p.x_m, p.y_m
