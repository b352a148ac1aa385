"""What the pages are told: map pose from the navigator (odom origin not at the map origin),
status reasons as codes, link quality from RTCP statistics."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from passeur.ros.geometry import Pose2D
from passeur.telepresence.floor_projection import CameraIntrinsics, CameraMount, pixel_to_map
from passeur.telepresence.link_quality import classify, jitter_ms, link_stats
from passeur.telepresence.robot_status import (
    MAP,
    ODOM,
    nav_reason_code,
    odom_in_map,
    parse_pose,
    patrol_reason_codes,
    robot_in_map,
)


def close(a: Pose2D, b: Pose2D, tol: float = 1e-6) -> bool:
    return abs(a.x_m - b.x_m) < tol and abs(a.y_m - b.y_m) < tol \
        and abs(math.remainder(a.yaw_rad - b.yaw_rad, math.tau)) < tol


def test_parse_pose() -> None:
    assert parse_pose("1.50,-2.00,0.79") == Pose2D(1.5, -2.0, 0.79)
    for bad in ("", "1,2", "a,b,c", "1,2,3,4", "nan,0,0", "inf,0,0"):
        assert parse_pose(bad) is None


def test_map_pose_follows_odometry_with_a_nonzero_odom_origin() -> None:
    # The robot was switched on at map (5, 3) facing +y: odom (0, 0, 0) there. It has since
    # driven 1 m (odom x = 1); the navigator says it is at map (5, 4, pi/2).
    odom_now = Pose2D(1.0, 0.0, 0.0)
    offset = odom_in_map(Pose2D(5.0, 4.0, math.pi / 2), odom_now)
    assert close(offset, Pose2D(5.0, 3.0, math.pi / 2))
    # Later odometry (no new navigator pose) is carried into the map by the same offset.
    pose, frame = robot_in_map(offset, Pose2D(2.0, 0.5, 0.1))
    assert frame == MAP and close(pose, Pose2D(4.5, 5.0, math.pi / 2 + 0.1))
    # No navigator: odometry as is, and said so.
    pose, frame = robot_in_map(None, odom_now)
    assert frame == ODOM and pose == odom_now


def test_floor_click_lands_ahead_of_the_robot_in_the_map() -> None:
    """The bug: projecting with the odom pose sent the goal ahead of where odom *thinks* the
    robot is (here 5 m off, facing the wrong way)."""
    k = CameraIntrinsics.from_fov(640, 480, math.radians(46.8))
    mount = CameraMount((0.0, 0.0, 1.3), math.radians(20.0))
    offset = odom_in_map(Pose2D(5.0, 3.0, math.pi / 2), Pose2D(0.0, 0.0, 0.0))
    robot, _ = robot_in_map(offset, Pose2D(0.0, 0.0, 0.0))
    x, y = pixel_to_map(320, 479, k, mount, robot)
    assert abs(x - 5.0) < 0.05 and 3.5 < y < 6.0  # ahead of the robot = +y in the map


@pytest.mark.parametrize("reason, code", [
    ("", ""),
    ("no robot pose yet (is odom published?)", "no_pose"),
    ("unknown place 'nowhere' (known places: desk, exit)", "unknown_place"),
    ("goal frame 'odom' is not supported: send goals in 'map'", "bad_frame"),
    ("no map received on 'map' (is the map server running?)", "no_map"),
    ("internal planning error: boom", "internal"),
    ("goal (1.00, 2.00) is outside the map", "goal_outside_map"),
    ("goal (1.00, 2.00) is inside a keep-out zone", "goal_in_keep_out"),
    ("goal (1.00, 2.00) is too close to an obstacle", "goal_too_close"),
    ("goal (1.00, 2.00) is inside an obstacle", "goal_in_obstacle"),
    ("goal (1.00, 2.00) cannot be reached: no free path leads there", "unreachable"),
    ("no path found to the goal", "unreachable"),
    ("the robot is boxed in: no free cell within 0.5 m", "start_blocked"),
    ("the robot (1.00, 2.00) is outside the map", "start_blocked"),
    ("path blocked: no way around the obstacle", "blocked"),
    ("stuck: no progress after 3 recoveries", "stuck"),
    ("stopped by the emergency stop: send the goal again once it is released", "estop"),
    ("replaced by a new goal", "replaced"),
    ("cancelled on request", "cancelled"),
    ("a sentence nobody wrote yet", "other"),
])
def test_navigation_reasons_become_codes(reason: str, code: str) -> None:
    assert nav_reason_code(reason) == code


def test_patrol_reasons_become_codes() -> None:
    assert patrol_reason_codes("") == ("", "")
    assert patrol_reason_codes("stopped by staff") == ("stopped_by_staff", "")
    assert patrol_reason_codes("2 waypoint(s) skipped") == ("skipped", "")
    assert patrol_reason_codes("retrying desk (path blocked: no way around the obstacle)") \
        == ("retrying", "blocked")
    assert patrol_reason_codes("waypoint 2 (desk) failed: no path found to the goal") \
        == ("waypoint_failed", "unreachable")


I18N = Path(__file__).resolve().parents[2] / "src" / "passeur" / "web" / "common" / "i18n.js"


@pytest.mark.parametrize(("reason", "codes"), [
    # The patrol node's sentences when someone else's goal or a cancel takes the robot.
    ("interrupted by another goal", ("interrupted", "")),
    ("interrupted: cancelled on request", ("interrupted", "cancelled")),
    ("interrupted: navigation cancelled", ("interrupted", "cancelled")),
    ("interrupted: the pilot drove", ("interrupted", "pilot_drove")),
    ("interrupted: the pilot pressed STOP", ("interrupted", "pilot_stop")),
    ("interrupted: stopped by the emergency stop: send the goal again once it is released",
     ("interrupted", "estop")),
    ("waypoint 1 (desk) failed: the navigator did not answer (is it running?)",
     ("waypoint_failed", "no_answer")),
])
def test_staff_are_told_why_a_patrol_stopped_in_their_language(
        reason: str, codes: tuple[str, str]) -> None:
    """A pilot's "go to" stopped the closing round, and the staff desk said "stopped · for
    another reason": every sentence the patrol node writes has a code the pages translate."""
    assert patrol_reason_codes(reason) == codes
    text = I18N.read_text(encoding="utf-8")
    code, cause = codes
    assert text.count(f'"patrol.reason.{code}"') == 2, code
    if cause:
        assert text.count(f'"nav.reason.{cause}"') == 2, cause


