"""NavigatorNode without a simulator: pose sources and goal rejection reasons."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from geometry_msgs.msg import PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter

from passeur.navigation.navigator_node import NavigatorNode, parse_goal_point, pose_to_msg
from passeur.ros.geometry import yaw_to_quaternion


def odom(x: float, y: float, yaw: float) -> Odometry:
    msg = Odometry()
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    q = yaw_to_quaternion(yaw)
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = q
    return msg


@pytest.fixture
def make_node(ros_context: Any) -> Iterator[Any]:
    nodes: list[NavigatorNode] = []

    def make(**params: Any) -> NavigatorNode:
        node = NavigatorNode(context=ros_context, parameter_overrides=[
            Parameter(k, value=v) for k, v in {"world": "library", **params}.items()])
        nodes.append(node)
        return node

    yield make
    for n in nodes:
        n.destroy_node()


def test_odom_pose_with_origin(make_node: Any) -> None:
    nav = make_node(odom_origin=[10.0, 2.0, math.pi / 2])
    nav._on_odom(odom(1.0, 0.0, 0.0))
    pose = nav.pose()
    assert (pose.x_m, pose.y_m) == pytest.approx((10.0, 3.0))
    assert pose.yaw_rad == pytest.approx(math.pi / 2)


def test_the_simulators_odom_origin_applies_unless_the_navigator_has_its_own(
        make_node: Any) -> None:
    """The simulator's latched sim/odom_origin (map pose of the odom frame) places the robot
    when the navigator's own odom_origin is unset; a value set by hand (a parameter file)
    wins, and nothing is subscribed then."""
    from geometry_msgs.msg import PoseStamped

    def follows(node: Any) -> bool:
        return any(sub.topic_name == "/sim/odom_origin" for sub in node.subscriptions)

    nav = make_node()
    assert not nav.odom_origin_given and follows(nav)
    nav._on_odom(odom(1.0, 0.0, 0.0))
    assert (nav.pose().x_m, nav.pose().y_m) == pytest.approx((1.0, 0.0))
    origin = PoseStamped(pose=pose_to_msg(10.0, 2.0, math.pi / 2).pose)
    origin.header.frame_id = "odom"
    nav._on_odom_origin(origin)  # not a map pose: refused
    assert (nav.pose().x_m, nav.pose().y_m) == pytest.approx((1.0, 0.0))
    origin.header.frame_id = "map"
    nav._on_odom_origin(origin)
    assert (nav.pose().x_m, nav.pose().y_m) == pytest.approx((10.0, 3.0))
    assert nav.status_values()["odom_in_map"] == "10.0000,2.0000,1.570796"
    own = make_node(odom_origin=[1.0, 2.0, 0.0])
    assert own.odom_origin_given and not follows(own)
    assert not follows(make_node(pose_source="amcl"))  # a localiser says where odom is


def test_amcl_pose_corrects_odometry_drift(make_node: Any) -> None:
    nav = make_node(pose_source="amcl")
    nav._on_odom(odom(1.0, 0.0, 0.0))
    loc = PoseWithCovarianceStamped()
    loc.header.frame_id = "map"
    loc.pose.pose = pose_to_msg(5.0, 5.0, math.pi / 2).pose
    nav._on_amcl(loc)
    assert (nav.pose().x_m, nav.pose().y_m) == pytest.approx((5.0, 5.0))
    nav._on_odom(odom(2.0, 0.0, 0.0))  # odometry says 1 m forward
    pose = nav.pose()
    assert (pose.x_m, pose.y_m) == pytest.approx((5.0, 6.0))  # forward is +y in the map


def test_idle_status_is_repeated_for_late_listeners(make_node: Any) -> None:
    """The staff desk said "odometry only: no navigator, not on the map" and neither page drew
    the robot on the map until someone sent a goal: the navigator's only idle status went out
    at start-up, before the web server listened (navigation/status is volatile)."""
    from passeur.navigation.navigator_node import IDLE_STATUS_PERIOD_S

    nav = make_node()
    sent: list[Any] = []
    nav.status_pub.publish = sent.append
    nav._last_status_s = nav._now_s() - IDLE_STATUS_PERIOD_S - 1.0
    nav._tick()
    assert len(sent) == 1
    values = {kv.key: kv.value for kv in sent[0].values}
    assert values["state"] == "idle" and values["odom_in_map"]
    nav._tick()
    assert len(sent) == 1, "not at the control rate: every IDLE_STATUS_PERIOD_S"


def test_a_late_subscriber_gets_the_current_status_at_once(make_node: Any, ros_context: Any,
                                                           tmp_path: Path) -> None:
    """navigation/status was volatile: a page's server, `ros2 topic echo` or the patrol node
    starting after the last event heard nothing until the navigator's next idle repeat (2 s).
    It is latched now, and volatile subscribers (default QoS, best effort) still match."""
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from passeur.navigation.navigator_node import IDLE_STATUS_PERIOD_S
    from passeur.ros import qos
    from tests.unit.test_nav_patrol import make_patrol_node

    nav = make_node()  # never spun: nothing is repeated, only what DDS keeps is delivered
    nav.send_place("cellar")  # goal 1, failed at once
    late = Node("late_listener", context=ros_context)
    patrol = make_patrol_node(ros_context, tmp_path)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        got: list[dict[str, str]] = []
        late.create_subscription(DiagnosticStatus, "navigation/status",
                                 lambda m: got.append({kv.key: kv.value for kv in m.values}),
                                 qos.LATCHED_EVENTS)
        for profile in (qos.STATUS, QoSProfile(depth=10,
                                               reliability=ReliabilityPolicy.BEST_EFFORT)):
            late.create_subscription(DiagnosticStatus, "navigation/status", lambda _m: None,
                                     profile)
        executor.add_node(late)
        executor.add_node(patrol)
        deadline = time.monotonic() + IDLE_STATUS_PERIOD_S * 0.75
        while time.monotonic() < deadline and not (got and patrol._latest_nav_goal_id == 1):
            executor.spin_once(timeout_sec=0.02)
        assert got, "the late subscriber heard nothing"
        assert len(got) == 1, "only the current status is kept (depth 1)"
        assert (got[0]["state"], got[0]["goal_id"]) == ("failed", "1")
        assert patrol._latest_nav_goal_id == 1, "the patrol node subscribes latched too"
        # Every subscriber kind matched: the latched one, the patrol node's, default QoS,
        # best effort.
        assert nav.status_pub.get_subscription_count() == 4
    finally:
        executor.shutdown()
        patrol.destroy_node()
        late.destroy_node()


def test_unknown_place_and_bad_frame_fail_with_reasons(make_node: Any) -> None:
    nav = make_node()
    nav.send_place("cellar")
    values = nav.status_values()
    assert values["state"] == "failed"
    assert "unknown place 'cellar'" in values["reason"] and "entrance" in values["reason"]
    assert values["reason_code"] == "unknown_place"
    msg = pose_to_msg(1.0, 1.0, 0.0, frame="odom")
    nav._on_goal_pose(msg)
    values = nav.status_values()
    assert values["state"] == "failed" and "frame 'odom'" in values["reason"]
    assert values["reason_code"] == "bad_frame"


def _status_log(nav: Any) -> tuple[list[Any], Callable[[], list[dict[str, str]]]]:
    """The navigator's status messages as published (cleared by the test as it goes), and a
    function reading them as key -> value dicts."""
    sent: list[Any] = []
    nav.status_pub.publish = sent.append

    def statuses() -> list[dict[str, str]]:
        return [{kv.key: kv.value for kv in m.values} for m in sent]

    return sent, statuses


def test_goal_place_request_id_is_echoed_in_the_status(make_node: Any) -> None:
    """A sender's request_id (goal_place JSON) comes back with its goal's status, so the
    patrol tells its own goal from an older one to the same place; a bare place id still
    works, and a malformed JSON goal fails saying what goal_place takes."""
    from std_msgs.msg import String

    nav = make_node()
    sent, statuses = _status_log(nav)

    nav._on_goal_place(String(data='{"place": "cellar", "request_id": "patrol-1"}'))
    assert [(v["state"], v["goal_id"], v["request_id"]) for v in statuses()] == [
        ("planning", "1", "patrol-1"), ("failed", "1", "patrol-1")]
    assert statuses()[-1]["place"] == "cellar" and statuses()[-1]["reason_code"] == "unknown_place"
    sent.clear()
    nav._on_goal_place(String(data=" cellar "))
    assert [(v["state"], v["place"], v["request_id"]) for v in statuses()] == [
        ("planning", "cellar", ""), ("failed", "cellar", "")]
    for bad in ('{"place": 3}', '{"place": "hall"', '{"request_id": "r"}'):
        sent.clear()
        nav._on_goal_place(String(data=bad))
        values = statuses()[-1]
        assert values["state"] == "failed" and values["reason_code"] == "unknown_place"
        assert 'JSON {"place": "<place id>", "request_id": "<text>"}' in values["reason"]
    sent.clear()
    nav._on_goal_place(String(data=json.dumps({"place": "cellar", "request_id": "x" * 500})))
    assert statuses()[-1]["request_id"] == "x" * 64, "bounded"


def test_goal_point_request_id_is_echoed_in_the_status(make_node: Any) -> None:
    """Click-to-go had no way to carry a request_id (goal_pose is a bare PoseStamped): the
    pilot's point goal could not be told from a staff goal sent at about the same time.
    goal_point (JSON, frame map) carries one and the status echoes it; goal_pose still
    works; a malformed goal_point fails saying what it takes."""
    from std_msgs.msg import String

    nav = make_node()
    sent, statuses = _status_log(nav)

    nav._on_goal_point(String(data='{"x": 1.5, "y": -2, "yaw": null, "request_id": "pilot-1"}'))
    assert statuses()[0]["state"] == "planning" and statuses()[0]["request_id"] == "pilot-1"
    assert statuses()[0]["goal"] == "1.50,-2.00" and statuses()[0]["place"] == ""
    assert all(v["request_id"] == "pilot-1" for v in statuses())
    sent.clear()
    nav._on_goal_pose(pose_to_msg(1.0, 1.0, 0.0))
    assert statuses()[0]["state"] == "planning" and statuses()[0]["request_id"] == ""
    for bad in ('{"x": 1}', '{"x": "1", "y": 2}', '{"x": 1, "y": 2, "yaw": true}',
                '[1, 2]', 'nope', '{"x": 1, "y": 2, "request_id": 5}'):
        sent.clear()
        nav._on_goal_point(String(data=bad))
        values = statuses()[-1]
        assert values["state"] == "failed" and values["reason_code"] == "bad_goal", bad
        assert '"request_id": "<text>"} in frame map' in values["reason"]
    assert parse_goal_point('{"x": 1, "y": 2, "yaw": 0.5}') == (1.0, 2.0, 0.5, "")
    with pytest.raises(ValueError, match="finite"):
        parse_goal_point('{"x": 1e999, "y": 2}')


def test_bad_pose_source_is_a_config_error(make_node: Any) -> None:
    from passeur.errors import ConfigError

    with pytest.raises(ConfigError, match="pose_source"):
        make_node(pose_source="gps")


def test_malformed_default_places_file_stops_the_start_up(
        make_node: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in config/places/<world>.yaml must not silently drop keep-out zones."""
    from passeur.navigation import navigator_node
    from passeur.navigation.exceptions import NavConfigError

    bad = tmp_path / "library.yaml"
    bad.write_text("world: library\nplaces:\n  - id: entrance\n    nmae: {fr: a, en: b}\n",
                   encoding="utf-8")
    monkeypatch.setattr(navigator_node, "places_path", lambda world: bad)
    with pytest.raises(NavConfigError) as info:
        make_node()
    assert info.value.path == bad
    assert "unknown key(s) ['nmae']" in str(info.value) and str(bad) in str(info.value)


