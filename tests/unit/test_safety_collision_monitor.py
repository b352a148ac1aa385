"""Collision monitor geometry: zones, swept footprints, and a closed loop that never collides."""

from __future__ import annotations

import math

import numpy as np
import pytest

from passeur.safety.collision_monitor import (
    CLEAR,
    SLOWDOWN,
    STOP,
    CollisionConfig,
    CollisionMonitor,
    Footprint,
    LidarMount,
    scan_to_points,
)
from passeur.safety.exceptions import SafetyConfigError
from passeur.safety.limits import Velocity

R = 0.225
CFG = CollisionConfig(footprint=Footprint.circle(R), padding_m=0.02, stop_margin_m=0.10,
                      reaction_time_s=0.2, braking_decel_mps2=1.0, slowdown_margin_m=0.5,
                      slowdown_min_ratio=0.3)
MON = CollisionMonitor(CFG)


def wall_x(x: float, y_from: float = -3.0, y_to: float = 3.0, step: float = 0.01) -> np.ndarray:
    ys = np.arange(y_from, y_to, step)
    return np.column_stack([np.full_like(ys, x), ys])


def brute_free_distance(points: np.ndarray, v: float, w: float, radius: float,
                        horizon: float, ds: float = 0.0005) -> float:
    """Walk the footprint along the path in tiny steps; the first step touching a point."""
    s = 0.0
    th = x = y = 0.0
    d0 = np.hypot(points[:, 0], points[:, 1])
    ignore = d0 <= radius  # inside at the start: handled separately by the monitor
    if np.any(ignore & (points[:, 0] * v > 0)):
        return 0.0
    pts = points[~ignore]
    dt = ds / abs(v)
    while s <= horizon:
        if pts.size and np.min(np.hypot(pts[:, 0] - x, pts[:, 1] - y)) <= radius:
            return s
        x += v * math.cos(th) * dt
        y += v * math.sin(th) * dt
        th += w * dt
        s += ds
    return math.inf


def test_stop_distance_grows_with_speed_and_shrinks_with_braking() -> None:
    assert CFG.stop_distance_m(0.0) == pytest.approx(0.10)
    assert CFG.stop_distance_m(0.5) == pytest.approx(0.10 + 0.1 + 0.125)
    assert CFG.stop_distance_m(-0.5) == CFG.stop_distance_m(0.5)
    strong = CollisionConfig(braking_decel_mps2=2.0)
    assert strong.stop_distance_m(0.5) < CollisionConfig(braking_decel_mps2=1.0).stop_distance_m(0.5)
    for speed in (0.05, 0.2, 0.5, 1.0):
        assert CFG.max_speed_for(CFG.stop_distance_m(speed)) == pytest.approx(speed)
    assert CFG.max_speed_for(0.05) == 0.0


def test_scan_points_use_the_lidar_mount_and_drop_invalid_returns() -> None:
    mount = LidarMount(x_m=0.10, y_m=0.0, yaw_rad=math.pi / 2)
    ranges = [1.0, math.inf, math.nan, 0.05, 12.0, 2.0]
    angles = [0.0, 0.1, 0.2, 0.3, 0.4, -math.pi / 2]
    pts = scan_to_points(ranges, angles, 0.12, 12.0, mount)
    assert pts.shape == (2, 2)
    np.testing.assert_allclose(pts[0], [0.10, 1.0], atol=1e-12)  # beam 0 points left
    np.testing.assert_allclose(pts[1], [2.10, 0.0], atol=1e-12)
    with pytest.raises(ValueError):
        scan_to_points([1.0], [0.0, 1.0], 0.1, 10.0)


def test_points_from_laser_scan_fields() -> None:
    mon = CollisionMonitor(CollisionConfig(mount=LidarMount(x_m=0.1)))
    pts = mon.points_from_scan([1.0] * 360, -math.pi, 2 * math.pi / 360, 0.12, 12.0)
    assert pts.shape == (360, 2)
    assert np.max(pts[:, 0]) == pytest.approx(1.1, abs=1e-3)
    assert np.min(pts[:, 0]) == pytest.approx(-0.9)


def test_wall_ahead_free_distance_is_gap_to_footprint() -> None:
    free = MON.free_distance_m(wall_x(1.5), Velocity(0.3, 0.0), horizon_m=5.0)
    assert free == pytest.approx(1.5 - R - 0.02, abs=1e-6)
    # beyond the horizon: nothing to report
    assert MON.free_distance_m(wall_x(1.5), Velocity(0.3, 0.0), horizon_m=1.0) == math.inf
    # driving away from it
    assert MON.free_distance_m(wall_x(1.5), Velocity(-0.3, 0.0), horizon_m=5.0) == math.inf


