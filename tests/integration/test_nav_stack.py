"""Navigation with the simulator in the loop (sim time, as fast as possible, camera off).

One stack per world (sim, map_server, safety, navigator, patrol), shared by the tests of that
world so that goals are chained in one run. Every wait has a deadline; while waiting, the
robot's ground-truth pose is sampled: it must never be inside a keep-out zone, and MuJoCo must
report no contact between the robot and the scenery.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticStatus
from std_msgs.msg import Empty, String

from passeur.navigation.costmap import point_in_polygon
from passeur.navigation.navigator_node import pose_to_msg
from passeur.navigation.patrols import patrols_path
from passeur.navigation.places import load_places, places_path
from passeur.ros import qos
from passeur.ros.geometry import normalize_angle
from tests.support.ros_harness import StackHarness

XY_TOL_M = 0.15
YAW_TOL_RAD = 0.2
#: Library: the activity room's only doorway (x 4.0-5.2 on y = 5.0) can be closed with boxes.
BLOCKED_ROUTE = {
    "id": "blocked_test",
    "name": {"fr": "Test bloqué", "en": "Blocked test"},
    "on_failure": {"policy": "retry_then_skip", "retries": 1},
    "waypoints": [{"place": "kiosk", "dwell_s": 0}, {"place": "activity_room", "dwell_s": 0},
                  {"place": "entrance", "dwell_s": 0}],
}


class NavStack:
    def __init__(self, h: StackHarness, world: str, history_db: Path) -> None:
        self.h = h
        self.world = world
        self.history_db = history_db
        self.sim = h.node("sim")
        self.nav = h.node("navigator")
        self.places = load_places(places_path(world), world)
        self.keep_out = [z.polygon for z in self.places.keep_out]
        self.keep_out_violations: list[tuple[float, float]] = []
        self.track: list[tuple[float, float]] = []
        self.contact_start = 0
        h.subscribe("navigation/status", DiagnosticStatus, keep_history=True)
        h.subscribe("patrol/status", DiagnosticStatus, qos.LATCHED, keep_history=True)
        h.subscribe("speech/say", String, keep_history=True)
        h.wait_until(lambda: self.nav.costmap is not None and self.nav.pose() is not None, 60,
                     "map and odometry at the navigator")
        self.contact_start = self.sim.robot_contact_steps()

    def sample(self) -> None:
        p = self.sim.ground_truth_pose()
        self.track.append((p.x_m, p.y_m))
        if any(point_in_polygon(p.x_m, p.y_m, poly) for poly in self.keep_out):
            self.keep_out_violations.append((p.x_m, p.y_m))

    def wait(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        def check() -> bool:
            self.sample()
            return predicate()

        self.h.wait_until(check, timeout_s, what)

    def goal_id(self) -> int:
        return int(self.nav.status_values()["goal_id"] or 0)

    def wait_nav_done(self, goal_label: str, after_id: int, timeout_s: float = 240.0
                      ) -> dict[str, str]:
        """Wait for the end of the first goal newer than `after_id` (reads state and goal
        from one snapshot, so an older goal's result is never mistaken for this one's)."""
        result: dict[str, str] = {}

        def done() -> bool:
            values = self.nav.status_values()
            if int(values["goal_id"] or 0) > after_id and values["state"] in (
                    "reached", "failed", "cancelled"):
                result.update(values)
                return True
            return False

        self.wait(done, timeout_s, f"navigation to {goal_label} to end")
        assert result["goal"] == goal_label, result
        return result

    def go(self, place: str, timeout_s: float = 240.0) -> dict[str, str]:
        before = self.goal_id()
        self.h.publish("goal_place", String(data=place))
        return self.wait_nav_done(place, before, timeout_s)

    def contacts(self) -> int:
        return int(self.sim.robot_contact_steps() - self.contact_start)

    def wait_patrol(self, predicate: Callable[[dict[str, str]], bool], timeout_s: float,
                    what: str) -> dict[str, str]:
        def values() -> dict[str, str]:
            msg = self.h.latest("patrol/status")
            return {kv.key: kv.value for kv in msg.values} if msg is not None else {}

        self.wait(lambda: predicate(values()), timeout_s, what)
        return values()


@pytest.fixture(scope="module", params=["library", "chateau"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[NavStack]:
    import rclpy
    from rclpy.context import Context

    world = str(request.param)
    tmp = tmp_path_factory.mktemp(f"nav-{world}")
    routes = yaml.safe_load(patrols_path(world).read_text(encoding="utf-8"))
    if world == "library":
        routes["routes"].append(BLOCKED_ROUTE)
    patrols_file = tmp / "patrols.yaml"
    patrols_file.write_text(yaml.safe_dump(routes, allow_unicode=True), encoding="utf-8")
    history_db = tmp / "history.sqlite3"
    context = Context()
    rclpy.init(context=context)
    try:
        with StackHarness(
            context, nodes=["sim", "map_server", "safety", "navigator", "patrol"],
            common={"world": world},
            per_node={
                "sim": {"real_time_factor": 0.0, "camera_rate_hz": 0.0},
                "navigator": {"blocked_timeout_s": 4.0},
                "patrol": {"patrols_file": str(patrols_file), "history_db": str(history_db),
                           "retry_pause_s": 1.0, "schedule_enabled": False},
            },
        ) as h:
            yield NavStack(h, world, history_db)
    finally:
        rclpy.try_shutdown(context=context)


def test_reaches_every_place(stack: NavStack) -> None:
    report = []
    for place in stack.places.places.values():
        said_before = len(stack.h.history("speech/say"))
        values = stack.go(place.id)
        if place.description:  # said on arrival, French then English
            expected = [{"text": place.description[lang], "lang": lang} for lang in ("fr", "en")]
            n = said_before + 2
            stack.h.wait_until(lambda n=n: len(stack.h.history("speech/say")) >= n,
                               5.0, f"the description of {place.id} on speech/say")
            said = [json.loads(m.data) for _t, m in stack.h.history("speech/say")[said_before:]]
            assert said == expected, place.id
        gt = stack.sim.ground_truth_pose()
        err_xy = math.hypot(gt.x_m - place.x_m, gt.y_m - place.y_m)
        err_yaw = abs(normalize_angle(gt.yaw_rad - place.yaw_rad))
        report.append((place.id, values["state"], round(err_xy, 3), round(err_yaw, 3)))
        assert values["state"] == "reached", (place.id, values)
        assert err_xy < XY_TOL_M, report
        assert err_yaw < YAW_TOL_RAD, report
    assert stack.contacts() == 0, report
    assert not stack.keep_out_violations, stack.keep_out_violations[:5]


def test_goal_in_a_wall_fails_fast_with_reason(stack: NavStack) -> None:
    wall = {"library": (6.0, 2.5), "chateau": (6.0, 5.0)}[stack.world]  # interior walls
    before = stack.goal_id()
    t0 = time.monotonic()
    stack.h.publish("goal_pose", pose_to_msg(*wall, 0.0))
    values = stack.wait_nav_done(f"{wall[0]:.2f},{wall[1]:.2f}", before, timeout_s=10.0)
    assert time.monotonic() - t0 < 2.0
    assert values["state"] == "failed"
    assert "wall" in values["reason"] or "obstacle" in values["reason"], values
    assert values["reason_code"] in ("goal_in_obstacle", "goal_too_close"), values


def test_cancel_stops_the_robot(stack: NavStack) -> None:
    far = {"library": "reading_corner", "chateau": "cabinet"}[stack.world]
    pose, target = stack.nav.pose(), stack.places.place(far)
    if math.hypot(pose.x_m - target.x_m, pose.y_m - target.y_m) < 3.0:
        far = "entrance"
    stack.h.publish("goal_place", String(data=far))
    stack.wait(lambda: stack.nav.state == "driving"
               and abs(stack.sim.ground_truth_twist().vx_mps) > 0.2, 60, "driving")
    stack.h.publish("navigation/cancel", Empty())
    stack.wait(lambda: stack.nav.state == "cancelled", 10, "cancelled")
    t_cancel = stack.h.sim_time_s()
    stack.wait(lambda: stack.h.sim_time_s() - t_cancel > 1.5, 30, "1.5 s of sim time")
    tw = stack.sim.ground_truth_twist()
    assert abs(tw.vx_mps) < 0.02 and abs(tw.wz_radps) < 0.05
    before = stack.sim.ground_truth_pose()
    stack.wait(lambda: stack.h.sim_time_s() - t_cancel > 3.0, 30, "3 s of sim time")
    assert stack.sim.ground_truth_pose().distance_to(before) < 0.01


def test_obstacle_dropped_on_the_path_is_avoided(stack: NavStack) -> None:
    start, goal = {"library": ("entrance", "press_corner"),
                   "chateau": ("gallery_west", "gallery_east")}[stack.world]
    assert stack.go(start)["state"] == "reached"
    before = stack.goal_id()
    stack.h.publish("goal_place", String(data=goal))
    stack.wait(lambda: stack.nav.state == "driving", 30, "driving")
    # When the robot is a little way along, drop a box on the path 1.5 m ahead of it.
    stack.wait(lambda: stack.nav._controller.index > 10, 60, "some progress")
    with stack.nav._lock:
        plan = stack.nav._controller.path.copy()
        index = stack.nav._controller.index
    seg = [math.hypot(*(plan[i + 1] - plan[i])) for i in range(index, len(plan) - 1)]
    travelled, k = 0.0, index
    while k < len(plan) - 1 and travelled < 1.5:
        travelled += seg[k - index]
        k += 1
    box = (float(plan[k][0]), float(plan[k][1]))
    stack.sim.place_obstacle(0, *box)
    stack.track.clear()
    try:
        values = stack.wait_nav_done(goal, before)
        assert values["state"] == "reached", values
        gt = stack.sim.ground_truth_pose()
        target = stack.places.place(goal)
        assert math.hypot(gt.x_m - target.x_m, gt.y_m - target.y_m) < XY_TOL_M
        assert stack.contacts() == 0
    finally:
        stack.sim.park_obstacle(0)
    # The robot went round the 0.4 m box (0.2 m half width + 0.225 m robot radius).
    closest = min(math.hypot(x - box[0], y - box[1]) for x, y in stack.track)
    assert closest > 0.42, closest


def history(stack: NavStack, run_id: int | None = None) -> list[tuple[Any, ...]]:
    """Visits of all runs; with run_id, first wait until that run's end is written (the patrol
    node writes on a thread of its own, in order: the end comes last)."""
    if run_id is not None:
        def ended() -> bool:
            with sqlite3.connect(stack.history_db) as db:
                row = db.execute("SELECT ended_at FROM runs WHERE id = ?", (run_id,)).fetchone()
            return row is not None and row[0] is not None

        stack.h.wait_until(ended, 10.0, f"patrol run {run_id} written to the history")
    with sqlite3.connect(stack.history_db) as db:
        return db.execute("SELECT r.id, r.route, r.outcome, v.place, v.outcome, v.attempts "
                          "FROM runs r JOIN visits v ON v.run_id = r.id ORDER BY v.id").fetchall()


@pytest.mark.parametrize("route_id", ["opening_check", "closing_round"])
def test_shipped_patrol_completes_and_is_recorded(stack: NavStack, route_id: str) -> None:
    patrol = stack.h.node("patrol")
    spec = patrol.patrols.route(route_id)
    said_before = len(stack.h.history("speech/say"))
    stack.h.publish("patrol/command", String(data=json.dumps({"action": "start",
                                                              "route": route_id})))
    stack.wait_patrol(lambda v: v.get("route") == route_id and v.get("state") == "navigating",
                      20, f"patrol {route_id} to start")
    values = stack.wait_patrol(lambda v: v.get("route") == route_id and v.get("state") == "finished",
                               900, f"patrol {route_id} to finish")
    assert values["outcome"] == "completed", values
    run_id = int(values["run_id"])
    rows = [r for r in history(stack, run_id) if r[1] == route_id and r[0] == run_id]
    assert [r[3] for r in rows] == [w.place for w in spec.waypoints]
    assert all(r[4] == "reached" for r in rows)
    said = [json.loads(m.data) for _t, m in stack.h.history("speech/say")[said_before:]]
    expected = [{"text": w.announce[lang], "lang": lang} for w in spec.waypoints
                for lang in ("fr", "en") if w.announce]
    assert said == expected
    assert stack.contacts() == 0
    assert not stack.keep_out_violations


def test_blocked_waypoint_is_retried_then_skipped(stack: NavStack) -> None:
    if stack.world != "library":
        pytest.skip("the blocked-doorway scenario is set in the library")
    # Close the activity room's doorway (x 4.0-5.2 at y 5.0) with three boxes.
    for i, x in enumerate((4.2, 4.6, 5.0)):
        stack.sim.place_obstacle(i, x, 5.0)
    try:
        stack.h.publish("patrol/command", String(data=json.dumps({"action": "start",
                                                                  "route": "blocked_test"})))
        values = stack.wait_patrol(lambda v: v.get("route") == "blocked_test"
                                   and v.get("state") == "finished", 600, "blocked patrol")
    finally:
        for i in range(3):
            stack.sim.park_obstacle(i)
    assert values["outcome"] == "completed_with_skips", values
    rows = [r for r in history(stack, int(values["run_id"])) if r[0] == int(values["run_id"])]
    assert [(r[3], r[4]) for r in rows] == [("kiosk", "reached"), ("activity_room", "skipped"),
                                            ("entrance", "reached")]
    assert rows[1][5] == 2  # tried twice (1 retry), then skipped
    assert stack.contacts() == 0


def test_pilot_goal_preempts_a_patrol(stack: NavStack) -> None:
    """A goal from someone else (a pilot) replaces the patrol's: the patrol stops and records
    why; it does not retry and drive the robot back."""
    if stack.world != "library":
        pytest.skip("one world is enough for pre-emption")
    pose, first = stack.nav.pose(), stack.places.place("loan_desk")
    pilot_target = "kiosk"
    assert math.hypot(pose.x_m - first.x_m, pose.y_m - first.y_m) > 0.5, "start elsewhere"
    stack.h.publish("patrol/command", String(data=json.dumps({"action": "start",
                                                              "route": "opening_check"})))
    stack.wait(lambda: stack.nav.state == "driving"
               and stack.nav.status_values()["place"] == "loan_desk", 60, "patrol driving")
    before = stack.goal_id()
    stack.h.publish("goal_place", String(data=pilot_target))
    values = stack.wait_patrol(lambda v: v.get("route") == "opening_check"
                               and v.get("state") == "finished", 30, "patrol to give way")
    assert values["outcome"] == "stopped" and values["reason"] == "interrupted by another goal"
    result = stack.wait_nav_done(pilot_target, before)
    assert result["state"] == "reached", result
    t0 = stack.h.sim_time_s()
    stack.wait(lambda: stack.h.sim_time_s() - t0 > 3.0, 30, "3 s of sim time")
    assert stack.nav.status_values()["goal"] == pilot_target  # no patrol goal came back
    rows = history(stack, int(values["run_id"]))
    assert [(r[3], r[4]) for r in rows if r[0] == int(values["run_id"])] == [
        ("loan_desk", "interrupted")]
    with sqlite3.connect(stack.history_db) as db:
        outcome, reason = db.execute("SELECT outcome, reason FROM runs WHERE id = ?",
                                     (int(values["run_id"]),)).fetchone()
    assert (outcome, reason) == ("stopped", "interrupted by another goal")


def test_estop_ends_the_goal_and_its_release_does_not_restart_the_robot(
        stack: NavStack) -> None:
    """Releasing an e-stop must not set the robot moving by itself (IEC 60204-1, ISO 13850):
    the goal under way is cancelled (code estop), a goal sent while the e-stop is on is too,
    and after the release the robot stays where it stopped until someone sends a goal."""
    if stack.world != "library":
        pytest.skip("one world is enough for the e-stop")
    from std_msgs.msg import Bool

    target = "kiosk"
    place = stack.places.place(target)
    pose = stack.nav.pose()
    if math.hypot(pose.x_m - place.x_m, pose.y_m - place.y_m) < 3.0:
        target = "study_tables"
    before = stack.goal_id()
    stack.h.publish("goal_place", String(data=target))
    stack.wait(lambda: stack.nav.state == "driving"
               and abs(stack.sim.ground_truth_twist().vx_mps) > 0.2, 60, "driving")
    stack.h.publish("estop", Bool(data=True), qos.LATCHED)
    values = stack.wait_nav_done(target, before)
    assert values["state"] == "cancelled" and values["reason_code"] == "estop", values
    stack.wait(lambda: abs(stack.sim.ground_truth_twist().vx_mps) < 0.02, 30, "at rest")
    # A goal sent while the e-stop is on is ended too (it would start on the release).
    before = stack.goal_id()
    stack.h.publish("goal_place", String(data=target))
    values = stack.wait_nav_done(target, before)
    assert values["state"] == "cancelled" and values["reason_code"] == "estop", values
    stopped_at = stack.nav.pose()
    stack.h.publish("estop", Bool(data=False), qos.LATCHED)
    t0 = stack.h.sim_time_s()
    stack.wait(lambda: stack.h.sim_time_s() - t0 > 3.0, 60, "3 s of sim time after release")
    pose = stack.nav.pose()
    assert math.hypot(pose.x_m - stopped_at.x_m, pose.y_m - stopped_at.y_m) < 0.05
    assert abs(stack.sim.ground_truth_twist().vx_mps) < 0.02
    assert stack.nav.state == "cancelled"
    # Sent again after the release, the goal is reached.
    before = stack.goal_id()
    stack.h.publish("goal_place", String(data=target))
    values = stack.wait_nav_done(target, before)
    assert values["state"] == "reached", values
    # A patrol under way ends at the e-stop (no retry that would drive off on the release).
    stack.h.publish("patrol/command", String(data=json.dumps({"action": "start",
                                                              "route": "opening_check"})))
    stack.wait(lambda: stack.nav.state == "driving"
               and abs(stack.sim.ground_truth_twist().vx_mps) > 0.2, 60, "patrol driving")
    stack.h.publish("estop", Bool(data=True), qos.LATCHED)
    patrol = stack.wait_patrol(lambda v: v.get("state") == "finished", 30, "patrol to end")
    assert patrol["outcome"] == "stopped" and "emergency stop" in patrol["reason"], patrol
    stack.wait(lambda: abs(stack.sim.ground_truth_twist().vx_mps) < 0.02, 30, "at rest")
    stopped_at = stack.nav.pose()
    stack.h.publish("estop", Bool(data=False), qos.LATCHED)
    t0 = stack.h.sim_time_s()
    stack.wait(lambda: stack.h.sim_time_s() - t0 > 4.0, 60, "4 s of sim time after release")
    pose = stack.nav.pose()
    assert math.hypot(pose.x_m - stopped_at.x_m, pose.y_m - stopped_at.y_m) < 0.05
