"""Regulated pure pursuit: follow a planned path with a differential-drive base.

Per control tick (`compute`), given the robot's pose and the time:
- progress along the path is tracked monotonically (nearest point in a window ahead);
- the carrot is the path point one lookahead distance further, the lookahead growing with
  speed (`lookahead_time_s`, clamped);
- if the carrot is far off the robot's heading, it rotates in place first;
- the speed is regulated down: in tight curves (radius below `min_turn_radius_m`), near
  obstacles (clearance from the costmap's distance field), in slow zones, and when
  approaching the goal; the angular speed follows from the pure-pursuit curvature;
- at the goal (position within tolerance), it stops translating and turns to the goal's
  heading;
- stuck detection: commanding motion without moving for `stuck_timeout_s` starts a
  recovery (back up if the space behind is free, rotate, then ask for a new plan); after
  `max_recoveries` in a row the goal fails with reason "stuck".

No ROS here: time and pose come in as numbers, (v, w) come out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from passeur.errors import ConfigError
from passeur.navigation.costmap import INSCRIBED, Costmap
from passeur.ros.geometry import Pose2D, normalize_angle

#: Near obstacles the speed is scaled by clearance / slow_clearance_m, never below this
#: fraction of the top speed (closer than that, the safety node's collision monitor rules).
MIN_CLEARANCE_RATIO = 0.25
#: Progress is searched this far ahead of the last projection (m): more than any robot at
#: these speeds covers in a tick, little enough that a path looping back is not skipped.
PROJECTION_WINDOW_M = 3.0
#: Within max_lookahead_m + this of the path's end, a goal passed within tolerance counts.
GOAL_PASS_MARGIN_M = 0.5
#: Rotate in place towards the carrot at gain x heading error, between these speeds.
ROTATE_GAIN = 1.5
ROTATE_MIN_RPS = 0.3
#: Final heading alignment: gentler (a fraction of rotate_speed_rps), never below a crawl.
ALIGN_SPEED_FRACTION = 0.75
ALIGN_GAIN = 1.0
ALIGN_MIN_RPS = 0.08
#: Stuck detection: turning this much also counts as moving (rad); this much progress
#: along the path (m) resets the recovery count.
STUCK_MIN_TURN_RAD = 0.35
RECOVERY_RESET_PROGRESS_M = 1.0
#: Before backing up, the costmap is checked just behind the robot (m) as well as at the
#: end of the back-up.
BACKUP_NEAR_CHECK_M = 0.15


@dataclass(frozen=True)
class ControllerConfig:
    max_speed_mps: float = 0.5
    min_speed_mps: float = 0.06
    max_angular_rps: float = 1.0
    lookahead_time_s: float = 1.5
    min_lookahead_m: float = 0.35
    max_lookahead_m: float = 1.0
    #: Rotate in place when the carrot is further off the heading than this.
    rotate_to_heading_rad: float = 0.7
    rotate_speed_rps: float = 0.8
    #: Curvature regulation: slower when the turn radius is below this.
    min_turn_radius_m: float = 0.9
    #: Obstacle regulation: slower when the clearance (distance minus robot radius) is below this.
    slow_clearance_m: float = 0.35
    robot_radius_m: float = 0.25
    #: Goal approach: speed ramps down over this distance.
    approach_distance_m: float = 0.8
    #: A goal counts as reached within these (the user's settings).
    xy_goal_tolerance_m: float = 0.15
    yaw_goal_tolerance_rad: float = 0.2
    #: Where the controller aims when the tolerance allows it: tighter than the tolerance,
    #: so that odometry noise and the base's braking still leave the robot inside it. The
    #: targets actually used are min(target, tolerance) (`xy_target_m`, `yaw_target_rad`).
    xy_goal_target_m: float = 0.05
    yaw_goal_target_rad: float = 0.05
    stuck_timeout_s: float = 6.0
    stuck_min_progress_m: float = 0.08
    backup_distance_m: float = 0.25
    backup_speed_mps: float = 0.12
    recovery_rotate_rad: float = 1.2
    recovery_timeout_s: float = 6.0
    max_recoveries: int = 3

    def validate(self) -> None:
        positive = ("max_speed_mps", "max_angular_rps", "lookahead_time_s", "min_lookahead_m",
                    "rotate_speed_rps", "xy_goal_tolerance_m", "yaw_goal_tolerance_rad",
                    "stuck_timeout_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"controller parameter {name} must be > 0 (got {getattr(self, name)})")
        if self.max_lookahead_m < self.min_lookahead_m:
            raise ConfigError("max_lookahead_m must be >= min_lookahead_m")
        if self.xy_goal_target_m <= 0 or self.yaw_goal_target_rad <= 0 or self.min_speed_mps < 0:
            raise ConfigError("xy_goal_target_m and yaw_goal_target_rad must be > 0, "
                              "min_speed_mps >= 0")

    # Derived settings: the internal aims never contradict what the user set.
    @property
    def xy_target_m(self) -> float:
        return min(self.xy_goal_target_m, self.xy_goal_tolerance_m)

    @property
    def yaw_target_rad(self) -> float:
        return min(self.yaw_goal_target_rad, self.yaw_goal_tolerance_rad)

    @property
    def speed_floor_mps(self) -> float:
        """Regulation (curves, goal approach) never slows below this; a slow zone or an
        obstacle nearby may."""
        return min(self.min_speed_mps, self.max_speed_mps)


@dataclass
class Command:
    v_mps: float
    w_rps: float
    #: driving, rotating, aligning, recovering, reached, failed
    phase: str
    distance_remaining_m: float = 0.0
    replan: bool = False
    reason: str = ""

    @property
    def done(self) -> bool:
        return self.phase in ("reached", "failed")


def carrot_point(points: npt.NDArray[np.float64], cum_s: npt.NDArray[np.float64], index: int,
                 proj_s: float, lookahead_m: float) -> tuple[float, float]:
    """The point at arc length proj_s + lookahead along the path (clamped to its end)."""
    target = proj_s + lookahead_m
    if target >= cum_s[-1]:
        return float(points[-1][0]), float(points[-1][1])
    j = int(np.searchsorted(cum_s, target, side="right"))
    j = max(j, index + 1, 1)
    s0, s1 = cum_s[j - 1], cum_s[j]
    t = 0.0 if s1 <= s0 else (target - s0) / (s1 - s0)
    p = points[j - 1] + (points[j] - points[j - 1]) * t
    return float(p[0]), float(p[1])


def pursuit_curvature(pose: Pose2D, target_xy: tuple[float, float]) -> tuple[float, float, float]:
    """(curvature 1/m, x, y of the target in the robot frame): kappa = 2 y / L^2."""
    dx, dy = target_xy[0] - pose.x_m, target_xy[1] - pose.y_m
    c, s = math.cos(pose.yaw_rad), math.sin(pose.yaw_rad)
    xl, yl = c * dx + s * dy, -s * dx + c * dy
    d2 = xl * xl + yl * yl
    if d2 < 1e-12:
        return 0.0, xl, yl
    return 2.0 * yl / d2, xl, yl


class PurePursuit:
    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self.config.validate()
        self._points = np.zeros((0, 2))
        self._cum = np.zeros(0)
        self._goal_yaw: float | None = None
        self._index = 0
        self._phase = "idle"
        self._last_v = 0.0
        # stuck detection
        self._check_pose: Pose2D | None = None
        self._check_time = 0.0
        self._recoveries = 0
        self._progress_anchor_s = 0.0
        # recovery sequence
        self._rec_step = ""
        self._rec_start_pose: Pose2D | None = None
        self._rec_start_time = 0.0
        self._rec_direction = 1.0

    # -- goal handling -------------------------------------------------------------------
    def set_path(self, points: npt.NDArray[np.float64], goal_yaw_rad: float | None,
                 now_s: float, keep_recoveries: bool = False) -> None:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[0] < 1:
            raise ValueError("a path needs at least one point")
        if pts.shape[0] == 1:
            pts = np.vstack([pts, pts])
        self._points = pts
        seg = np.hypot(*np.diff(pts, axis=0).T)
        self._cum = np.concatenate([[0.0], np.cumsum(seg)])
        self._goal_yaw = goal_yaw_rad
        self._index = 0
        self._phase = "driving"
        self._check_pose = None
        self._check_time = now_s
        self._rec_step = ""
        if not keep_recoveries:
            self._recoveries = 0
        self._progress_anchor_s = 0.0

    def reset(self) -> None:
        self._points = np.zeros((0, 2))
        self._phase = "idle"
        self._last_v = 0.0
        self._rec_step = ""

    @property
    def path(self) -> npt.NDArray[np.float64]:
        return self._points

    @property
    def index(self) -> int:
        return self._index

    @property
    def recoveries(self) -> int:
        return self._recoveries

    # -- tracking ------------------------------------------------------------------------
    def _project(self, pose: Pose2D) -> tuple[int, float, float]:
        """(segment index, arc length of the projection, distance to the path)."""
        pts = self._points
        lo = self._index
        # Window ahead: a few metres of path, enough for any tick at these speeds.
        hi = int(np.searchsorted(self._cum, self._cum[lo] + PROJECTION_WINDOW_M, side="right"))
        hi = min(max(hi, lo + 2), len(pts))
        a = pts[lo:hi - 1] if hi - 1 > lo else pts[lo:lo + 1]
        b = pts[lo + 1:hi] if hi - 1 > lo else pts[lo:lo + 1]
        ab = b - a
        ap = np.array([pose.x_m, pose.y_m]) - a
        denom = np.maximum((ab * ab).sum(axis=1), 1e-12)
        t = np.clip((ap * ab).sum(axis=1) / denom, 0.0, 1.0)
        closest = a + ab * t[:, None]
        d = np.hypot(*(np.array([pose.x_m, pose.y_m]) - closest).T)
        k = int(np.argmin(d))
        seg_index = lo + k
        seg_len = self._cum[min(seg_index + 1, len(self._cum) - 1)] - self._cum[seg_index]
        s = float(self._cum[seg_index] + t[k] * seg_len)
        return seg_index, s, float(d[k])

    def compute(self, pose: Pose2D, now_s: float, costmap: Costmap | None = None) -> Command:
        cfg = self.config
        if self._phase in ("idle", "reached", "failed") or len(self._points) == 0:
            return Command(0.0, 0.0, self._phase if self._phase != "idle" else "idle")
        goal = self._points[-1]
        goal_dist = math.hypot(goal[0] - pose.x_m, goal[1] - pose.y_m)
        self._index, proj_s, _off = self._project(pose)
        remaining = goal_dist if self._phase == "aligning" else (
            float(self._cum[-1] - proj_s) + _off)
        if self._rec_step:
            return self._recover(pose, now_s, costmap, remaining)
        if self._stuck(pose, now_s, proj_s):
            self._recoveries += 1
            if self._recoveries > cfg.max_recoveries:
                self._phase = "failed"
                return Command(0.0, 0.0, "failed", remaining,
                               reason=f"stuck: no progress after {cfg.max_recoveries} recoveries")
            self._start_recovery(pose, now_s, costmap)
            return self._recover(pose, now_s, costmap, remaining)

        # Goal position reached: align the heading.
        if self._phase == "aligning" and goal_dist > cfg.xy_goal_tolerance_m:
            self._phase = "driving"  # drifted off while turning
        if self._phase == "driving":
            c, s = math.cos(pose.yaw_rad), math.sin(pose.yaw_rad)
            goal_x_local = c * (goal[0] - pose.x_m) + s * (goal[1] - pose.y_m)
            near_end = remaining < cfg.max_lookahead_m + GOAL_PASS_MARGIN_M
            if goal_dist <= cfg.xy_target_m or (
                    near_end and goal_dist <= cfg.xy_goal_tolerance_m and goal_x_local <= 0.0):
                self._phase = "aligning"
        if self._phase == "aligning":
            return self._align(pose, goal_dist)

        lookahead = min(max(abs(self._last_v) * cfg.lookahead_time_s, cfg.min_lookahead_m),
                        cfg.max_lookahead_m)
        carrot = carrot_point(self._points, self._cum, self._index, proj_s, lookahead)
        curvature, xl, yl = pursuit_curvature(pose, carrot)
        alpha = math.atan2(yl, xl)
        if abs(alpha) > cfg.rotate_to_heading_rad:
            w = math.copysign(min(cfg.rotate_speed_rps, max(ROTATE_GAIN * abs(alpha), ROTATE_MIN_RPS)),
                               alpha)
            self._last_v = 0.0
            return Command(0.0, w, "rotating", remaining)
        # Regulation (curves, goal approach), floored so the robot never creeps to a stall...
        v = cfg.max_speed_mps
        if abs(curvature) > 1e-9:
            radius = 1.0 / abs(curvature)
            if radius < cfg.min_turn_radius_m:
                v *= radius / cfg.min_turn_radius_m
        v = min(v, cfg.max_speed_mps * max(remaining, 0.0) / cfg.approach_distance_m)
        v = max(v, cfg.speed_floor_mps)
        # ...then the caps, which always win over the floor: obstacle clearance, slow zones.
        if costmap is not None:
            v = min(v, self._speed_cap(costmap, pose, carrot))
        w = v * curvature
        if abs(w) > cfg.max_angular_rps:
            w = math.copysign(cfg.max_angular_rps, w)
            v = abs(w / curvature) if abs(curvature) > 1e-9 else v
        self._last_v = v
        return Command(v, w, "driving", remaining)

    def _speed_cap(self, costmap: Costmap, pose: Pose2D,
                   carrot: tuple[float, float] | None = None) -> float:
        """Top speed allowed here: near obstacles (down to MIN_CLEARANCE_RATIO of the top
        speed) and in slow zones (at the robot or, if given, at the carrot ahead)."""
        cfg = self.config
        cap = cfg.max_speed_mps
        clearance = costmap.distance_at(pose.x_m, pose.y_m) - cfg.robot_radius_m
        if clearance < cfg.slow_clearance_m:
            cap *= max(clearance / cfg.slow_clearance_m, MIN_CLEARANCE_RATIO)
        limit = costmap.speed_limit_at(pose.x_m, pose.y_m)
        if carrot is not None:
            limit = min(limit, costmap.speed_limit_at(*carrot))
        return min(cap, limit)

    def _align(self, pose: Pose2D, goal_dist: float) -> Command:
        cfg = self.config
        self._last_v = 0.0
        if self._goal_yaw is None:
            self._phase = "reached"
            return Command(0.0, 0.0, "reached", goal_dist)
        err = normalize_angle(self._goal_yaw - pose.yaw_rad)
        if abs(err) <= cfg.yaw_target_rad:
            self._phase = "reached"
            return Command(0.0, 0.0, "reached", goal_dist)
        w = math.copysign(min(cfg.rotate_speed_rps * ALIGN_SPEED_FRACTION,
                               max(ALIGN_GAIN * abs(err), ALIGN_MIN_RPS)), err)
        return Command(0.0, w, "aligning", goal_dist)

    # -- stuck detection and recovery ----------------------------------------------------
    def _stuck(self, pose: Pose2D, now_s: float, proj_s: float) -> bool:
        cfg = self.config
        if self._check_pose is None:
            self._check_pose, self._check_time = pose, now_s
            return False
        moved = pose.distance_to(self._check_pose)
        turned = abs(normalize_angle(pose.yaw_rad - self._check_pose.yaw_rad))
        if moved >= cfg.stuck_min_progress_m or turned >= STUCK_MIN_TURN_RAD:
            self._check_pose, self._check_time = pose, now_s
            if proj_s - self._progress_anchor_s > RECOVERY_RESET_PROGRESS_M:
                self._recoveries = 0  # real progress along the path
                self._progress_anchor_s = proj_s
            return False
        return now_s - self._check_time > cfg.stuck_timeout_s

    def _start_recovery(self, pose: Pose2D, now_s: float, costmap: Costmap | None) -> None:
        cfg = self.config
        behind_free = True
        if costmap is not None:
            for d in (BACKUP_NEAR_CHECK_M, cfg.backup_distance_m + cfg.robot_radius_m * 0.5):
                bx = pose.x_m - d * math.cos(pose.yaw_rad)
                by = pose.y_m - d * math.sin(pose.yaw_rad)
                if costmap.cost_at(bx, by) >= INSCRIBED:
                    behind_free = False
        self._rec_step = "backup" if behind_free else "rotate"
        self._rec_start_pose = pose
        self._rec_start_time = now_s
        self._rec_direction = 1.0 if self._recoveries % 2 else -1.0

    def _recover(self, pose: Pose2D, now_s: float, costmap: Costmap | None,
                 remaining: float) -> Command:
        cfg = self.config
        start = self._rec_start_pose or pose
        elapsed = now_s - self._rec_start_time
        if self._rec_step == "backup":
            if pose.distance_to(start) >= cfg.backup_distance_m or elapsed > cfg.recovery_timeout_s:
                self._rec_step = "rotate"
                self._rec_start_pose, self._rec_start_time = pose, now_s
            else:
                speed = cfg.backup_speed_mps
                if costmap is not None:
                    speed = min(speed, self._speed_cap(costmap, pose))
                return Command(-speed, 0.0, "recovering", remaining)
        if self._rec_step == "rotate":
            turned = abs(normalize_angle(pose.yaw_rad - (self._rec_start_pose or pose).yaw_rad))
            if turned < cfg.recovery_rotate_rad and now_s - self._rec_start_time < cfg.recovery_timeout_s:
                return Command(0.0, self._rec_direction * cfg.rotate_speed_rps, "recovering",
                               remaining)
        # Done: ask for a new plan from here.
        self._rec_step = ""
        self._check_pose, self._check_time = pose, now_s
        self._phase = "driving"
        return Command(0.0, 0.0, "recovering", remaining, replan=True)