def test_corridor_walls_beside_the_path_do_not_count() -> None:
    pts = np.vstack([np.column_stack([np.arange(-2, 2, 0.01), np.full(400, 0.30)]),
                     np.column_stack([np.arange(-2, 2, 0.01), np.full(400, -0.30)])])
    res = MON.check(Velocity(0.5, 0.0), pts)
    assert res.zone == CLEAR and res.command == Velocity(0.5, 0.0)
    assert res.closest_m == pytest.approx(0.30 - R)


@pytest.mark.parametrize("seed", range(8))
def test_analytic_circle_matches_brute_force_on_random_arcs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-2.0, 2.0, size=(60, 2))
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) > 0.3]
    v = float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.6))
    w = float(rng.uniform(-1.5, 1.5))
    radius = R + CFG.padding_m
    expected = brute_free_distance(pts, v, w, radius, horizon=2.0)
    got = MON.free_distance_m(pts, Velocity(v, w), horizon_m=2.0)
    if math.isinf(expected):
        assert got == math.inf or got > 1.99
    else:
        assert got == pytest.approx(expected, abs=0.002)


@pytest.mark.parametrize("seed", range(6))
def test_polygon_footprint_agrees_with_circle_it_approximates(seed: int) -> None:
    # a 64-gon circumscribing the circle: never less conservative, at most a few mm more
    n = 64
    rc = (R + 0.02) / math.cos(math.pi / n)
    ang = np.arange(n) * 2 * math.pi / n
    poly = Footprint.polygon(np.column_stack([rc * np.cos(ang), rc * np.sin(ang)]).ravel())
    pmon = CollisionMonitor(CollisionConfig(footprint=poly, padding_m=0.0, path_step_m=0.01))
    rng = np.random.default_rng(100 + seed)
    pts = rng.uniform(-2.0, 2.0, size=(80, 2))
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) > 0.35]
    cmd = Velocity(float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.6)), float(rng.uniform(-1, 1)))
    circle = MON.free_distance_m(pts, cmd, 2.0)
    polygon = pmon.free_distance_m(pts, cmd, 2.0)
    if math.isinf(circle):
        assert math.isinf(polygon) or polygon > 1.9
    else:
        assert circle - 0.03 <= polygon <= circle + 1e-9


def test_zones_clear_slowdown_stop() -> None:
    cmd = Velocity(0.5, 0.2)
    d_stop = CFG.stop_distance_m(0.5)
    for gap, zone in ((d_stop + 0.6, CLEAR), (d_stop + 0.25, SLOWDOWN), (d_stop - 0.1, STOP)):
        res = MON.check(Velocity(0.5, 0.0), wall_x(R + 0.02 + gap))
        assert res.zone == zone, gap
    # slowdown: proportional, path (w/v) kept
    res = MON.check(cmd, wall_x(R + 0.02 + d_stop + 0.25))
    assert res.zone == SLOWDOWN
    assert 0.3 * 0.5 < res.command.linear_mps < 0.5
    assert res.command.angular_rps / res.command.linear_mps == pytest.approx(0.2 / 0.5)
    # deeper into the slowdown zone: slower
    deeper = MON.check(cmd, wall_x(R + 0.02 + d_stop + 0.1))
    assert deeper.command.linear_mps < res.command.linear_mps


def test_inside_stop_zone_speed_drops_to_what_can_still_stop() -> None:
    gap = 0.13
    res = MON.check(Velocity(0.5, 0.0), wall_x(R + 0.02 + gap))
    assert res.zone == STOP
    assert res.command.linear_mps == pytest.approx(CFG.max_speed_for(gap), abs=1e-3)
    assert CFG.stop_distance_m(res.command.linear_mps) <= gap + 1e-9
    # never faster than at the inner edge of the slowdown zone
    edge = MON.check(Velocity(0.5, 0.0), wall_x(R + 0.02 + CFG.stop_distance_m(0.5) - 0.001))
    assert edge.zone == STOP and edge.command.linear_mps <= 0.3 * 0.5 + 1e-9


def test_within_stop_margin_no_forward_motion_but_turning_and_backing_are_allowed() -> None:
    wall = wall_x(R + 0.02 + 0.05)
    res = MON.check(Velocity(0.3, 0.6), wall)
    assert res.zone == STOP and res.command == Velocity(0.0, 0.6)
    assert MON.check(Velocity(0.0, -1.0), wall).command == Velocity(0.0, -1.0)
    back = MON.check(Velocity(-0.2, 0.0), wall)
    assert back.zone == CLEAR and back.command == Velocity(-0.2, 0.0)


