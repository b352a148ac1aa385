"""Collision monitor: limits a commanded (v, w) so that the robot never drives into what the
lidar sees.

Zones, measured along the path the command would follow (an arc, or a line), from the edge of
the robot's footprint (plus `padding_m`) to the first scan point it would touch:

- stop zone, depth `stop_distance_m(speed) = stop_margin + speed * reaction_time
  + speed^2 / (2 * braking_decel)`: it grows with speed and shrinks with a stronger brake. An
  obstacle inside it means the robot could not stop in time at that speed, so the speed is
  lowered to the highest one whose stop zone is clear, and to zero once the obstacle is within
  `stop_margin` (the zone at rest). The robot therefore never drives towards an obstacle
  inside its stop zone.
- slowdown zone, `slowdown_margin_m` beyond the stop zone: speed (and yaw rate, so the path
  stays the same) scale down linearly from 100 % at its far edge to `slowdown_min_ratio` at
  the stop zone.

Turning in place is always allowed (for the round base the footprint does not move; for a
polygon footprint see `allow_rotation_in_place`), and so is moving away from an obstacle: only
points that the swept footprint would reach count. Everything is vectorised numpy: a 360-beam
check costs tens of microseconds (see benchmarks/collision_check.py).

Frames: scan points are converted to base_link (x forward, y left) with the lidar's mounting
pose (`lidar_x_m`, `lidar_y_m`, `lidar_yaw_rad`).

Self-filter: returns closer than `self_filter_radius_m` to base_link are the robot's own body,
not obstacles. On the real robot and in Gazebo the lidar sees the mast that crosses its scan
plane behind it (urdf/passeur.urdf.xacro); counted as an obstacle inside the footprint, it
would forbid every reverse move. The filter stays smaller than the footprint's inscribed
radius, so an obstacle at the robot's edge is still seen; what it hides is above the deck and
within 0.18 m of the centre (the mast, or a book lying on the deck: it moves with the robot),
and anything reaching in from outside crosses the unfiltered ring first. (The embedded
simulator's lidar does not see the robot at all.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from passeur.safety.exceptions import SafetyConfigError
from passeur.safety.limits import Velocity

FloatArray = npt.NDArray[np.float64]

CLEAR = "clear"
SLOWDOWN = "slowdown"
STOP = "stop"

_EMPTY = np.zeros((0, 2), dtype=np.float64)


def _finite_nonneg(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0.0:
        raise SafetyConfigError(f"safety.{name} = {value}: expected a finite value >= 0")


@dataclass(frozen=True)
class Footprint:
    """The robot's outline in base_link: a circle centred on base_link, or a convex polygon."""

    radius_m: float | None = None
    #: (K, 2) vertices, counter-clockwise, when the footprint is a polygon
    vertices: FloatArray = field(default_factory=lambda: _EMPTY)

    @classmethod
    def circle(cls, radius_m: float) -> Footprint:
        if not math.isfinite(radius_m) or radius_m <= 0.0:
            raise SafetyConfigError(f"safety.footprint_radius_m = {radius_m}: expected > 0 m")
        return cls(radius_m=float(radius_m))

    @classmethod
    def polygon(cls, flat_xy: Sequence[float]) -> Footprint:
        """From a flat list [x1, y1, x2, y2, ...] (metres, base_link); convex, >= 3 vertices."""
        values = [float(v) for v in flat_xy]
        if len(values) < 6 or len(values) % 2:
            raise SafetyConfigError(
                f"safety.footprint_polygon has {len(values)} numbers: expected x,y pairs for at "
                "least 3 vertices, e.g. [0.25, 0.2, -0.25, 0.2, -0.25, -0.2, 0.25, -0.2]")
        if not all(math.isfinite(v) for v in values):
            raise SafetyConfigError("safety.footprint_polygon contains a non-finite number")
        pts = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        edges = np.roll(pts, -1, axis=0) - pts
        area2 = float(np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1]))
        if abs(area2) < 1e-9:
            raise SafetyConfigError("safety.footprint_polygon has no area; list its corners")
        if area2 < 0.0:  # clockwise given: make it counter-clockwise
            pts = pts[::-1].copy()
            edges = np.roll(pts, -1, axis=0) - pts
        cross = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
        if np.any(cross < -1e-12) or np.any(np.hypot(edges[:, 0], edges[:, 1]) < 1e-9):
            raise SafetyConfigError("safety.footprint_polygon must be convex with distinct "
                                    "corners, listed in order around the robot")
        inside = all(_edge_distances(pts, np.zeros((1, 2)))[:, 0] > 0.0)
        if not inside:
            raise SafetyConfigError("safety.footprint_polygon must contain base_link (0, 0)")
        return cls(radius_m=None, vertices=pts)

    @property
    def is_circle(self) -> bool:
        return self.radius_m is not None

    @property
    def circumradius_m(self) -> float:
        if self.radius_m is not None:
            return self.radius_m
        return float(np.max(np.hypot(self.vertices[:, 0], self.vertices[:, 1])))

    @property
    def inscribed_radius_m(self) -> float:
        """Radius of the largest circle around base_link inside the footprint."""
        if self.radius_m is not None:
            return self.radius_m
        return float(np.min(_edge_distances(self.vertices, np.zeros((1, 2)))))


