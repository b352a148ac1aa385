"""The navigator node: goals in, velocity commands out.

    goal_pose (PoseStamped, frame map) | goal_place (String: a place id, or JSON
        {"place": id, "request_id": text}) | goal_point (String JSON, frame map:
        {"x": m, "y": m, "yaw": rad or null, "request_id": text}) | navigation/cancel (Empty)
    map (OccupancyGrid, latched), scan (LaserScan), odom (Odometry) [, amcl_pose]
    patrol/status (DiagnosticStatus, latched: is a patrol running?)
    sim/odom_origin (PoseStamped, latched: the simulator's map pose of the odom frame; with
        pose_source odom and no odom_origin parameter, e.g. the simulator in another process;
        a goal under way when it changes stops and is planned again from the corrected pose)
      -> cmd_vel/nav (Twist), plan (Path, latched), navigation/status (DiagnosticStatus,
         latched: transient local, depth 1),
         speech/say (String JSON {"text", "lang"}: a place's description on arrival)

A goal's `request_id` (goal_place or goal_point JSON) is echoed in navigation/status beside the goal_id the
navigator gives it: a sender (the patrol node) knows its own goal's status from the first
message on, whatever older goal to the same place the latched status still describes.

On reaching a named place (goal_place) that has a spoken `description`, the navigator says
it (one message per language in `announce_languages`) if `announce_place_descriptions` is
true, except while a patrol runs: patrols speak their own announcements (config/patrols).

Threads: planning runs in a worker thread of its own (a long search never delays the control
loop or the sensor callbacks); the control loop is a timer at `control_rate_hz` on the node
clock (sim time honoured). The node's callbacks (sensors, goals, the control timer) run one at
a time on the node's single-threaded executor (bringup.NodeSpinners), so each stays short;
the costmap, goal and controller are shared with the planner thread behind one lock. When a
goal ends for any reason a zero Twist is published.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry
from nav_msgs.msg import Path as PathMsg
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool, Empty, String

from passeur.errors import ConfigError
from passeur.navigation.controller import ControllerConfig, PurePursuit
from passeur.navigation.costmap import Costmap, CostmapConfig, scan_endpoints
from passeur.navigation.exceptions import NavConfigFileNotFoundError, PlanningError
from passeur.navigation.map_io import OccupancyMap
from passeur.navigation.places import LANGS, PlacesConfig, load_places, places_path
from passeur.navigation.planner import GlobalPlanner, Plan, PlannerConfig, first_blocked_index
from passeur.ros import qos
from passeur.ros.geometry import Pose2D, quaternion_to_yaw, yaw_to_quaternion
from passeur.ros.params import declare, given

TERMINAL = ("reached", "failed", "cancelled")
#: `reason_code` values in navigation/status (the `reason` beside it is an English sentence):
#: planner codes (PlanningError.code) plus the navigator's own. Pages translate these.
REASON_CODES = ("goal_in_obstacle", "goal_in_keep_out", "goal_too_close", "goal_outside_map",
                "start_blocked", "unreachable", "no_map", "bad_map", "no_pose",
                "unknown_place", "bad_frame", "internal", "blocked", "stuck", "estop",
                "replaced", "cancelled", "shutdown", "bad_goal")
#: navigation/status `reason` of a goal ended by the emergency stop (code `estop`).
ESTOP_REASON = "stopped by the emergency stop: send the goal again once it is released"
#: patrol/status states in which a patrol runs (patrol_runner.PatrolRunner.active).
PATROL_ACTIVE = ("navigating", "announcing", "dwelling", "waiting_retry")
#: The blocked-path check ignores the path within this many robot radii of the robot: what
#: is that close is the controller's (clearance regulation) and the safety node's business,
#: and the robot's own footprint must never count as an obstacle on its path.
BLOCK_CHECK_SKIP_RADII = 1.2
#: ETA = distance remaining / (this fraction of the top speed): curves, doorways and the
#: goal approach make the mean speed lower than the top speed. A rough figure for a status.
ETA_SPEED_FRACTION = 0.7
ETA_MIN_SPEED_MPS = 0.05
#: navigation/status is latched (transient local, depth 1, as ROS actions' status topics): a
#: subscriber that asks for transient local (qos.LATCHED_EVENTS: the web server, the patrol
#: node, `ros2 topic echo`) gets the current state the moment it matches. Not driving, the
#: status is also repeated this often, for volatile subscribers (a tool on default QoS, a
#: best-effort one) and so that a localiser's corrections of the map -> odom offset
#: (`odom_in_map`) reach the pages while the robot stands still.
IDLE_STATUS_PERIOD_S = 2.0
#: The simulator's map pose of the odom frame, latched (sim_node.ODOM_ORIGIN_TOPIC; the
#: navigator does not import the simulator).
ODOM_ORIGIN_TOPIC = "sim/odom_origin"
#: Odometry kept to place scans at their own time: 4 s at 50 Hz, plenty for any scan lag.
ODOM_HISTORY_LENGTH = 200
#: Longest request_id taken from goal_place and echoed in navigation/status.
MAX_REQUEST_ID_CHARS = 64
#: What goal_place takes, for error messages.
GOAL_PLACE_FORMAT = 'a place id, or JSON {"place": "<place id>", "request_id": "<text>"}'
#: What goal_point takes, for error messages.
GOAL_POINT_FORMAT = ('JSON {"x": <metres>, "y": <metres>, "yaw": <radians, or null for any '
                     'heading>, "request_id": "<text>"} in frame map')
#: The planner thread checks this often whether the first map has arrived.
MAP_POLL_S = 0.05
LEVELS = {"idle": DiagnosticStatus.OK, "planning": DiagnosticStatus.OK,
          "driving": DiagnosticStatus.OK, "reached": DiagnosticStatus.OK,
          "cancelled": DiagnosticStatus.WARN, "failed": DiagnosticStatus.ERROR}


@dataclass
class Goal:
    id: int
    x_m: float
    y_m: float
    yaw_rad: float | None
    label: str  # place id or "x,y"
    place: str = ""
    request_id: str = ""  # the sender's own id for it (goal_place JSON), echoed in the status


def _json_object(text: str, topic: str, expected: str) -> dict[str, Any]:
    """A goal topic's JSON object; ValueError saying what `topic` takes (`expected`)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: too deeply nested
        raise ValueError(f"{topic} is not valid JSON: send {expected}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{topic} must be {expected}")
    return data


