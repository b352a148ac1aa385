"""What the pages are told about the robot: where it is on the map, and status as codes.

Pure helpers (no rclpy) for the telepresence node.

Where: odometry drifts and starts wherever the robot was switched on, so the map pose comes
from the navigator, which publishes the odom frame's pose in the map as `odom_in_map`
("x,y,yaw") in navigation/status, on events and while driving, not at the odometry rate. The
node keeps the last one and applies it to every new odometry: map_pose = offset * odom_pose.
A navigator that gives only its map pose (`pose`) is paired with the latest odometry instead
(`odom_in_map()` below). Without a navigator the pose is odometry's, reported with frame
"odom" so that pages do not draw it on the map as if it were.

Status as codes: pages translate (French and English). The navigator sends `reason_code`;
for a navigator that does not, and for the patrol runner, which describes failures in
English sentences, `nav_reason_code` maps each known sentence to a short code (and "other"
for anything new: the page then says so in its own language).
"""

from __future__ import annotations

import math
import re

from passeur.ros.geometry import Pose2D

MAP, ODOM = "map", "odom"


def parse_pose(text: str) -> Pose2D | None:
    """The navigator's "x,y,yaw" (metres, metres, radians), or None if malformed."""
    parts = text.split(",")
    if len(parts) != 3:
        return None
    try:
        x, y, yaw = (float(v) for v in parts)
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in (x, y, yaw)):
        return None
    return Pose2D(x, y, yaw)


def odom_in_map(robot_in_map: Pose2D, robot_in_odom: Pose2D) -> Pose2D:
    """The odom frame's pose in the map (map -> odom), from one simultaneous pair."""
    return robot_in_map.compose(robot_in_odom.inverse())


def robot_in_map(offset: Pose2D | None, robot_in_odom: Pose2D) -> tuple[Pose2D, str]:
    """(pose, frame): the map pose when the offset is known, else odometry's (frame odom)."""
    if offset is None:
        return robot_in_odom, ODOM
    return offset.compose(robot_in_odom), MAP


#: (pattern, code) in order: the first that matches wins. Sentences of navigator_node.py,
#: planner.py and controller.py (navigation area).
_NAV_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.I), code) for p, code in (
        (r"emergency stop|e-stop", "estop"),
        (r"the pilot drove", "pilot_drove"),
        (r"the pilot pressed stop", "pilot_stop"),
        (r"no robot pose", "no_pose"),
        (r"unknown place", "unknown_place"),
        (r"goal frame", "bad_frame"),
        (r"^goal_point ", "bad_goal"),
        (r"no map received", "no_map"),
        (r"internal planning error", "internal"),
        (r"^goal \(.*\) is outside the map", "goal_outside_map"),
        (r"^goal \(.*\) is inside a keep-out zone", "goal_in_keep_out"),
        (r"^goal \(.*\) is too close", "goal_too_close"),
        (r"^goal \(.*\) cannot be reached|no path found", "unreachable"),
        (r"^goal \(.*\) is ", "goal_in_obstacle"),
        (r"the robot .*outside the map|inside an obstacle|boxed in", "start_blocked"),
        (r"path blocked", "blocked"),
        (r"^stuck", "stuck"),
        (r"replaced by a new goal", "replaced"),
        (r"cancelled on request|^navigation cancelled$", "cancelled"),
        (r"the navigator did not answer", "no_answer"),
        (r"shutting down", "shutdown"),
    ))


def nav_reason_code(reason: str) -> str:
    """A short code for a navigation reason sentence ("" for none, "other" if unknown)."""
    text = reason.strip()
    if not text:
        return ""
    for pattern, code in _NAV_REASONS:
        if pattern.search(text):
            return code
    return "other"


_PATROL_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.I), code) for p, code in (
        (r"stopped by staff", "stopped_by_staff"),
        (r"the stack stopped", "shutdown"),
        (r"waypoint\(s\) skipped", "skipped"),
        (r"^retrying ", "retrying"),
        (r"^waypoint \d+ .* failed", "waypoint_failed"),
        (r"^interrupted", "interrupted"),
    ))


def patrol_reason_codes(reason: str) -> tuple[str, str]:
    """(patrol code, navigation code of the cause if any) for a patrol reason sentence:
    "retrying desk (path blocked: ...)" -> ("retrying", "blocked")."""
    text = reason.strip()
    if not text:
        return "", ""
    code = next((c for p, c in _PATROL_REASONS if p.search(text)), "other")
    cause = ""
    if code == "retrying" and "(" in text:
        inner = text[text.index("(") + 1:]
        cause = nav_reason_code(inner[:-1] if inner.endswith(")") else inner)
    elif code == "waypoint_failed" and "failed:" in text:
        cause = nav_reason_code(text.split("failed:", 1)[1])
    elif code == "interrupted" and text.startswith("interrupted:"):
        # "interrupted: cancelled on request" (someone cancelled navigation); "interrupted by
        # another goal" needs no cause: a pilot's or staff goal took the robot.
        cause = nav_reason_code(text.split(":", 1)[1])
    return code, cause