def _edge_distances(vertices: FloatArray, pts: FloatArray) -> FloatArray:
    """(K, M) signed distances of points to each edge line, positive inside (CCW polygon)."""
    a = vertices
    b = np.roll(vertices, -1, axis=0)
    d = b - a
    length = np.hypot(d[:, 0], d[:, 1])
    nx, ny = -d[:, 1] / length, d[:, 0] / length  # inward (left) normals
    offset = nx * a[:, 0] + ny * a[:, 1]
    out: FloatArray = nx[:, None] * pts[None, :, 0] + ny[:, None] * pts[None, :, 1] - offset[:, None]
    return out


@dataclass(frozen=True)
class LidarMount:
    x_m: float = 0.0
    y_m: float = 0.0
    yaw_rad: float = 0.0


def scan_to_points(ranges: npt.ArrayLike, angles: npt.ArrayLike, range_min_m: float,
                   range_max_m: float, mount: LidarMount = LidarMount()) -> FloatArray:
    """Valid returns of a LaserScan as (M, 2) points in base_link.

    NaN, infinities and readings outside [range_min, range_max) are dropped (no return).
    """
    r = np.asarray(ranges, dtype=np.float64)
    a = np.asarray(angles, dtype=np.float64)
    if r.shape != a.shape:
        raise ValueError(f"scan has {r.size} ranges but {a.size} angles")
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(r) & (r >= range_min_m) & (r < range_max_m)
    r, a = r[valid], a[valid] + mount.yaw_rad
    pts = np.empty((r.size, 2), dtype=np.float64)
    pts[:, 0] = mount.x_m + r * np.cos(a)
    pts[:, 1] = mount.y_m + r * np.sin(a)
    return pts


def drop_self_returns(points: FloatArray, radius_m: float) -> FloatArray:
    """`points` (base_link) without those closer than `radius_m` to base_link: the robot's
    own body (see the module doc). `radius_m` 0 keeps them all."""
    if radius_m <= 0.0 or points.shape[0] == 0:
        return points
    keep = points[:, 0] * points[:, 0] + points[:, 1] * points[:, 1] >= radius_m * radius_m
    kept: FloatArray = points[keep]
    return kept