def test_obstacle_behind_blocks_backing_up() -> None:
    res = MON.check(Velocity(-0.2, 0.0), wall_x(-(R + 0.02 + 0.05)))
    assert res.zone == STOP and res.command.linear_mps == 0.0


def test_point_touching_the_robot_blocks_only_motion_towards_it() -> None:
    touching = np.array([[0.2, 0.05]])
    assert MON.check(Velocity(0.2, 0.0), touching).command.linear_mps == 0.0
    assert MON.check(Velocity(-0.2, 0.0), touching).command == Velocity(-0.2, 0.0)


def test_arcing_away_from_an_obstacle_is_not_slowed() -> None:
    post = np.array([[0.8, 0.0]])
    assert MON.check(Velocity(0.3, 0.0), post).zone != CLEAR
    # a tight left turn (radius 0.3 m) passes well clear of a post 0.8 m straight ahead
    assert MON.check(Velocity(0.3, 1.0), post).zone == CLEAR


def test_polygon_footprint_validation() -> None:
    with pytest.raises(SafetyConfigError, match="at least 3"):
        Footprint.polygon([0.1, 0.1, -0.1, 0.1])
    with pytest.raises(SafetyConfigError, match="convex"):
        Footprint.polygon([0.3, 0.0, 0.0, 0.05, -0.3, 0.0, 0.0, 0.3, 0.0, -0.3])
    with pytest.raises(SafetyConfigError, match="contain base_link"):
        Footprint.polygon([1.0, 1.0, 2.0, 1.0, 2.0, 2.0, 1.0, 2.0])
    with pytest.raises(SafetyConfigError, match="footprint_radius_m"):
        Footprint.circle(0.0)
    clockwise = Footprint.polygon([0.2, 0.2, 0.2, -0.2, -0.2, -0.2, -0.2, 0.2])
    assert clockwise.circumradius_m == pytest.approx(math.hypot(0.2, 0.2))


def test_rectangle_footprint_zones_and_closest() -> None:
    rect = Footprint.polygon([0.3, 0.2, -0.3, 0.2, -0.3, -0.2, 0.3, -0.2])
    mon = CollisionMonitor(CollisionConfig(footprint=rect, padding_m=0.0))
    wall = wall_x(1.0)
    assert mon.free_distance_m(wall, Velocity(0.3, 0.0), 2.0) == pytest.approx(0.7, abs=0.021)
    assert mon.closest_distance_m(wall) == pytest.approx(0.7)
    assert mon.closest_distance_m(np.array([[0.1, 0.0]])) < 0.0
    near = wall_x(0.35)
    assert mon.check(Velocity(0.3, 0.0), near).command.linear_mps == 0.0
    assert mon.check(Velocity(-0.3, 0.0), near).command.linear_mps == -0.3


@pytest.mark.parametrize("field, value", [("stop_margin_m", -0.1), ("braking_decel_mps2", 0.0),
                                          ("slowdown_min_ratio", 1.5), ("path_step_m", 0.0)])
def test_invalid_config_names_the_parameter(field: str, value: float) -> None:
    with pytest.raises(SafetyConfigError, match=field):
        CollisionConfig(**{field: value})


def simulate_approach(points: np.ndarray, cmd: Velocity, seconds: float = 8.0,
                      control_hz: float = 20.0, scan_hz: float = 10.0,
                      decel: float = 1.0) -> tuple[float, float]:
    """Kinematic unicycle whose speed follows the command with at most `decel` braking, a
    scan every 1/scan_hz, the monitor every 1/control_hz. Returns (closest gap, final speed)."""
    dt = 0.001
    x = y = th = 0.0
    v = 0.0
    allowed = Velocity()
    scan_pts = points
    travelled = 0.0
    closest = math.inf
    steps_ctrl = round(1 / control_hz / dt)
    steps_scan = round(1 / scan_hz / dt)
    for i in range(int(seconds / dt)):
        if i % steps_scan == 0:
            c, s = math.cos(th), math.sin(th)
            rel = points - [x, y]
            scan_pts = np.column_stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1]])
            travelled = 0.0
        if i % steps_ctrl == 0:
            allowed = MON.check(cmd, scan_pts, travelled).command
        target = allowed.linear_mps
        v = target if abs(target) > abs(v) else max(target, v - decel * dt) if v > 0 else target
        x += v * math.cos(th) * dt
        y += v * math.sin(th) * dt
        th += allowed.angular_rps * dt
        travelled += abs(v) * dt
        closest = min(closest, float(np.min(np.hypot(points[:, 0] - x, points[:, 1] - y))) - R)
    return closest, v