def test_missing_default_places_file_runs_without_places(
        make_node: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from passeur.navigation import navigator_node

    monkeypatch.setattr(navigator_node, "places_path", lambda world: tmp_path / "none.yaml")
    nav = make_node()
    assert nav.places is None
    nav.send_place("entrance")
    assert "unknown place 'entrance'" in nav.status_values()["reason"]


def said_on_arrival(nav: NavigatorNode, place: str, patrol_state: str = "") -> list[dict[str, str]]:
    """Reach a goal_place (the controller's "reached" path) and return what was said."""
    import json

    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    from passeur.navigation.navigator_node import Goal

    said: list[dict[str, str]] = []
    nav.say_pub.publish = lambda msg: said.append(json.loads(msg.data))  # type: ignore[method-assign]
    if patrol_state:
        status = DiagnosticStatus()
        status.values = [KeyValue(key="state", value=patrol_state)]
        nav._on_patrol_status(status)
    p = nav.places.places[place]
    goal = Goal(1, p.x_m, p.y_m, p.yaw_rad, place, place)
    nav._goal, nav._state = goal, "driving"
    nav._reached(goal)
    assert nav.state == "reached"
    return said


def test_place_description_is_said_on_arrival(make_node: Any) -> None:
    nav = make_node()
    desc = nav.places.places["entrance"].description
    assert said_on_arrival(nav, "entrance") == [{"text": desc["fr"], "lang": "fr"},
                                                {"text": desc["en"], "lang": "en"}]
    assert said_on_arrival(nav, "kiosk") == []  # no description


def test_place_descriptions_quiet_when_off_or_during_a_patrol(make_node: Any) -> None:
    nav = make_node(announce_place_descriptions=False)
    assert said_on_arrival(nav, "entrance") == []
    nav = make_node(announce_languages=["en"])
    assert [m["lang"] for m in said_on_arrival(nav, "entrance")] == ["en"]
    assert said_on_arrival(nav, "entrance", patrol_state="navigating") == []
    assert len(said_on_arrival(nav, "entrance", patrol_state="finished")) == 1


def test_bad_announce_language_is_a_config_error(make_node: Any) -> None:
    from passeur.errors import ConfigError

    with pytest.raises(ConfigError, match="announce_languages"):
        make_node(announce_languages=["de"])


def test_goal_with_a_rotated_map_fails_with_the_reason(make_node: Any) -> None:
    from nav_msgs.msg import OccupancyGrid

    from passeur.ros.geometry import yaw_to_quaternion

    nav = make_node()
    msg = OccupancyGrid()
    msg.info.resolution, msg.info.width, msg.info.height = 0.05, 40, 40
    q = yaw_to_quaternion(0.5)
    o = msg.info.origin.orientation
    o.x, o.y, o.z, o.w = q
    msg.data = [0] * 1600
    nav._on_map(msg)
    assert nav.costmap is None
    nav._on_odom(odom(1.0, 1.0, 0.0))
    nav.send_goal(1.5, 1.0, None)
    deadline = time.monotonic() + 5.0
    while nav.state == "planning" and time.monotonic() < deadline:
        time.sleep(0.01)
    values = nav.status_values()
    assert values["state"] == "failed" and "origin yaw" in values["reason"], values


def test_map_timeout_is_a_parameter(make_node: Any) -> None:
    nav = make_node(map_timeout_s=0.3)  # no map will come
    nav._on_odom(odom(1.0, 1.0, 0.0))
    t0 = time.monotonic()
    nav.send_goal(2.0, 1.0, None)
    while nav.state == "planning" and time.monotonic() - t0 < 3.0:
        time.sleep(0.01)
    assert nav.state == "failed" and "no map received" in nav.status_values()["reason"]
    assert time.monotonic() - t0 < 2.0  # the former fixed wait was 5 s


def stamped_odom(stamp_s: float) -> Odometry:
    msg = odom(1.0, 2.0, 0.0)
    msg.header.stamp.sec = int(stamp_s)
    msg.header.stamp.nanosec = int(round((stamp_s % 1.0) * 1e9))
    return msg


def test_scan_pose_lag_is_a_parameter(make_node: Any) -> None:
    strict, lenient = make_node(), make_node(scan_max_pose_lag_s=0.5)
    for nav in (strict, lenient):
        nav._on_odom(stamped_odom(10.0))
    assert strict._pose_at(10.3) is None  # default 0.1 s: cannot place this scan
    pose = lenient._pose_at(10.3)
    assert pose is not None and (pose.x_m, pose.y_m) == pytest.approx((1.0, 2.0))


def test_goal_sent_during_estop_ends_at_once(make_node: Any) -> None:
    """A goal sent while the e-stop is on is ended at once, not when its plan is ready: an
    e-stop released while it plans (here: the map is late) must not let it drive off."""
    from std_msgs.msg import Bool

    nav = make_node(map_timeout_s=5.0)  # no map yet: the goal would wait in 'planning'
    nav._on_odom(odom(1.0, 1.0, 0.0))
    nav._on_estop(Bool(data=True))
    nav.send_goal(2.0, 1.0, None)
    nav._on_estop(Bool(data=False))
    values = nav.status_values()
    assert values["state"] == "cancelled" and values["reason_code"] == "estop", values


def free_map(size_m: float = 10.0, resolution_m: float = 0.05) -> Any:
    from nav_msgs.msg import OccupancyGrid

    msg = OccupancyGrid()
    cells = int(round(size_m / resolution_m))
    msg.info.resolution, msg.info.width, msg.info.height = resolution_m, cells, cells
    msg.info.origin.orientation.w = 1.0
    msg.data = [0] * (cells * cells)
    return msg


def origin_msg(x: float, y: float, yaw: float) -> Any:
    from geometry_msgs.msg import PoseStamped

    msg = PoseStamped(pose=pose_to_msg(x, y, yaw).pose)
    msg.header.frame_id = "map"
    return msg


def wait_for(predicate: Any, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(predicate())


def test_a_late_odom_origin_replans_the_goal_under_way(make_node: Any) -> None:
    """With the simulator in its own process, a goal sent before sim/odom_origin arrived kept
    the plan made from the wrong start (the odom pose taken as the map pose): the robot
    followed a path that began metres away from where it was. The navigator now stops and
    plans again from the corrected pose when the map -> odom origin changes under a goal."""
    from geometry_msgs.msg import Twist

    nav = make_node()
    nav._on_map(free_map())
    nav._on_odom(odom(1.0, 1.0, 0.0))  # origin still unknown: the map pose says (1, 1)
    zeros: list[Twist] = []
    nav.cmd_pub.publish = lambda msg: zeros.append(msg)  # type: ignore[method-assign]
    gid = nav.send_goal(8.0, 8.0, None)
    assert wait_for(lambda: nav.state == "driving"), nav.status_values()
    first = nav._plan
    assert first is not None and first.points[0] == pytest.approx((1.0, 1.0), abs=0.1)
    zeros.clear()
    nav._on_odom_origin(origin_msg(3.0, 2.0, 0.0))  # the robot is at (4, 3) in fact
    assert (nav.pose().x_m, nav.pose().y_m) == pytest.approx((4.0, 3.0))
    assert zeros and zeros[0].linear.x == 0.0 and zeros[0].angular.z == 0.0, "stops first"
    assert wait_for(lambda: nav.state == "driving" and nav._plan is not first), \
        nav.status_values()
    values = nav.status_values()
    assert values["goal_id"] == str(gid), "the same goal, not a new one"
    assert nav._plan.points[0] == pytest.approx((4.0, 3.0), abs=0.1)
    assert nav._controller.path[0] == pytest.approx((4.0, 3.0), abs=0.1)


@pytest.mark.parametrize("first_plan", ["made", "failed"])
def test_an_odom_origin_arriving_while_planning_is_not_lost(make_node: Any,
                                                           first_plan: str) -> None:
    """The origin arrives while the first plan is being computed (from the old pose, such as
    the map's corner inside a wall): that plan, or its failure, is dropped, and the goal
    drives on a plan from the corrected pose."""
    from passeur.navigation.exceptions import PlanningError

    nav = make_node()
    nav._on_map(free_map())
    nav._on_odom(odom(1.0, 1.0, 0.0))
    plan = nav._planner.plan
    starts: list[tuple[float, float]] = []

    def plan_then_origin(costmap: Any, start_xy: tuple[float, float],
                         goal_xy: tuple[float, float]) -> Any:
        starts.append(start_xy)
        result = plan(costmap, start_xy, goal_xy)
        if len(starts) == 1:
            nav._on_odom_origin(origin_msg(3.0, 2.0, 0.0))
            if first_plan == "failed":
                raise PlanningError("start_blocked", "the robot (1.00, 1.00) is in a wall")
        return result

    nav._planner.plan = plan_then_origin  # type: ignore[method-assign]
    nav.send_goal(8.0, 8.0, None)
    assert wait_for(lambda: len(starts) == 2 and nav.state == "driving"), (
        starts, nav.status_values())
    assert starts[1] == pytest.approx((4.0, 3.0))
    assert nav._plan is not None and nav._plan.points[0] == pytest.approx((4.0, 3.0), abs=0.1)
    assert nav._controller.path[0] == pytest.approx((4.0, 3.0), abs=0.1)


def test_the_same_odom_origin_again_does_not_disturb_a_goal(make_node: Any) -> None:
    """sim/odom_origin is latched: hearing the same origin again (a reconnection) changes
    nothing, and no replanning stops the robot."""
    nav = make_node()
    nav._on_map(free_map())
    nav._on_odom(odom(1.0, 1.0, 0.0))
    nav._on_odom_origin(origin_msg(3.0, 2.0, 0.0))
    nav.send_goal(8.0, 8.0, None)
    assert wait_for(lambda: nav.state == "driving")
    first = nav._plan
    nav._on_odom_origin(origin_msg(3.0, 2.0, 0.0))
    time.sleep(0.2)
    assert nav.state == "driving" and nav._plan is first