@dataclass(frozen=True)
class CollisionConfig:
    footprint: Footprint = field(default_factory=lambda: Footprint.circle(0.225))
    padding_m: float = 0.02
    stop_margin_m: float = 0.10
    reaction_time_s: float = 0.2
    braking_decel_mps2: float = 1.0
    slowdown_margin_m: float = 0.5
    slowdown_min_ratio: float = 0.3
    #: commanded speeds below this become 0 (the base would not move anyway)
    min_speed_mps: float = 0.02
    #: path sampling step for polygon footprints
    path_step_m: float = 0.02
    #: polygon footprints only: a square base sweeps its corners when it turns
    allow_rotation_in_place: bool = True
    mount: LidarMount = field(default_factory=LidarMount)
    #: scan returns closer than this to base_link are the robot's own body (see module doc);
    #: 0 = keep every return
    self_filter_radius_m: float = 0.0

    def __post_init__(self) -> None:
        for name in ("padding_m", "stop_margin_m", "reaction_time_s", "slowdown_margin_m",
                     "min_speed_mps", "self_filter_radius_m"):
            _finite_nonneg(name, getattr(self, name))
        inner = self.footprint.inscribed_radius_m
        if self.self_filter_radius_m >= inner:
            raise SafetyConfigError(
                f"safety.self_filter_radius_m = {self.self_filter_radius_m}: must be smaller "
                f"than the footprint's inscribed radius ({inner:.3f} m), or the filter would "
                "hide obstacles touching the robot; it only needs to cover the robot's own "
                "parts in the scan plane (the mast)")
        if not math.isfinite(self.braking_decel_mps2) or self.braking_decel_mps2 <= 0.0:
            raise SafetyConfigError(f"safety.braking_decel_mps2 = {self.braking_decel_mps2}: "
                                    "expected the base's braking deceleration, > 0 (e.g. 1.0)")
        if not 0.0 <= self.slowdown_min_ratio <= 1.0:
            raise SafetyConfigError(f"safety.slowdown_min_ratio = {self.slowdown_min_ratio}: "
                                    "expected a fraction in [0, 1]")
        if not math.isfinite(self.path_step_m) or not 0.001 <= self.path_step_m <= 0.2:
            raise SafetyConfigError(f"safety.path_step_m = {self.path_step_m}: expected "
                                    "0.001-0.2 m")

    def stop_distance_m(self, speed_mps: float) -> float:
        """Depth of the stop zone at `speed_mps`: margin + reaction travel + braking distance."""
        s = abs(speed_mps)
        return self.stop_margin_m + s * self.reaction_time_s + s * s / (2.0 * self.braking_decel_mps2)

    def slowdown_distance_m(self, speed_mps: float) -> float:
        return self.stop_distance_m(speed_mps) + self.slowdown_margin_m

    def max_speed_for(self, free_m: float) -> float:
        """The highest speed whose stop zone fits in `free_m` (inverse of stop_distance_m)."""
        room = free_m - self.stop_margin_m
        if room <= 0.0:
            return 0.0
        if math.isinf(room):
            return math.inf
        a, t = self.braking_decel_mps2, self.reaction_time_s
        return a * (-t + math.sqrt(t * t + 2.0 * room / a))


@dataclass(frozen=True)
class CheckResult:
    command: Velocity  # what may be sent
    zone: str  # CLEAR, SLOWDOWN or STOP
    #: how far the footprint can travel along the commanded path before touching a point
    free_distance_m: float
    #: stop zone depth for the commanded speed
    stop_distance_m: float
    #: closest scan point to the footprint edge, in any direction (inf when none)
    closest_m: float

    @property
    def limited(self) -> bool:
        return self.zone != CLEAR