def test_rtcp_jitter_is_in_rtp_clock_ticks() -> None:
    assert jitter_ms(900, "video") == pytest.approx(10.0)  # 90 kHz
    assert jitter_ms(480, "audio") == pytest.approx(10.0)  # 48 kHz
    report = [SimpleNamespace(type="outbound-rtp", kind="video"),
              SimpleNamespace(type="remote-inbound-rtp", kind="audio", roundTripTime=0.5,
                              fractionLost=128, packetsLost=9, jitter=48_000),
              SimpleNamespace(type="remote-inbound-rtp", kind="video", roundTripTime=0.012,
                              fractionLost=0, packetsLost=3, jitter=270)]
    stats = link_stats(report, "video")
    assert stats.rtt_ms == 12.0 and stats.jitter_ms == 3.0  # not 270_000 ms
    assert stats.loss_pct == 0.0 and stats.packets_lost == 3 and stats.quality == "good"
    assert link_stats([], "video").quality == "unknown"


@pytest.mark.parametrize("rtt, loss, jitter, word", [
    (None, None, None, "unknown"), (20.0, 0.0, 2.0, "good"), (180.0, 0.0, 2.0, "fair"),
    (20.0, 2.0, 2.0, "fair"), (20.0, 0.0, 25.0, "fair"), (350.0, 0.0, 2.0, "poor"),
    (20.0, 8.0, 2.0, "poor"), (20.0, 0.0, 80.0, "poor")])
def test_link_quality_in_words(rtt: float | None, loss: float | None, jitter: float | None,
                               word: str) -> None:
    assert classify(rtt, loss, jitter) == word
