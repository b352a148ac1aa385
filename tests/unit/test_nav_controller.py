"""Regulated pure pursuit: geometry, regulation, goal alignment, stuck recovery; and a
kinematic closed loop with the planner on a map with rooms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from passeur.navigation.controller import (
    ControllerConfig,
    PurePursuit,
    carrot_point,
    pursuit_curvature,
)
from passeur.navigation.costmap import Costmap
from passeur.navigation.map_io import FREE, OCCUPIED, OccupancyMap
from passeur.navigation.planner import GlobalPlanner
from passeur.ros.geometry import Pose2D, normalize_angle


def test_curvature_is_two_y_over_l_squared() -> None:
    k, xl, yl = pursuit_curvature(Pose2D(0.0, 0.0, 0.0), (1.0, 1.0))
    assert (xl, yl) == pytest.approx((1.0, 1.0))
    assert k == pytest.approx(2 * 1.0 / 2.0)
    # The circle of radius 1/k through the robot (tangent to its heading) hits the target.
    r = 1.0 / k
    assert math.hypot(1.0 - 0.0, 1.0 - r) == pytest.approx(r)
    k_right, _, _ = pursuit_curvature(Pose2D(0.0, 0.0, math.pi / 2), (1.0, 1.0))
    assert k_right < 0  # facing north, target to the east: turn right


def test_carrot_interpolates_along_the_path() -> None:
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    cum = np.array([0.0, 1.0, 2.0])
    assert carrot_point(pts, cum, 0, 0.2, 0.5) == pytest.approx((0.7, 0.0))
    assert carrot_point(pts, cum, 0, 0.8, 0.5) == pytest.approx((1.0, 0.3))
    assert carrot_point(pts, cum, 1, 1.8, 0.5) == pytest.approx((1.0, 1.0))


def straight(n: float = 5.0) -> np.ndarray:
    return np.stack([np.linspace(0, n, 51), np.zeros(51)], axis=1)


def test_straight_path_full_speed_no_turn() -> None:
    ctl = PurePursuit()
    ctl.set_path(straight(), None, 0.0)
    cmd = ctl.compute(Pose2D(0.0, 0.0, 0.0), 0.0)
    assert cmd.phase == "driving"
    assert cmd.v_mps == pytest.approx(ctl.config.max_speed_mps)
    assert cmd.w_rps == pytest.approx(0.0, abs=1e-9)


def test_goal_behind_rotates_in_place() -> None:
    ctl = PurePursuit()
    ctl.set_path(np.array([[0.0, 0.0], [-2.0, 0.0]]), None, 0.0)
    cmd = ctl.compute(Pose2D(0.0, 0.0, 0.0), 0.0)
    assert cmd.phase == "rotating"
    assert cmd.v_mps == 0.0 and abs(cmd.w_rps) > 0.2


def test_tight_curve_slows_down() -> None:
    ctl = PurePursuit()
    ang = np.linspace(0, math.pi / 2, 30)
    arc = np.stack([0.4 * np.sin(ang), 0.4 - 0.4 * np.cos(ang)], axis=1)
    path = np.vstack([arc, arc[-1] + np.array([[0.0, 3.0]])])
    ctl.set_path(path, None, 0.0)
    cmd = ctl.compute(Pose2D(0.0, 0.0, 0.0), 0.0)
    assert cmd.phase == "driving"
    assert cmd.v_mps < 0.7 * ctl.config.max_speed_mps
    assert cmd.w_rps > 0


def open_map() -> OccupancyMap:
    data = np.full((120, 200), FREE, dtype=np.int8)
    data[:2, :] = data[-2:, :] = OCCUPIED
    data[:, :2] = data[:, -2:] = OCCUPIED
    return OccupancyMap(data, 0.05, 0.0, 0.0)


def test_slow_zone_and_obstacle_clearance_limit_speed() -> None:
    zone = [(0.0, 0.0), (10.0, 0.0), (10.0, 3.0), (0.0, 3.0)]
    cm = Costmap(open_map(), slow_zones=[(zone, 0.15)])
    ctl = PurePursuit()
    ctl.set_path(np.array([[1.0, 2.0], [8.0, 2.0]]), None, 0.0)
    assert ctl.compute(Pose2D(1.0, 2.0, 0.0), 0.0, cm).v_mps == pytest.approx(0.15)
    cm2 = Costmap(open_map())
    ctl.set_path(np.array([[1.0, 0.45], [8.0, 0.45]]), None, 0.0)  # 0.35 m from the wall face
    near = ctl.compute(Pose2D(1.0, 0.45, 0.0), 0.0, cm2).v_mps
    ctl.set_path(np.array([[1.0, 3.0], [8.0, 3.0]]), None, 0.0)
    far = ctl.compute(Pose2D(1.0, 3.0, 0.0), 0.0, cm2).v_mps
    assert near < 0.6 * far


def test_aligns_heading_at_goal_then_reports_reached() -> None:
    ctl = PurePursuit()
    ctl.set_path(np.array([[0.0, 0.0], [1.0, 0.0]]), math.pi / 2, 0.0)
    cmd = ctl.compute(Pose2D(0.99, 0.0, 0.0), 0.0)
    assert cmd.phase == "aligning" and cmd.v_mps == 0.0 and cmd.w_rps > 0
    cmd = ctl.compute(Pose2D(0.99, 0.0, math.pi / 2 - 0.01), 0.1)
    assert cmd.phase == "reached" and cmd.done


def test_stuck_robot_backs_up_rotates_replans_then_fails() -> None:
    cfg = ControllerConfig(stuck_timeout_s=2.0, max_recoveries=2, recovery_timeout_s=1.0)
    ctl = PurePursuit(cfg)
    ctl.set_path(straight(), None, 0.0)
    pose = Pose2D(0.0, 0.0, 0.0)
    phases = []
    t = 0.0
    replans = 0
    while t < 30.0:
        cmd = ctl.compute(pose, t)  # the robot never moves: a wall the map does not know
        phases.append((cmd.phase, cmd.v_mps))
        replans += cmd.replan
        if cmd.done:
            break
        t += 0.1
    assert cmd.phase == "failed" and "stuck" in cmd.reason
    assert ("recovering", -cfg.backup_speed_mps) in phases
    assert replans == 2


def unicycle_run(ctl: PurePursuit, cm: Costmap, pose: Pose2D, max_t: float = 120.0,
                 dt: float = 0.05) -> tuple[Pose2D, str, float]:
    t = 0.0
    min_clearance = math.inf
    while t < max_t:
        cmd = ctl.compute(pose, t, cm)
        if cmd.done:
            return pose, cmd.phase, min_clearance
        yaw = pose.yaw_rad + cmd.w_rps * dt
        pose = Pose2D(pose.x_m + cmd.v_mps * dt * math.cos(yaw),
                      pose.y_m + cmd.v_mps * dt * math.sin(yaw), normalize_angle(yaw))
        min_clearance = min(min_clearance, cm.distance_at(pose.x_m, pose.y_m))
        t += dt
    return pose, "timeout", min_clearance


def test_closed_loop_through_a_doorway_reaches_goal_within_tolerance() -> None:
    data = np.full((120, 160), FREE, dtype=np.int8)
    data[:2, :] = data[-2:, :] = OCCUPIED
    data[:, :2] = data[:, -2:] = OCCUPIED
    data[:, 79:82] = OCCUPIED
    data[50:70, 79:82] = FREE  # 1.0 m doorway
    cm = Costmap(OccupancyMap(data, 0.05, 0.0, 0.0))
    start = Pose2D(1.0, 1.0, 0.0)
    goal = (7.0, 5.0, -math.pi / 2)
    plan = GlobalPlanner().plan(cm, (start.x_m, start.y_m), goal[:2])
    ctl = PurePursuit()
    ctl.set_path(plan.points, goal[2], 0.0)
    end, phase, clearance = unicycle_run(ctl, cm, start)
    assert phase == "reached"
    assert math.hypot(end.x_m - goal[0], end.y_m - goal[1]) < 0.15
    assert abs(normalize_angle(end.yaw_rad - goal[2])) < 0.2
    assert clearance > 0.25  # never closer than the robot radius to a wall cell


def test_yaw_goal_tolerance_is_what_counts_as_reached() -> None:
    # A tolerance tighter than the controller's internal aim (0.05 rad) is honoured...
    ctl = PurePursuit(ControllerConfig(yaw_goal_tolerance_rad=0.02))
    ctl.set_path(np.array([[0.0, 0.0], [1.0, 0.0]]), 0.0, 0.0)
    cmd = ctl.compute(Pose2D(0.99, 0.0, -0.04), 0.0)
    assert cmd.phase == "aligning" and cmd.w_rps > 0
    assert ctl.compute(Pose2D(0.99, 0.0, -0.015), 0.1).phase == "reached"
    # ...and a loose one still aims at the internal target.
    ctl = PurePursuit(ControllerConfig(yaw_goal_tolerance_rad=0.3))
    ctl.set_path(np.array([[0.0, 0.0], [1.0, 0.0]]), 0.0, 0.0)
    assert ctl.compute(Pose2D(0.99, 0.0, -0.1), 0.0).phase == "aligning"


def test_tight_xy_tolerance_and_low_top_speed_are_valid_settings() -> None:
    cfg = ControllerConfig(xy_goal_tolerance_m=0.03, max_speed_mps=0.05)
    ctl = PurePursuit(cfg)  # no error about settings the user cannot change
    assert cfg.xy_target_m == pytest.approx(0.03)
    ctl.set_path(straight(), None, 0.0)
    cmd = ctl.compute(Pose2D(0.0, 0.0, 0.0), 0.0)
    assert cmd.phase == "driving" and 0.0 < cmd.v_mps <= 0.05 + 1e-12
    # Within the target of 0.03 m (not the internal 0.05 m) the goal counts as reached.
    ctl.set_path(np.array([[0.0, 0.0], [1.0, 0.0]]), None, 0.0)
    assert ctl.compute(Pose2D(0.96, 0.0, 0.0), 0.0).phase == "driving"
    assert ctl.compute(Pose2D(0.98, 0.0, 0.0), 0.1).phase == "reached"


def test_slow_zone_below_the_minimum_speed_wins() -> None:
    zone = [(0.0, 0.0), (10.0, 0.0), (10.0, 6.0), (0.0, 6.0)]
    cm = Costmap(open_map(), slow_zones=[(zone, 0.03)])  # below min_speed_mps (0.06)
    ctl = PurePursuit()
    ctl.set_path(np.array([[1.0, 3.0], [8.0, 3.0]]), None, 0.0)
    assert ctl.compute(Pose2D(1.0, 3.0, 0.0), 0.0, cm).v_mps == pytest.approx(0.03)
    # Approaching the goal (where the floor used to lift the speed) it stays within the zone.
    ctl.set_path(np.array([[1.0, 3.0], [1.3, 3.0]]), None, 0.0)
    v = ctl.compute(Pose2D(1.0, 3.0, 0.0), 0.0, cm).v_mps
    assert 0.0 < v <= 0.03 + 1e-6


def test_obstacle_cap_wins_over_the_minimum_speed() -> None:
    cm = Costmap(open_map())
    ctl = PurePursuit(ControllerConfig(max_speed_mps=0.1, min_speed_mps=0.08))
    ctl.set_path(np.array([[1.0, 0.4], [8.0, 0.4]]), None, 0.0)  # clearance ~0.07 m
    v = ctl.compute(Pose2D(1.0, 0.4, 0.0), 0.0, cm).v_mps
    assert 0.0 < v < 0.08


def test_backing_up_in_a_slow_zone_respects_its_limit() -> None:
    zone = [(0.0, 0.0), (10.0, 0.0), (10.0, 6.0), (0.0, 6.0)]
    cm = Costmap(open_map(), slow_zones=[(zone, 0.05)])
    ctl = PurePursuit(ControllerConfig(stuck_timeout_s=1.0))
    ctl.set_path(np.array([[2.0, 3.0], [8.0, 3.0]]), None, 0.0)
    pose = Pose2D(2.0, 3.0, 0.0)
    backups = []
    for k in range(40):  # never moves: stuck, then a recovery backs up
        cmd = ctl.compute(pose, k * 0.1, cm)
        if cmd.phase == "recovering" and cmd.v_mps < 0:
            backups.append(cmd.v_mps)
    assert backups and min(backups) >= -0.05 - 1e-6