class CollisionMonitor:
    def __init__(self, config: CollisionConfig | None = None) -> None:
        self.config = config or CollisionConfig()
        self._points: FloatArray = _EMPTY

    # -- scans ------------------------------------------------------------------------------
    def points_from_scan(self, ranges: npt.ArrayLike, angle_min_rad: float,
                         angle_increment_rad: float, range_min_m: float,
                         range_max_m: float) -> FloatArray:
        r = np.asarray(ranges, dtype=np.float64)
        angles = angle_min_rad + angle_increment_rad * np.arange(r.size, dtype=np.float64)
        points = scan_to_points(r, angles, range_min_m, range_max_m, self.config.mount)
        return drop_self_returns(points, self.config.self_filter_radius_m)

    # -- geometry ---------------------------------------------------------------------------
    def closest_distance_m(self, points: FloatArray) -> float:
        """Distance from the footprint edge to the nearest point (negative: inside it)."""
        if points.shape[0] == 0:
            return math.inf
        fp = self.config.footprint
        if fp.radius_m is not None:
            return float(np.min(np.hypot(points[:, 0], points[:, 1]))) - fp.radius_m
        a = fp.vertices
        d = np.roll(a, -1, axis=0) - a
        rel = points[None, :, :] - a[:, None, :]  # (K, M, 2)
        t = np.clip(np.einsum("kmj,kj->km", rel, d) / np.einsum("kj,kj->k", d, d)[:, None], 0, 1)
        nearest = rel - t[:, :, None] * d[:, None, :]
        dist = np.min(np.hypot(nearest[:, :, 0], nearest[:, :, 1]), axis=0)
        inside = np.min(_edge_distances(a, points), axis=0) > 0.0
        return float(np.min(np.where(inside, -dist, dist)))

    def free_distance_m(self, points: FloatArray, cmd: Velocity, horizon_m: float) -> float:
        """Arc length the footprint can travel along `cmd`'s path before touching a point.

        Returns `math.inf` when nothing is hit within `horizon_m`, and 0 when a point already
        inside the (padded) footprint lies in the direction of travel.
        """
        v, w = cmd.linear_mps, cmd.angular_rps
        if v == 0.0 or points.shape[0] == 0:
            return math.inf
        fp = self.config.footprint
        reach = horizon_m + fp.circumradius_m + self.config.padding_m
        near = points[(np.abs(points[:, 0]) <= reach) & (np.abs(points[:, 1]) <= reach)]
        if near.shape[0] == 0:
            return math.inf
        if fp.radius_m is not None:
            s = self._circle_hits(near, v, w, fp.radius_m + self.config.padding_m)
            best = float(np.min(s)) if s.size else math.inf
        else:
            best = self._polygon_free(near, v, w, horizon_m)
        return best if best <= horizon_m else math.inf

    @staticmethod
    def _circle_hits(p: FloatArray, v: float, w: float, radius: float) -> FloatArray:
        """Per point, the arc length at which a circle centred on base_link first touches it."""
        px, py = p[:, 0], p[:, 1]
        inside = px * px + py * py <= radius * radius
        # Inside already: blocking only if the centre moves towards it (the centre's velocity
        # is (v, 0) in base_link whatever w is).
        s_inside = np.where(px * v > 0.0, 0.0, np.inf)
        rho = v / w if w != 0.0 else math.inf
        if abs(rho) > 1e4:  # straight line
            ahead = math.copysign(1.0, v) * px
            lateral2 = radius * radius - py * py
            with np.errstate(invalid="ignore"):
                s_out = np.where((lateral2 >= 0.0) & (ahead > 0.0),
                                 ahead - np.sqrt(np.maximum(lateral2, 0.0)), np.inf)
        else:
            # Rotation about the instantaneous centre (0, rho): the circle's centre moves on a
            # circle of radius |rho| and meets the point where cos(theta - phi) >= c.
            qx, qy = px, py - rho
            qn = np.hypot(qx, qy)
            alpha_u = -math.copysign(math.pi / 2.0, rho)
            phi = np.arctan2(qy, qx) - alpha_u
            with np.errstate(divide="ignore", invalid="ignore"):
                c = (rho * rho + qn * qn - radius * radius) / (2.0 * abs(rho) * qn)
            delta = np.arccos(np.clip(c, -1.0, 1.0))
            two_pi = 2.0 * math.pi
            theta = np.mod(phi - delta, two_pi) if w > 0.0 else np.mod(-phi - delta, two_pi)
            s_out = np.where(c <= 1.0, abs(rho) * theta, np.inf)
        out: FloatArray = np.where(inside, s_inside, s_out)
        return out

    def _polygon_free(self, p: FloatArray, v: float, w: float, horizon_m: float) -> float:
        cfg = self.config
        step = cfg.path_step_m
        speed = abs(v)
        # Sample poses along the path; also bound the heading change between samples so that
        # a tight arc is followed finely enough.
        if w != 0.0:  # past one full turn the footprint sweeps nothing new
            horizon_m = min(horizon_m, 2.0 * math.pi * speed / abs(w))
        n = int(math.ceil(horizon_m / step)) + 1
        if w != 0.0:
            n = max(n, int(math.ceil(abs(w) / speed * horizon_m / 0.05)) + 1)
        s = np.linspace(0.0, horizon_m + step, n + 1)
        t = s / speed
        if abs(w) * t[-1] < 1e-6:
            th = np.zeros_like(t)
            tx, ty = v * t, np.zeros_like(t)
        else:
            th = w * t
            tx, ty = (v / w) * np.sin(th), (v / w) * (1.0 - np.cos(th))
        c, sn = np.cos(th)[:, None], np.sin(th)[:, None]
        dx = p[None, :, 0] - tx[:, None]
        dy = p[None, :, 1] - ty[:, None]
        lx = c * dx + sn * dy  # points in each future pose's frame, (N, M)
        ly = -sn * dx + c * dy
        verts = cfg.footprint.vertices
        b = np.roll(verts, -1, axis=0)
        d = b - verts
        length = np.hypot(d[:, 0], d[:, 1])
        nx, ny = -d[:, 1] / length, d[:, 0] / length
        off = nx * verts[:, 0] + ny * verts[:, 1]
        depth = nx[0] * lx + ny[0] * ly - off[0]
        for k in range(1, verts.shape[0]):
            np.minimum(depth, nx[k] * lx + ny[k] * ly - off[k], out=depth)
        hit = depth >= -cfg.padding_m
        inside_now = hit[0]
        if np.any(inside_now & (depth[1] > depth[0])):
            return 0.0  # something already touching, and the motion goes deeper into it
        rows = np.flatnonzero(np.any(hit[1:, ~inside_now], axis=1))
        if rows.size == 0:
            return math.inf
        return float(s[rows[0]])  # last sample before the first contact: conservative

    # -- the check --------------------------------------------------------------------------
    def check(self, cmd: Velocity, points: FloatArray, travelled_since_scan_m: float = 0.0
              ) -> CheckResult:
        """The allowed command for `cmd` given scan `points` (base_link, at scan time).

        `travelled_since_scan_m`: how far the robot may have moved since the scan was taken; it
        is taken off the free distance.
        """
        cfg = self.config
        closest = self.closest_distance_m(points)
        v, w = cmd.linear_mps, cmd.angular_rps
        speed = abs(v)
        d_stop = cfg.stop_distance_m(speed)
        if speed == 0.0:
            fp_turn_ok = cfg.footprint.is_circle or cfg.allow_rotation_in_place
            if w != 0.0 and not fp_turn_ok and closest < cfg.stop_margin_m:
                return CheckResult(Velocity(0.0, 0.0), STOP, math.inf, d_stop, closest)
            return CheckResult(cmd, CLEAR, math.inf, d_stop, closest)
        d_slow = d_stop + cfg.slowdown_margin_m
        free = self.free_distance_m(points, cmd, d_slow + cfg.path_step_m)
        free = max(0.0, free - max(0.0, travelled_since_scan_m))
        if free >= d_slow:
            return CheckResult(cmd, CLEAR, free, d_stop, closest)
        if free > d_stop:
            span = cfg.slowdown_margin_m
            frac = (free - d_stop) / span if span > 0.0 else 1.0
            ratio = cfg.slowdown_min_ratio + (1.0 - cfg.slowdown_min_ratio) * frac
            zone = SLOWDOWN
        else:
            # Never faster than at the inner edge of the slowdown zone, so the speed only
            # falls as the obstacle nears.
            ratio = min(cfg.slowdown_min_ratio, cfg.max_speed_for(free) / speed)
            zone = STOP
        if zone == STOP and speed * ratio < cfg.min_speed_mps:
            # Nothing left of the forward motion: stop, but let the robot turn in place
            # (a round base sweeps nothing new when it turns).
            turn_ok = cfg.footprint.is_circle or cfg.allow_rotation_in_place
            return CheckResult(Velocity(0.0, w if turn_ok else 0.0), STOP, free, d_stop, closest)
        return CheckResult(Velocity(v * ratio, w * ratio), zone, free, d_stop, closest)