def parse_goal_place(text: str) -> tuple[str, str]:
    """goal_place's data -> (place id, request_id). A bare place id has no request_id.

    Raises ValueError saying what goal_place takes. Place ids never start with '{'
    (places.py), so JSON and bare ids cannot be confused."""
    text = text.strip()
    if not text.startswith("{"):
        return text, ""
    data = _json_object(text, "goal_place", GOAL_PLACE_FORMAT)
    place, request_id = data.get("place"), data.get("request_id", "")
    if not isinstance(place, str) or not isinstance(request_id, str):
        raise ValueError(f"goal_place must be {GOAL_PLACE_FORMAT} (strings)")
    return place.strip(), request_id[:MAX_REQUEST_ID_CHARS]


def parse_goal_point(text: str) -> tuple[float, float, float | None, str]:
    """goal_point's data -> (x_m, y_m, yaw_rad or None, request_id), in frame map.

    Raises ValueError saying what goal_point takes."""
    data = _json_object(text, "goal_point", GOAL_POINT_FORMAT)
    request_id = data.get("request_id", "")
    values: list[float | None] = []
    for key in ("x", "y", "yaw"):
        v = data.get(key)
        if v is None and key == "yaw":
            values.append(None)  # any final heading
        elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            values.append(float(v))
        else:
            raise ValueError(f"goal_point must be {GOAL_POINT_FORMAT} ('{key}': a finite "
                             "number)")
    if not isinstance(request_id, str):
        raise ValueError(f"goal_point must be {GOAL_POINT_FORMAT} ('request_id': a string)")
    x, y, yaw = values
    if x is None or y is None:  # for mypy: only yaw may be None
        raise ValueError(f"goal_point must be {GOAL_POINT_FORMAT}")
    return x, y, yaw, request_id[:MAX_REQUEST_ID_CHARS]


def grid_from_msg(msg: OccupancyGrid) -> OccupancyMap:
    info = msg.info
    data = np.asarray(msg.data, dtype=np.int8).reshape(info.height, info.width)
    q = info.origin.orientation
    return OccupancyMap(data.copy(), float(info.resolution), float(info.origin.position.x),
                        float(info.origin.position.y), quaternion_to_yaw(q.x, q.y, q.z, q.w))


class NavigatorNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("navigator", **kwargs)
        # Nothing to close until the worker runs (a bad parameter stops __init__ early and
        # the context may still destroy the half-built node).
        self._closed = True
        self._declare_parameters()
        self._lock = threading.RLock()  # costmap, goal, controller
        self._costmap: Costmap | None = None
        self._map_error = ""  # why the last map on 'map' was refused (goals say it)
        self._planner = GlobalPlanner(self.planner_config)
        self._controller = PurePursuit(self.controller_config)
        self._goal: Goal | None = None
        self._goal_counter = 0
        self._state = "idle"
        self._reason = ""
        self._reason_code = ""
        self._plan: Plan | None = None
        self._odom_pose: Pose2D | None = None
        self._odom_time_s = -math.inf
        # (stamp, odom pose) of the last second or so: scans are placed with the pose the
        # robot had when the scan was taken, not the newest one (turning at 1 rad/s, 100 ms
        # of lag would smear walls into phantom obstacles).
        self._odom_history: deque[tuple[float, Pose2D]] = deque(maxlen=ODOM_HISTORY_LENGTH)
        self._map_from_odom = Pose2D(*self.odom_origin)
        # Bumped whenever sim/odom_origin moves the map -> odom origin: a plan computed from
        # a pose taken before the change starts where the robot is not, and is dropped.
        self._origin_version = 0
        self._blocked_since_s: float | None = None
        self._replan_pending = False
        self._last_status_s = -math.inf
        self._last_plan_s = -math.inf
        self._drive_started_s = 0.0
        self._remaining_m = 0.0
        self._plan_queue: queue.Queue[tuple[int, Pose2D, bool] | None] = queue.Queue()

        self.cmd_pub = self.create_publisher(Twist, "cmd_vel/nav", qos.COMMAND)
        self.plan_pub = self.create_publisher(PathMsg, "plan", qos.LATCHED)
        self.status_pub = self.create_publisher(DiagnosticStatus, "navigation/status",
                                               qos.LATCHED)
        self.say_pub = self.create_publisher(String, "speech/say", qos.STATUS)
        self._patrol_active = False

        inputs = MutuallyExclusiveCallbackGroup()
        control = MutuallyExclusiveCallbackGroup()
        self.create_subscription(OccupancyGrid, "map", self._on_map, qos.LATCHED,
                                 callback_group=inputs)
        self.create_subscription(LaserScan, "scan", self._on_scan, qos.SENSOR,
                                 callback_group=inputs)
        self.create_subscription(Odometry, "odom", self._on_odom, qos.SENSOR,
                                 callback_group=inputs)
        if self.pose_source == "amcl":
            self.create_subscription(PoseWithCovarianceStamped, self.pose_topic, self._on_amcl,
                                     qos.STATUS, callback_group=inputs)
        self.create_subscription(PoseStamped, "goal_pose", self._on_goal_pose, qos.STATUS,
                                 callback_group=inputs)
        self.create_subscription(String, "goal_place", self._on_goal_place, qos.STATUS,
                                 callback_group=inputs)
        self.create_subscription(String, "goal_point", self._on_goal_point, qos.STATUS,
                                 callback_group=inputs)
        self.create_subscription(Empty, "navigation/cancel", lambda _m: self.cancel(),
                                 qos.STATUS, callback_group=inputs)
        self._estop = False
        self.create_subscription(Bool, "estop/state", self._on_estop, qos.LATCHED,
                                 callback_group=inputs)
        self.create_subscription(DiagnosticStatus, "patrol/status", self._on_patrol_status,
                                 qos.LATCHED, callback_group=inputs)
        if self.pose_source == "odom" and not self.odom_origin_given:
            # In one process bringup hands the simulator's origin over as the parameter; from
            # another process it comes on this latched topic (a parameter set by hand wins).
            self.create_subscription(PoseStamped, ODOM_ORIGIN_TOPIC, self._on_odom_origin,
                                     qos.LATCHED, callback_group=inputs)
        self._timer = self.create_timer(1.0 / self.control_rate_hz, self._tick,
                                        callback_group=control)
        self._worker = threading.Thread(target=self._plan_loop, name="navigator-planner",
                                        daemon=True)
        self._worker.start()
        self._closed = False
        self._publish_status(force=True)

    # -- parameters ------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        def num(name: str, default: float, description: str, lo: float, hi: float) -> float:
            return float(declare(self, name, float(default), description, min_value=lo,
                                 max_value=hi))

        self.world = str(declare(self, "world", "library", "world name (places file, map)"))
        places_file = str(declare(self, "places_file", "",
                                  "places YAML (default: config/places/<world>.yaml)"))
        self.pose_source = str(declare(self, "pose_source", "odom",
                                       "'odom' (simulation: odom is the map pose after "
                                       "odom_origin) or 'amcl' (a localiser's pose topic)"))
        if self.pose_source not in ("odom", "amcl"):
            raise ConfigError(f"navigator.pose_source = '{self.pose_source}': expected 'odom' "
                              "or 'amcl'")
        self.pose_topic = str(declare(self, "pose_topic", "amcl_pose",
                                      "PoseWithCovarianceStamped topic (pose_source amcl)"))
        origin = list(declare(self, "odom_origin", [0.0, 0.0, 0.0],
                              "map pose [x, y, yaw] of the odom frame (pose_source odom)"))
        if len(origin) != 3:
            raise ConfigError("navigator.odom_origin must be [x, y, yaw]")
        self.odom_origin = tuple(float(v) for v in origin)
        self.odom_origin_given = given(self, "odom_origin")
        self.control_rate_hz = num("control_rate_hz", 15.0, "controller loop rate (Hz)", 2.0, 50.0)
        self.lidar_x_m = num("lidar_x_m", 0.10, "lidar position in base_link, x (m)", -2.0, 2.0)
        self.lidar_y_m = num("lidar_y_m", 0.0, "lidar position in base_link, y (m)", -2.0, 2.0)
        self.lidar_yaw_rad = num("lidar_yaw_rad", 0.0, "lidar yaw in base_link (rad)", -4.0, 4.0)
        self.pose_timeout_s = num("pose_timeout_s", 1.0, "stop when the pose is older (s)",
                                  0.05, 30.0)
        self.blocked_timeout_s = num("blocked_timeout_s", 10.0, "fail a goal whose path stays "
                                     "blocked this long (s)", 0.0, 600.0)
        self.block_check_m = num("block_check_distance_m", 3.0, "path length ahead checked "
                                 "for new obstacles (m)", 0.2, 50.0)
        self.replan_interval_s = num("blocked_replan_interval_s", 1.0, "while the path stays "
                                     "blocked, ask for a new plan at most this often (s)",
                                     0.05, 60.0)
        self.scan_max_pose_lag_s = num("scan_max_pose_lag_s", 0.1, "drop a scan taken more "
                                       "than this after the newest odometry: the robot's pose "
                                       "then is unknown (s)", 0.0, 2.0)
        self.map_timeout_s = num("map_timeout_s", 5.0, "a goal fails when no map has arrived "
                                 "on 'map' within this time (s)", 0.1, 300.0)
        self.status_rate_hz = num("status_rate_hz", 2.0, "navigation/status rate while "
                                  "driving (Hz)", 0.1, 50.0)
        self.announce_descriptions = bool(declare(
            self, "announce_place_descriptions", True,
            "on reaching a named place, say its description on speech/say (not during "
            "patrols, which have their own announcements)"))
        self.announce_languages = [str(v) for v in declare(
            self, "announce_languages", ["fr", "en"],
            "languages of the spoken descriptions, in the order said (fr, en)")]
        bad = [lang for lang in self.announce_languages if lang not in LANGS]
        if bad or not self.announce_languages:
            raise ConfigError(f"navigator.announce_languages = {self.announce_languages}: "
                              f"expected a non-empty list of {', '.join(LANGS)}")
        robot_radius = num("robot_radius_m", 0.25, "robot radius incl. margin (m)", 0.05, 2.0)
        self.self_filter_radius_m = num(
            "self_filter_radius_m", 0.18, "scan returns closer than this to the robot's centre "
            "are its own body (the mast crosses the scan plane), not obstacles (m; 0 = keep "
            "all; below robot_radius_m)", 0.0, 2.0)
        if self.self_filter_radius_m >= robot_radius:
            raise ConfigError(f"navigator.self_filter_radius_m = {self.self_filter_radius_m}: "
                              f"must be smaller than robot_radius_m ({robot_radius}) and than "
                              "the base's own radius, or the filter would hide obstacles "
                              "touching the robot; it only needs to cover the mast")
        self.costmap_config = CostmapConfig(
            robot_radius_m=robot_radius,
            inflation_radius_m=num("inflation_radius_m", 0.9, "cost gradient reach (m)", 0.05, 5.0),
            cost_scaling_per_m=num("cost_scaling_per_m", 4.0, "cost decay rate (1/m)", 0.01, 100.0),
            unknown_is_lethal=bool(declare(self, "unknown_is_lethal", True,
                                           "never plan through unmapped cells")),
            obstacle_decay_s=num("obstacle_decay_s", 5.0, "forget unseen obstacles after (s)",
                                 0.1, 600.0),
            obstacle_max_range_m=num("obstacle_max_range_m", 5.0, "mark lidar hits up to (m)",
                                     0.2, 50.0),
            raytrace_max_range_m=num("raytrace_max_range_m", 8.0, "clear along rays up to (m)",
                                     0.2, 50.0),
        )
        self.costmap_config.validate()
        self.planner_config = PlannerConfig(
            cost_weight=num("cost_weight", 3.0, "weight of the cost gradient in planning",
                            0.0, 100.0),
            max_planning_cells=int(declare(self, "max_planning_cells", 150_000,
                                           "plan on a coarser grid above this many cells "
                                           "(0: never)", min_value=0, max_value=10**9)),
        )
        self.controller_config = ControllerConfig(
            max_speed_mps=num("max_speed_mps", 0.5, "top speed (m/s); curves and the goal "
                              "approach slow down to min(0.06, this), slow zones and "
                              "obstacles nearby further", 0.01, 3.0),
            max_angular_rps=num("max_angular_rps", 1.0, "top yaw rate (rad/s)", 0.05, 6.0),
            robot_radius_m=robot_radius,
            xy_goal_tolerance_m=num("xy_goal_tolerance_m", 0.15, "a goal is reached within "
                                    "this distance (m); the controller aims at min(0.05, this)",
                                    0.01, 5.0),
            yaw_goal_tolerance_rad=num("yaw_goal_tolerance_rad", 0.2, "a goal is reached "
                                       "within this heading error (rad); the controller aims "
                                       "at min(0.05, this)", 0.01, 3.2),
            stuck_timeout_s=num("stuck_timeout_s", 6.0, "no progress this long starts a "
                                "recovery (s)", 0.5, 120.0),
            max_recoveries=int(declare(self, "max_recoveries", 3, "recoveries before failing",
                                       min_value=0, max_value=100)),
        )
        self.controller_config.validate()
        path = Path(places_file) if places_file else places_path(self.world)
        self.places: PlacesConfig | None
        try:
            self.places = load_places(path, self.world)
        except NavConfigFileNotFoundError as exc:
            # Only a world without a places file may run without places. A malformed file
            # (a typo) must stop the start-up: it also holds the keep-out and slow zones,
            # which would otherwise be silently ignored.
            if places_file:
                raise
            self.get_logger().warning(f"no named places, keep-out or slow zones: {exc}")
            self.places = None

    # -- public API (also used by tests) -----------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def costmap(self) -> Costmap | None:
        return self._costmap

    def pose(self) -> Pose2D | None:
        with self._lock:
            if self._odom_pose is None:
                return None
            return self._map_from_odom.compose(self._odom_pose)

    def _preempt(self) -> None:
        """A new goal replaces an active one: report the old one as cancelled first, so that
        whoever sent it (a patrol) learns it ended."""
        with self._lock:
            active = self._goal is not None and self._state in ("planning", "driving")
            if active:
                self._set_state("cancelled", "replaced by a new goal", "replaced")
        if active:
            self._publish_status(force=True)

    def _new_goal(self, label: str, place: str = "", request_id: str = "") -> int:
        """Register a goal that fails at once (bad place, bad frame): it still gets its own
        'planning' status first, like every goal."""
        self._preempt()
        with self._lock:
            self._goal_counter += 1
            self._goal = Goal(self._goal_counter, math.nan, math.nan, None, label, place,
                              request_id)
            self._set_state("planning", "")
            gid = self._goal_counter
        self._publish_status(force=True)
        return gid

    def send_goal(self, x_m: float, y_m: float, yaw_rad: float | None, label: str = "",
                  place: str = "", request_id: str = "") -> int:
        self._preempt()
        with self._lock:
            self._goal_counter += 1
            goal = Goal(self._goal_counter, x_m, y_m, yaw_rad,
                        label or f"{x_m:.2f},{y_m:.2f}", place, request_id)
            self._goal = goal
            self._plan = None
            self._controller.reset()
            self._blocked_since_s = None
            self._set_state("planning", "")
            pose = self.pose()
        self._publish_zero()
        self._publish_status(force=True)
        if self._estop:
            # Ended now, not when its plan is ready: an e-stop released while it plans (a
            # large map, a map still to come) would otherwise let it drive off on the release.
            self._end_goal_for_estop()
            return goal.id
        if pose is None:
            self._fail(goal.id, "no robot pose yet (is odom published?)", "no_pose")
            return goal.id
        self._plan_queue.put((goal.id, pose, False))
        return goal.id

    def send_place(self, place_id: str, request_id: str = "") -> int:
        if self.places is None or place_id not in self.places.places:
            known = ", ".join(sorted(self.places.places)) if self.places else "none"
            gid = self._new_goal(place_id, place_id, request_id)
            self._fail(gid, f"unknown place '{place_id}' (known places: {known})",
                       "unknown_place")
            return gid
        p = self.places.places[place_id]
        return self.send_goal(p.x_m, p.y_m, p.yaw_rad, label=place_id, place=place_id,
                              request_id=request_id)

    def cancel(self) -> None:
        with self._lock:
            if self._goal is None or self._state in TERMINAL or self._state == "idle":
                return
            self._controller.reset()
            self._plan = None
            self._set_state("cancelled", "cancelled on request", "cancelled")
        self._publish_zero()
        self._publish_status(force=True)

    # -- inputs ----------------------------------------------------------------------------
    def _now_s(self) -> float:
        return float(self.get_clock().now().nanoseconds) * 1e-9

    def _on_map(self, msg: OccupancyGrid) -> None:
        try:
            grid = grid_from_msg(msg)
            keep = [z.polygon for z in self.places.keep_out] if self.places else []
            slow = [(z.polygon, float(z.speed_limit_mps or 0.0))
                    for z in self.places.slow_zones] if self.places else []
            costmap = Costmap(grid, self.costmap_config, keep_out=keep, slow_zones=slow)
        except (ValueError, ConfigError) as exc:
            self.get_logger().error(f"cannot use the map: {exc}")
            with self._lock:
                self._map_error = str(exc)
            return
        with self._lock:
            self._costmap = costmap
            self._map_error = ""
        self.get_logger().info(f"map {grid.width}x{grid.height} at {grid.resolution_m} m")
        self._check_places(costmap)

    def _check_places(self, costmap: Costmap) -> None:
        if self.places is None:
            return
        for place in self.places.places.values():
            why = costmap.explain_cell(place.x_m, place.y_m)
            if why is not None:
                self.get_logger().warning(f"place '{place.id}' ({place.x_m}, {place.y_m}) is {why}")

    def _on_odom(self, msg: Odometry) -> None:
        p = msg.pose.pose
        pose = Pose2D(p.position.x, p.position.y,
                      quaternion_to_yaw(p.orientation.x, p.orientation.y, p.orientation.z,
                                        p.orientation.w))
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        with self._lock:
            self._odom_pose = pose
            self._odom_time_s = self._now_s()
            if self._odom_history and stamp < self._odom_history[-1][0]:
                self._odom_history.clear()  # time went backwards (sim restarted)
            self._odom_history.append((stamp, pose))

    def _pose_at(self, stamp_s: float) -> Pose2D | None:
        """Map pose at a past time, interpolated between odometry samples."""
        with self._lock:
            hist = list(self._odom_history)
            if not hist:
                return None
            if stamp_s >= hist[-1][0]:
                if stamp_s - hist[-1][0] > self.scan_max_pose_lag_s:
                    return None  # odometry lags the scan: cannot place it
                odom = hist[-1][1]
            elif stamp_s < hist[0][0]:
                return None
            else:
                i = next(k for k in range(len(hist) - 1, -1, -1) if hist[k][0] <= stamp_s)
                (t0, p0), (t1, p1) = hist[i], hist[i + 1]
                f = 0.0 if t1 <= t0 else (stamp_s - t0) / (t1 - t0)
                dyaw = math.atan2(math.sin(p1.yaw_rad - p0.yaw_rad), math.cos(p1.yaw_rad - p0.yaw_rad))
                odom = Pose2D(p0.x_m + f * (p1.x_m - p0.x_m), p0.y_m + f * (p1.y_m - p0.y_m),
                              p0.yaw_rad + f * dyaw)
            return self._map_from_odom.compose(odom)

    def _on_odom_origin(self, msg: PoseStamped) -> None:
        frame = msg.header.frame_id.lstrip("/")
        if frame not in ("", "map"):
            self.get_logger().error(f"{ODOM_ORIGIN_TOPIC}: frame '{msg.header.frame_id}' is not "
                                    "'map'; odom_origin left as it was")
            return
        p = msg.pose
        origin = Pose2D(float(p.position.x), float(p.position.y),
                        quaternion_to_yaw(p.orientation.x, p.orientation.y, p.orientation.z,
                                          p.orientation.w))
        if not all(math.isfinite(v) for v in (origin.x_m, origin.y_m, origin.yaw_rad)):
            self.get_logger().error(f"{ODOM_ORIGIN_TOPIC}: not a finite pose; ignored")
            return
        with self._lock:
            if origin == self._map_from_odom:
                return
            self._map_from_odom = origin
            self._origin_version += 1
            if self._costmap is not None:
                # Scans seen so far were placed with the old origin: wrong places on the map.
                self._costmap.clear_obstacles()
            # A goal under way was planned from the old map pose (the simulator in another
            # process: a goal sent before its origin arrived): that path starts where the
            # robot is not. Stop and plan again from the corrected pose, the same goal (its
            # id and sender unchanged); a goal still planning is planned again too.
            goal = self._goal if self._state in ("planning", "driving") else None
            if goal is not None:
                self._controller.reset()
                self._plan = None
                self._blocked_since_s = None
                self._replan_pending = False
                self._set_state("planning", "")
            pose = self.pose()
        self.get_logger().info(f"odom frame at ({origin.x_m:.2f}, {origin.y_m:.2f}, "
                               f"{origin.yaw_rad:.2f}) in the map (the simulator's "
                               f"odom_origin, on {ODOM_ORIGIN_TOPIC})")
        if goal is not None:
            self._publish_zero()
            self.get_logger().warning(f"the robot's map pose moved with the odom origin: "
                                      f"planning to {goal.label} again")
            if pose is not None:
                self._plan_queue.put((goal.id, pose, False))
            else:  # cannot happen (a goal needs a pose to start), but never hang in planning
                self._fail(goal.id, "no robot pose yet (is odom published?)", "no_pose")
        self._publish_status(force=True)  # the pages' map -> odom (odom_in_map) at once

    def _on_amcl(self, msg: PoseWithCovarianceStamped) -> None:
        p = msg.pose.pose
        map_pose = Pose2D(p.position.x, p.position.y,
                          quaternion_to_yaw(p.orientation.x, p.orientation.y, p.orientation.z,
                                            p.orientation.w))
        with self._lock:
            if self._odom_pose is None:
                return
            # map->odom such that map->odom->base_link matches the localiser's estimate.
            self._map_from_odom = map_pose.compose(self._odom_pose.inverse())

    def _on_scan(self, msg: LaserScan) -> None:
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        pose = self._pose_at(stamp) if stamp > 0 else self.pose()
        if pose is None:
            return
        with self._lock:
            costmap = self._costmap
        if costmap is None:
            return
        sensor = pose.compose(Pose2D(self.lidar_x_m, self.lidar_y_m, self.lidar_yaw_rad))
        try:
            rays = scan_endpoints(sensor.x_m, sensor.y_m, sensor.yaw_rad, msg.ranges,
                                  msg.angle_min, msg.angle_increment, msg.range_min,
                                  msg.range_max, body_xy=(pose.x_m, pose.y_m),
                                  self_filter_radius_m=self.self_filter_radius_m)
        except ValueError as exc:
            self.get_logger().warning(f"ignoring malformed scan: {exc}", throttle_duration_sec=5.0)
            return
        with self._lock:
            costmap.update_scan((sensor.x_m, sensor.y_m), rays,
                                stamp if stamp > 0 else self._now_s())

    def _on_estop(self, msg: Bool) -> None:
        engaged = bool(msg.data)
        with self._lock:
            self._estop = engaged
        if engaged:
            self._end_goal_for_estop()

    def _end_goal_for_estop(self) -> None:
        """Releasing an emergency stop must not set the robot moving again by itself (IEC
        60204-1, ISO 13850): the goal under way (or one sent while the e-stop is on) ends here,
        cancelled with code `estop`, and whoever sent it sends it again once it is released."""
        with self._lock:
            if self._goal is None or self._state in TERMINAL or self._state == "idle":
                return
            self._controller.reset()
            self._plan = None
            self._set_state("cancelled", ESTOP_REASON, "estop")
        self.get_logger().warning(f"goal cancelled: {ESTOP_REASON}")
        self._publish_zero()
        self._publish_status(force=True)

    def _on_patrol_status(self, msg: DiagnosticStatus) -> None:
        state = next((kv.value for kv in msg.values if kv.key == "state"), "")
        with self._lock:
            self._patrol_active = state in PATROL_ACTIVE

    def _on_goal_pose(self, msg: PoseStamped) -> None:
        frame = msg.header.frame_id.lstrip("/")
        if frame not in ("", "map"):
            gid = self._new_goal("pose")
            self._fail(gid, f"goal frame '{msg.header.frame_id}' is not supported: send goals "
                            "in frame 'map'", "bad_frame")
            return
        q = msg.pose.orientation
        yaw: float | None = quaternion_to_yaw(q.x, q.y, q.z, q.w)
        if q.x == 0.0 and q.y == 0.0 and q.z == 0.0 and q.w == 0.0:
            yaw = None  # no orientation given: any final heading
        x, y = float(msg.pose.position.x), float(msg.pose.position.y)
        if not (math.isfinite(x) and math.isfinite(y)):
            self.get_logger().warning("ignoring a goal with non-finite coordinates")
            return
        self.send_goal(x, y, yaw)

    def _on_goal_place(self, msg: String) -> None:
        try:
            place_id, request_id = parse_goal_place(msg.data)
        except ValueError as exc:
            # Still a goal of its own that fails, so the sender hears why.
            label = msg.data.strip()[:MAX_REQUEST_ID_CHARS]
            gid = self._new_goal(label)
            self._fail(gid, str(exc), "unknown_place")
            return
        self.send_place(place_id, request_id)

    def _on_goal_point(self, msg: String) -> None:
        try:
            x, y, yaw, request_id = parse_goal_point(msg.data)
        except ValueError as exc:
            # Still a goal of its own that fails, so the sender hears why.
            gid = self._new_goal("point")
            self._fail(gid, str(exc), "bad_goal")
            return
        self.send_goal(x, y, yaw, request_id=request_id)

    # -- planning (worker thread) ----------------------------------------------------------
    def _plan_loop(self) -> None:
        while True:
            item = self._plan_queue.get()
            if item is None:
                return
            goal_id, pose, is_replan = item
            # Only the newest request for the current goal matters.
            while not self._plan_queue.empty():
                nxt = self._plan_queue.get()
                if nxt is None:
                    return
                goal_id, pose, is_replan = nxt
            try:
                self._plan_once(goal_id, pose, is_replan)
            except Exception as exc:  # noqa: BLE001 - a planner bug must not kill the thread
                self.get_logger().error(f"planning crashed: {exc!r}")
                self._fail(goal_id, f"internal planning error: {exc}", "internal")

    def _plan_once(self, goal_id: int, pose: Pose2D, is_replan: bool) -> None:
        deadline = time.monotonic() + self.map_timeout_s
        while True:
            with self._lock:
                goal, costmap = self._goal, self._costmap
            if goal is None or goal.id != goal_id or self._closed:
                return
            if costmap is not None:
                break
            with self._lock:
                map_error = self._map_error
            if map_error:
                self._fail(goal_id, f"the map on 'map' cannot be used: {map_error}", "bad_map")
                return
            if time.monotonic() > deadline:
                self._fail(goal_id, "no map received on 'map' (is the map server running?)",
                           "no_map")
                return
            time.sleep(MAP_POLL_S)
        with self._lock:
            current = self.pose() or pose
            origin_version = self._origin_version
            snapshot = costmap.snapshot()  # plan without holding the lock
        try:
            plan = self._planner.plan(snapshot, (current.x_m, current.y_m), (goal.x_m, goal.y_m))
        except PlanningError as exc:
            with self._lock:
                moved = origin_version != self._origin_version
            if moved:
                return  # from a pose the odom origin has since corrected: replanned already
            if is_replan and exc.code in ("unreachable", "start_blocked") and self._still_waiting():
                with self._lock:
                    self._replan_pending = False
                return  # keep waiting: the blockage may clear (a person walking away)
            self._fail(goal_id, str(exc), exc.code)
            return
        with self._lock:
            if self._goal is None or self._goal.id != goal_id or self._state in TERMINAL:
                return
            if origin_version != self._origin_version:
                return  # planned from before the odom origin moved: _on_odom_origin replans
            now = self._now_s()
            self._plan = plan
            self._controller.set_path(plan.points, goal.yaw_rad, now, keep_recoveries=is_replan)
            self._blocked_since_s = None
            self._replan_pending = False
            self._last_plan_s = now
            if not is_replan:
                self._drive_started_s = now
            self._set_state("driving", "")
        self.get_logger().info(
            f"plan to {goal.label}: {plan.length_m:.1f} m, {len(plan.points)} points, "
            f"{plan.planning_time_s * 1e3:.0f} ms ({plan.method})")
        self._publish_plan(plan)
        self._publish_status(force=True)

    def _still_waiting(self) -> bool:
        with self._lock:
            if self._blocked_since_s is None:
                return True
            return self._now_s() - self._blocked_since_s < self.blocked_timeout_s

    # -- control loop ----------------------------------------------------------------------
    def _tick(self) -> None:
        if self._closed:
            return
        now = self._now_s()
        with self._lock:
            state, goal, costmap = self._state, self._goal, self._costmap
            idle = state != "driving" or goal is None or costmap is None
            pose = None if idle else self.pose()
            stale = pose is None or now - self._odom_time_s > self.pose_timeout_s
        if idle:
            if now - self._last_status_s >= IDLE_STATUS_PERIOD_S:
                self._publish_status(force=True)
            return
        assert goal is not None and costmap is not None  # driving: both are set
        if stale:
            self._publish_zero()
            self.get_logger().warning("no fresh pose: holding still", throttle_duration_sec=2.0)
            return
        if self._estop:  # a goal that reached driving while the e-stop was on
            self._end_goal_for_estop()
            return
        assert pose is not None
        with self._lock:
            blocked = self._path_blocked(costmap, pose)
            if blocked:
                if self._blocked_since_s is None:
                    self._blocked_since_s = now
                    self.get_logger().info("path blocked by an obstacle: replanning")
                waited = now - self._blocked_since_s
                if waited > self.blocked_timeout_s:
                    fail = "path blocked: no way around the obstacle"
                else:
                    fail = ""
                    if (not self._replan_pending
                            or now - self._last_plan_s > self.replan_interval_s):
                        self._replan_pending = True
                        self._last_plan_s = now
                        self._plan_queue.put((goal.id, pose, True))
                cmd = None
            else:
                cmd = self._controller.compute(pose, now, costmap)
                fail = ""
        if blocked:
            self._publish_zero()
            if fail:
                self._fail(goal.id, fail, "blocked")
            else:
                self._publish_status()
            return
        assert cmd is not None
        if cmd.phase == "reached":
            self._reached(goal)
            return
        if cmd.phase == "failed":
            self._fail(goal.id, cmd.reason, "stuck")
            return
        if cmd.replan:
            with self._lock:
                self._replan_pending = True
                self._last_plan_s = now
            self._plan_queue.put((goal.id, pose, True))
        twist = Twist()
        twist.linear.x = float(cmd.v_mps)
        twist.angular.z = float(cmd.w_rps)
        self.cmd_pub.publish(twist)
        self._remaining_m = cmd.distance_remaining_m
        self._publish_status()

    def _path_blocked(self, costmap: Costmap, pose: Pose2D) -> bool:
        """A new obstacle on the path ahead (the first BLOCK_CHECK_SKIP_RADII robot radii
        excepted: the robot's own surroundings are the controller's and the safety node's)."""
        path = self._controller.path
        if len(path) < 2:
            return False
        idx = first_blocked_index(costmap, path, self._controller.index, self.block_check_m,
                                  skip_m=BLOCK_CHECK_SKIP_RADII * self.costmap_config.robot_radius_m)
        if idx is None:
            self._blocked_since_s = None
            return False
        return True

    # -- outputs ---------------------------------------------------------------------------
    def _set_state(self, state: str, reason: str, code: str = "") -> None:
        """`reason` is for people (English, in logs); `code` for programs (pages translate it:
        see REASON_CODES)."""
        self._state = state
        self._reason = reason
        self._reason_code = code

    def _reached(self, goal: Goal) -> None:
        with self._lock:
            if self._goal is None or self._goal.id != goal.id or self._state in TERMINAL:
                return
            self._set_state("reached", "")
            quiet = self._patrol_active or not self.announce_descriptions
        self._publish_zero()
        self._publish_status(force=True)
        if quiet or not goal.place or self.places is None:
            return
        place = self.places.places.get(goal.place)
        if place is None:
            return
        for lang in self.announce_languages:
            text = place.description.get(lang)
            if text and self.context.ok():
                self.say_pub.publish(String(data=json.dumps({"text": text, "lang": lang},
                                                            ensure_ascii=False)))

    def _fail(self, goal_id: int, reason: str, code: str) -> None:
        with self._lock:
            if self._goal is None or self._goal.id != goal_id or self._state in TERMINAL:
                return
            self._controller.reset()
            self._set_state("failed", reason, code)
        self.get_logger().warning(f"goal failed: {reason}")
        self._publish_zero()
        self._publish_status(force=True)

    def _publish_zero(self) -> None:
        if self.context.ok():
            self.cmd_pub.publish(Twist())

    def _publish_plan(self, plan: Plan) -> None:
        msg = PathMsg()
        msg.header.frame_id = "map"
        msg.header.stamp = self.get_clock().now().to_msg()
        for x, y in plan.points:
            ps = PoseStamped()
            ps.header = msg.header
            ps.pose.position.x = float(x)
            ps.pose.position.y = float(y)
            ps.pose.orientation.w = 1.0
            msg.poses.append(ps)
        self.plan_pub.publish(msg)

    def status_values(self) -> dict[str, str]:
        with self._lock:
            goal, plan, state = self._goal, self._plan, self._state
            remaining = self._remaining_m if state == "driving" else (
                plan.length_m if (plan is not None and state == "planning") else 0.0)
            if state == "driving" and plan is not None and remaining == 0.0:
                remaining = plan.length_m
        speed = max(self.controller_config.max_speed_mps * ETA_SPEED_FRACTION, ETA_MIN_SPEED_MPS)
        values = {
            "state": state,
            "goal": goal.label if goal else "",
            "goal_id": str(goal.id) if goal else "",
            "place": goal.place if goal else "",
            "request_id": goal.request_id if goal else "",
            "reason": self._reason,
            "reason_code": self._reason_code,
            "distance_remaining_m": f"{remaining:.2f}",
            "eta_s": f"{remaining / speed:.1f}" if state == "driving" else "0.0",
        }
        if plan is not None:
            values["plan_length_m"] = f"{plan.length_m:.2f}"
            values["planning_ms"] = f"{plan.planning_time_s * 1e3:.1f}"
            values["plan_downsample"] = str(plan.downsample)
        pose = self.pose()
        if pose is not None:
            values["pose"] = f"{pose.x_m:.2f},{pose.y_m:.2f},{pose.yaw_rad:.2f}"
        with self._lock:
            m = self._map_from_odom
        # The odom frame in the map, exactly (what `pose` composes with odometry): others turn
        # their own odometry into map poses with it instead of pairing messages in time.
        values["odom_in_map"] = f"{m.x_m:.4f},{m.y_m:.4f},{m.yaw_rad:.6f}"
        return values

    def _publish_status(self, force: bool = False) -> None:
        now = self._now_s()
        if not force and now - self._last_status_s < 1.0 / self.status_rate_hz:
            return
        self._last_status_s = now
        values = self.status_values()
        msg = DiagnosticStatus()
        msg.name = "navigator"
        msg.hardware_id = self.get_namespace()
        state = values["state"]
        msg.level = LEVELS.get(state, DiagnosticStatus.OK)
        msg.message = {
            "idle": "idle",
            "planning": f"planning to {values['goal']}",
            "driving": f"driving to {values['goal']} ({values['distance_remaining_m']} m left)",
            "reached": f"reached {values['goal']}",
            "failed": f"failed: {values['reason']}",
            "cancelled": "cancelled",
        }.get(state, state)
        msg.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        if self.context.ok():
            self.status_pub.publish(msg)

    # -- web -------------------------------------------------------------------------------
    def web_features(self) -> list[Any]:
        from passeur.navigation.web import PlacesFeature

        return [PlacesFeature(default_world=self.world, node=self)]

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._controller.reset()
            if self._state in ("planning", "driving"):
                self._set_state("cancelled", "navigator shutting down", "shutdown")
        self._plan_queue.put(None)
        try:
            self._publish_zero()
        except Exception:  # noqa: BLE001 - context may already be shut down
            pass
        self._worker.join(timeout=2.0)

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def pose_to_msg(x: float, y: float, yaw: float, frame: str = "map") -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position.x = x
    msg.pose.position.y = y
    qx, qy, qz, qw = yaw_to_quaternion(yaw)
    msg.pose.orientation.x, msg.pose.orientation.y = qx, qy
    msg.pose.orientation.z, msg.pose.orientation.w = qz, qw
    return msg