def test_closed_loop_full_speed_at_a_wall_stops_outside_the_stop_margin() -> None:
    closest, v_end = simulate_approach(wall_x(3.0), Velocity(0.5, 0.0))
    assert v_end == 0.0
    assert closest >= CFG.stop_margin_m  # measured from the bare footprint
    assert closest < CFG.stop_margin_m + 0.15  # and it did get there


@pytest.mark.parametrize("seed", range(5))
def test_closed_loop_random_clutter_never_touches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-3.0, 3.0, size=(40, 2))
    pts = pts[np.hypot(pts[:, 0], pts[:, 1]) > R + 0.4]
    cmd = Velocity(0.5, float(rng.uniform(-0.4, 0.4)))
    closest, _ = simulate_approach(pts, cmd, seconds=6.0)
    # points beside the path may pass at the padding distance; none is ever touched
    assert closest > 0.0


# -- self-filter: the robot's own mast in the scan plane ------------------------------------
def mast_scan(lidar_x_m: float = 0.10, mast_x_m: float = -0.12, half_depth_m: float = 0.025,
              half_width_m: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """A 360-beam scan from a lidar at (lidar_x, 0) in base_link that sees only the mast box
    behind it (urdf/passeur.urdf.xacro), as a real lidar or Gazebo's would."""
    angles = -math.pi + 2 * math.pi / 360 * np.arange(360)
    ranges = np.full(360, np.inf)
    face = lidar_x_m - (mast_x_m + half_depth_m)  # distance to the mast's front face
    for i, a in enumerate(angles):
        if math.cos(a) < 0.0:
            r = face / -math.cos(a)
            if abs(r * math.sin(a)) <= half_width_m:
                ranges[i] = r
    return ranges, angles


def test_the_robots_own_mast_does_not_forbid_reversing() -> None:
    ranges, angles = mast_scan()
    assert np.isfinite(ranges).sum() >= 15  # the mast really is in the scan
    back = Velocity(-0.2, 0.0)
    unfiltered = CollisionMonitor(CollisionConfig(mount=LidarMount(0.10, 0.0, 0.0)))
    pts = unfiltered.points_from_scan(ranges, float(angles[0]), 2 * math.pi / 360, 0.12, 12.0)
    assert unfiltered.check(back, pts).command.linear_mps == 0.0  # the defect: stuck
    filtered = CollisionMonitor(CollisionConfig(mount=LidarMount(0.10, 0.0, 0.0),
                                                self_filter_radius_m=0.18))
    pts = filtered.points_from_scan(ranges, float(angles[0]), 2 * math.pi / 360, 0.12, 12.0)
    assert pts.shape == (0, 2)
    result = filtered.check(back, pts)
    assert result.zone == CLEAR and result.command.linear_mps == pytest.approx(-0.2)


def test_the_self_filter_keeps_an_obstacle_at_the_footprint() -> None:
    cfg = CollisionConfig(mount=LidarMount(0.10, 0.0, 0.0), self_filter_radius_m=0.18)
    mon = CollisionMonitor(cfg)
    ranges = np.full(360, np.inf)
    ranges[180] = 0.13  # straight ahead, 0.23 m from base_link: touching the base
    pts = mon.points_from_scan(ranges, -math.pi, 2 * math.pi / 360, 0.12, 12.0)
    assert pts.shape[0] == 1
    assert mon.check(Velocity(0.3, 0.0), pts).command.linear_mps == 0.0


@pytest.mark.parametrize("footprint, radius", [
    (Footprint.circle(0.225), 0.225),
    (Footprint.circle(0.225), 0.3),
    (Footprint.polygon([0.3, 0.2, -0.3, 0.2, -0.3, -0.2, 0.3, -0.2]), 0.2),
    (Footprint.circle(0.225), -0.01),
    (Footprint.circle(0.225), math.nan),
])
def test_a_self_filter_that_could_hide_obstacles_is_refused(footprint: Footprint,
                                                             radius: float) -> None:
    with pytest.raises(SafetyConfigError, match="self_filter_radius_m"):
        CollisionConfig(footprint=footprint, self_filter_radius_m=radius)


def test_inscribed_radius_of_a_polygon() -> None:
    fp = Footprint.polygon([0.3, 0.2, -0.3, 0.2, -0.3, -0.2, 0.3, -0.2])
    assert fp.inscribed_radius_m == pytest.approx(0.2)
    assert fp.circumradius_m == pytest.approx(math.hypot(0.3, 0.2))
