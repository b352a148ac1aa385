"""Patrol runner + SQLite history: completion, retry-then-skip, abort, stop, schedule."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from passeur.navigation.patrol_runner import CancelNavigation, GoTo, PatrolRunner, Say
from passeur.navigation.patrol_store import PatrolStore
from passeur.navigation.patrols import Route, Waypoint


def route(policy: str = "retry_then_skip", retries: int = 2, repeat: int = 1) -> Route:
    return Route(id="closing", names={"fr": "Fermeture", "en": "Closing"}, waypoints=(
        Waypoint("hall", 1.0, {"fr": "Nous fermons.", "en": "We are closing."}),
        Waypoint("desk", 0.0),
        Waypoint("stacks", 2.0),
    ), repeat=repeat, policy=policy, retries=retries, daily_at="17:45")



def run_script(runner: PatrolRunner, r: Route, outcomes: dict[str, list[str]]) -> list:
    t = 0.0
    log: list = []
    pending = runner.start(r, t)
    while runner.active and t < 1000:
        log.extend(pending)
        pending = []
        goto = [e for e in log if isinstance(e, GoTo)]
        if runner.state == "navigating":
            place = goto[-1].place
            script = outcomes.get(place, [])
            result = script.pop(0) if script else "reached"
            pending = runner.on_nav_result(result, "blocked" if result == "failed" else "", t)
        elif runner.state == "announcing":
            pending = runner.on_speech_done(t)
        t += 0.5
        pending += runner.tick(t)
    log.extend(pending)
    return log


def test_full_route_completes_and_is_recorded(tmp_path: Path) -> None:
    store = PatrolStore(tmp_path / "h.sqlite3")
    runner = PatrolRunner("library", store)
    log = run_script(runner, route(), {})
    assert [e.place for e in log if isinstance(e, GoTo)] == ["hall", "desk", "stacks"]
    assert [e for e in log if isinstance(e, Say)] == [Say("Nous fermons.", "fr"),
                                                       Say("We are closing.", "en")]
    assert runner.outcome == "completed"
    (run,) = store.runs()
    assert run.outcome == "completed" and run.ended_at is not None
    assert [(v.place, v.outcome) for v in run.visits] == [
        ("hall", "reached"), ("desk", "reached"), ("stacks", "reached")]


def test_blocked_waypoint_is_retried_then_skipped(tmp_path: Path) -> None:
    store = PatrolStore(tmp_path / "h.sqlite3")
    runner = PatrolRunner("library", store, retry_pause_s=1.0)
    log = run_script(runner, route(retries=2), {"desk": ["failed", "failed", "failed"]})
    gotos = [e.place for e in log if isinstance(e, GoTo)]
    assert gotos == ["hall", "desk", "desk", "desk", "stacks"]
    assert runner.outcome == "completed_with_skips"
    (run,) = store.runs()
    desk = [v for v in run.visits if v.place == "desk"]
    assert len(desk) == 1 and desk[0].outcome == "skipped" and desk[0].attempts == 3
    assert desk[0].reason == "blocked"


def test_retry_succeeds_second_time(tmp_path: Path) -> None:
    runner = PatrolRunner("library", PatrolStore(tmp_path / "h.sqlite3"))
    run_script(runner, route(), {"desk": ["failed"]})
    assert runner.outcome == "completed"


def test_abort_policy_ends_the_run(tmp_path: Path) -> None:
    store = PatrolStore(tmp_path / "h.sqlite3")
    runner = PatrolRunner("library", store)
    log = run_script(runner, route(policy="abort", retries=0), {"desk": ["failed"]})
    assert [e.place for e in log if isinstance(e, GoTo)] == ["hall", "desk"]
    assert runner.outcome == "aborted"
    (run,) = store.runs()
    assert run.outcome == "aborted" and "desk" in run.reason
    assert run.visits[-1].outcome == "failed"


def test_repeat_runs_laps(tmp_path: Path) -> None:
    store = PatrolStore(tmp_path / "h.sqlite3")
    runner = PatrolRunner("library", store)
    log = run_script(runner, route(repeat=2), {})
    assert len([e for e in log if isinstance(e, GoTo)]) == 6
    runs = store.runs()
    assert {v.lap for v in runs[0].visits} == {1, 2}


def test_stop_cancels_navigation_and_records(tmp_path: Path) -> None:
    store = PatrolStore(tmp_path / "h.sqlite3")
    runner = PatrolRunner("library", store)
    assert runner.start(route(), 0.0) == [GoTo("hall")]
    assert runner.stop(1.0) == [CancelNavigation()]
    assert not runner.active
    assert store.runs()[0].outcome == "stopped"
    assert runner.stop(2.0) == []


def test_interrupted_runs_are_marked(tmp_path: Path) -> None:
    store = PatrolStore(tmp_path / "h.sqlite3")
    store.start_run("closing", "library")
    store.close()
    store = PatrolStore(tmp_path / "h.sqlite3")
    assert store.mark_interrupted() == 1
    assert store.runs()[0].outcome == "interrupted"
    reader = PatrolStore(tmp_path / "h.sqlite3", read_only=True)
    assert len(reader.runs()) == 1


def test_daily_schedule() -> None:
    from passeur.navigation.patrol_schedule import DailySchedule

    r = route()
    at = dt.datetime(2026, 11, 25, 17, 45, 20)
    assert DailySchedule().check([r], at.replace(minute=46), "", False).start is None
    schedule = DailySchedule()
    assert schedule.check([r], at, "", False).start == r
    assert schedule.check([r], at, "", False).start is None  # run today already


def test_waits_for_the_announcement_before_dwelling(tmp_path: Path) -> None:
    runner = PatrolRunner("library", PatrolStore(tmp_path / "h.sqlite3"), announce_timeout_s=30.0)
    assert runner.start(route(), 0.0) == [GoTo("hall")]
    said = runner.on_nav_result("reached", "", 1.0)
    assert said == [Say("Nous fermons.", "fr"), Say("We are closing.", "en")]
    assert runner.state == "announcing"
    assert runner.tick(20.0) == [] and runner.state == "announcing"  # still speaking
    assert runner.on_speech_done(21.0) == []  # then the 1 s dwell
    assert runner.state == "dwelling"
    assert runner.tick(22.0) == [GoTo("desk")]


def test_silent_speaker_does_not_block_the_patrol(tmp_path: Path) -> None:
    runner = PatrolRunner("library", PatrolStore(tmp_path / "h.sqlite3"), announce_timeout_s=30.0)
    runner.start(route(), 0.0)
    runner.on_nav_result("reached", "", 1.0)
    runner.tick(31.5)
    assert runner.state == "dwelling"


def test_interrupt_gives_way_without_cancelling_and_is_recorded(tmp_path: Path) -> None:
    store = PatrolStore(tmp_path / "h.sqlite3")
    runner = PatrolRunner("library", store)
    runner.start(route(), 0.0)
    assert runner.interrupt(1.0) == []  # no CancelNavigation: the other goal is not ours
    assert not runner.active and runner.outcome == "stopped"
    assert runner.reason == "interrupted by another goal"
    assert runner.tick(10.0) == []  # no retry, no goal sent again
    (run,) = store.runs()
    assert run.outcome == "stopped" and run.reason == "interrupted by another goal"
    assert [(v.place, v.outcome) for v in run.visits] == [("hall", "interrupted")]


# -- the patrol node's goal tracking (no simulator: navigator statuses are fed directly) --

def nav_status(goal_id: int, place: str, state: str, reason: str = "",
               reason_code: str = "", request_id: str = "") -> Any:
    """A navigator status; `request_id` is what the goal's sender gave (the navigator echoes
    it): pass `node.sent_requests[i]` for the patrol's own goals."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    msg = DiagnosticStatus()
    msg.values = [KeyValue(key=k, value=v) for k, v in {
        "state": state, "goal": place, "goal_id": str(goal_id), "place": place,
        "reason": reason, "reason_code": reason_code, "request_id": request_id}.items()]
    return msg


def make_patrol_node(context: Any, tmp_path: Path, **extra: Any) -> Any:
    """A PatrolNode on the test places and routes; goals it sends land in `sent_goals`."""
    import yaml
    from rclpy.parameter import Parameter

    from passeur.navigation.patrol_node import PatrolNode
    from tests.unit.test_nav_config import PLACES, ROUTES

    places = tmp_path / "test.yaml"
    places.write_text(yaml.safe_dump(PLACES), encoding="utf-8")
    routes = tmp_path / "routes.yaml"
    routes.write_text(yaml.safe_dump(ROUTES), encoding="utf-8")
    params = {"world": "test", "places_file": str(places), "patrols_file": str(routes),
              "history_db": str(tmp_path / "history.sqlite3"), "schedule_enabled": False,
              "retry_pause_s": 0.0, **extra}
    node = PatrolNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in params.items()])
    sent: list[str] = []
    requests: list[str] = []

    def record(msg: Any) -> None:
        goal = json.loads(msg.data)
        sent.append(goal["place"])
        requests.append(goal["request_id"])

    node.goal_pub.publish = record  # type: ignore[method-assign]
    node.sent_goals = sent
    node.sent_requests = requests
    return node


@pytest.fixture
def patrol_node(ros_context: Any, tmp_path: Path) -> Iterator[Any]:
    node = make_patrol_node(ros_context, tmp_path)
    try:
        yield node
    finally:
        node.destroy_node()


def test_goal_replaced_by_a_pilot_stops_the_patrol(patrol_node: Any) -> None:
    node = patrol_node
    node._on_nav_status(nav_status(4, "desk", "reached"))  # an older goal
    node.start_route("closing", "test")
    assert node.sent_goals == ["hall"]
    ours = node.sent_requests[0]
    node._on_nav_status(nav_status(5, "hall", "planning", request_id=ours))
    node._on_nav_status(nav_status(5, "hall", "driving", request_id=ours))
    # A pilot sends the robot elsewhere: the navigator cancels the patrol's goal 5.
    node._on_nav_status(nav_status(5, "hall", "cancelled", "replaced by a new goal",
                                   "replaced", request_id=ours))
    node._on_nav_status(nav_status(6, "desk", "planning"))
    node._tick()
    status = node.status_dict()
    assert status["state"] == "finished" and status["outcome"] == "stopped"
    assert status["reason"] == "interrupted by another goal"
    assert node.sent_goals == ["hall"], "the patrol must not drive the robot back"
    (run,) = node.history_json(5, None)
    assert run["outcome"] == "stopped" and run["reason"] == "interrupted by another goal"


def test_results_of_other_goals_to_the_same_place_are_not_the_patrols(patrol_node: Any) -> None:
    node = patrol_node
    node._on_nav_status(nav_status(7, "hall", "driving"))  # someone's goal to hall
    node.start_route("closing", "test")
    # The progress and end of that older goal are not the patrol's...
    node._on_nav_status(nav_status(7, "hall", "driving"))
    node._on_nav_status(nav_status(7, "hall", "reached"))
    assert node.runner.state == "navigating"
    # ...the patrol's own goal (its request id, echoed by the navigator) is.
    ours = node.sent_requests[0]
    node._on_nav_status(nav_status(8, "hall", "planning", request_id=ours))
    node._on_nav_status(nav_status(8, "hall", "failed", "path blocked", request_id=ours))
    assert node.runner.state == "waiting_retry" and node.runner.attempt == 1


@pytest.mark.parametrize("state", ["reached", "failed"])
def test_an_old_latched_status_is_not_taken_for_the_patrols_goal(patrol_node: Any,
                                                                 state: str) -> None:
    """navigation/status is latched: a patrol started before the navigator's status reached
    the patrol node (both just started, or the patrol started from the CLI at once) took the
    older goal it then heard about, to the same first place, for its own: it announced and
    skipped ahead to the next waypoint without ever driving there ("reached"), or recorded a
    failure it did not have ("failed")."""
    node = patrol_node
    node.start_route("closing", "test")  # nothing heard from the navigator yet
    # The navigator's latched status arrives: a staff goal to hall that ended earlier...
    node._on_nav_status(nav_status(4, "hall", state, "path blocked" if state == "failed" else ""))
    # ...and is repeated while the navigator has not yet taken up the patrol's goal.
    node._on_nav_status(nav_status(4, "hall", state, "path blocked" if state == "failed" else ""))
    assert node.runner.state == "navigating" and node.runner.attempt == 0, node.status_dict()
    assert node.runner.index == 0 and node.sent_goals == ["hall"]
    node._on_nav_status(nav_status(5, "hall", "planning", request_id=node.sent_requests[0]))
    node._on_nav_status(nav_status(5, "hall", "reached", request_id=node.sent_requests[0]))
    assert node.runner.state == "announcing" and node.runner.index == 0
    node.runner.on_speech_done(node._now_s())
    node.runner._until_s = 0.0
    node._tick()
    assert node.sent_goals == ["hall", "desk"]
    (run,) = node.history_json(5, None)
    assert [(v["place"], v["outcome"]) for v in run["visits"]] == [("hall", "reached")]


def test_a_latched_status_arriving_after_the_start_is_not_the_patrols(ros_context: Any,
                                                                       tmp_path: Path) -> None:
    """The same over ROS: the navigator's latched status about an older goal to hall reaches
    the patrol node only after the patrol has started and sent its goal to hall."""
    import time

    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from passeur.ros import qos

    navigator = Node("navigator", context=ros_context)
    pub = navigator.create_publisher(DiagnosticStatus, "navigation/status", qos.LATCHED)
    pub.publish(nav_status(4, "hall", "reached"))
    node = make_patrol_node(ros_context, tmp_path)
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        node.start_route("closing", "test")  # before any callback has run
        executor.add_node(node)
        deadline = time.monotonic() + 5.0
        while node._latest_nav_goal_id != 4 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert node._latest_nav_goal_id == 4, "the latched status never arrived"
        assert node.runner.state == "navigating" and node.runner.index == 0
        assert node.sent_goals == ["hall"]
    finally:
        executor.shutdown()
        node.destroy_node()
        navigator.destroy_node()


@pytest.mark.parametrize("data", ["{not json", "[1, 2]", "[" * 3000 + "]" * 3000,
                                  '{"a": ' * 3000 + "1" + "}" * 3000])
def test_malformed_commands_are_refused_not_raised(patrol_node: Any, data: str) -> None:
    """Deeply nested JSON (RecursionError in json.loads) is refused like any malformed
    command: the refusal is on patrol/status, nothing escapes the callback."""
    from std_msgs.msg import String

    patrol_node._on_command(String(data=data))
    status = patrol_node.status_dict()
    assert "patrol/command must be JSON" in status["last_error"]
    assert not patrol_node.runner.active and patrol_node.sent_goals == []


def test_another_goal_while_dwelling_stops_the_patrol(patrol_node: Any) -> None:
    node = patrol_node
    node.start_route("closing", "test")
    ours = node.sent_requests[0]
    node._on_nav_status(nav_status(1, "hall", "planning", request_id=ours))
    node._on_nav_status(nav_status(1, "hall", "reached", request_id=ours))
    node.runner.on_speech_done(node._now_s())  # announcement done: dwelling 2 s
    assert node.runner.state == "dwelling"
    node._on_nav_status(nav_status(2, "", "planning"))  # a pilot's click on the map
    assert node.runner.state == "finished" and node.runner.reason == "interrupted by another goal"
    assert node.sent_goals == ["hall"]


def test_history_writer_records_in_order_off_the_caller(tmp_path: Path) -> None:
    """The node records through HistoryWriter: callbacks queue, a thread writes."""
    import threading

    from passeur.navigation.patrol_store import HistoryWriter

    store = PatrolStore(tmp_path / "h.sqlite3")
    writer = HistoryWriter(store)
    runner = PatrolRunner("library", writer)
    gate = threading.Event()
    writer._put(gate.wait)  # hold the writer: nothing below may wait for SQLite
    log = run_script(runner, route(), {"desk": ["failed"]})
    assert runner.outcome == "completed" and len([e for e in log if isinstance(e, GoTo)]) == 4
    assert runner.run_id is None  # not written yet, and the patrol did not wait for it
    gate.set()
    assert writer.flush(5.0)
    (run,) = store.runs()
    assert runner.run_id == run.id and run.outcome == "completed"
    assert [(v.place, v.outcome) for v in run.visits] == [
        ("hall", "reached"), ("desk", "reached"), ("stacks", "reached")]
    writer.close()
    writer.close()


def test_goal_resends_are_a_parameter(ros_context: Any, tmp_path: Path) -> None:
    import time

    node = make_patrol_node(ros_context, tmp_path, goal_accept_timeout_s=0.5, goal_max_resends=1,
                            retry_pause_s=60.0)
    try:
        node.start_route("closing", "test")  # no navigator answers
        deadline = time.monotonic() + 5.0
        while node.runner.attempt == 0 and time.monotonic() < deadline:
            node._tick()
            time.sleep(0.02)
        # One resend (not the former fixed three), then the waypoint counted as failed.
        assert node.sent_goals == ["hall", "hall"]
        assert node.runner.attempt == 1 and "did not answer" in node.runner.reason
    finally:
        node.destroy_node()


def test_a_resent_goal_taken_up_late_is_not_another_goal(ros_context: Any,
                                                         tmp_path: Path) -> None:
    """The navigator, busy (starting up, loading its map), took the patrol's goals up only
    after the patrol had given up on them and was waiting to retry: the patrol took its own
    goals for someone else's and stopped, "interrupted by another goal", while the robot
    drove to the place anyway."""
    node = make_patrol_node(ros_context, tmp_path, goal_accept_timeout_s=0.5,
                            goal_max_resends=1, retry_pause_s=60.0)
    try:
        node.start_route("closing", "test")
        node._pending_sent_s -= 1.0
        node._tick()  # resent
        node._pending_sent_s -= 1.0
        node._tick()  # given up: waiting to retry
        assert node.runner.state == "waiting_retry" and len(node.sent_requests) == 2
        first, second = node.sent_requests
        node._on_nav_status(nav_status(1, "hall", "planning", request_id=first))
        node._on_nav_status(nav_status(1, "hall", "cancelled", "replaced by a new goal",
                                       "replaced", request_id=first))
        node._on_nav_status(nav_status(2, "hall", "planning", request_id=second))
        assert node.runner.state == "waiting_retry", node.status_dict()
        node._on_nav_status(nav_status(3, "desk", "planning"))  # then someone else's goal
        assert node.runner.state == "finished"
        assert node.runner.reason == "interrupted by another goal"
    finally:
        node.destroy_node()


def test_a_goal_ended_by_the_estop_reads_as_the_patrols_estop(patrol_node: Any) -> None:
    """Whichever came first, the navigator cancelling the patrol's goal for the e-stop or the
    patrol's own estop/state, the run's reason is the patrol's: the history and `passeur patrol
    status` said "send the goal again once it is released" (the navigator's advice for a goal)
    when the navigator's message won, and staff restart a patrol, not a goal."""
    from passeur.navigation.navigator_node import ESTOP_REASON as NAV_ESTOP_REASON
    from passeur.navigation.patrol_node import ESTOP_REASON

    node = patrol_node
    node.start_route("closing", "test")
    ours = node.sent_requests[0]
    node._on_nav_status(nav_status(1, "hall", "planning", request_id=ours))
    node._on_nav_status(nav_status(1, "hall", "cancelled", NAV_ESTOP_REASON, "estop",
                                   request_id=ours))
    status = node.status_dict()
    assert status["state"] == "finished" and status["reason"] == ESTOP_REASON, status
    (run,) = node.history_json(5, None)
    assert run["reason"] == ESTOP_REASON
    assert [(v["place"], v["outcome"], v["reason"]) for v in run["visits"]] == [
        ("hall", "interrupted", ESTOP_REASON)]


def test_a_world_without_places_or_routes_says_what_to_do(ros_context: Any,
                                                          tmp_path: Path) -> None:
    """`passeur robot --world my_museum` (a building of one's own, map_file set) stopped
    with only 'config/places/my_museum.yaml: places file not found'."""
    from rclpy.parameter import Parameter

    from passeur.navigation.exceptions import NavConfigFileNotFoundError
    from passeur.navigation.patrol_node import PatrolNode

    with pytest.raises(NavConfigFileNotFoundError) as info:
        PatrolNode(context=ros_context, parameter_overrides=[
            Parameter("world", value="my_museum"),
            Parameter("history_db", value=str(tmp_path / "h.sqlite3"))])
    message = str(info.value)
    assert message.startswith(f"{info.value.path}: places file not found: the patrol node "
                              "needs the world's places and patrol routes")
    assert "config/places/my_museum.yaml and config/patrols/my_museum.yaml" in message
    assert "leave the patrol node out (--nodes / nodes:=)" in message


@pytest.mark.parametrize("phase", ["dwelling", "waiting_retry"])
def test_estop_between_waypoints_ends_the_patrol(patrol_node: Any, phase: str) -> None:
    """An e-stop pressed while the patrol dwells (or waits to retry) and released before the
    dwell ends must not let the patrol send its next goal: the robot would drive off by itself
    after the release (IEC 60204-1, ISO 13850)."""
    from std_msgs.msg import Bool

    from passeur.telepresence.robot_status import patrol_reason_codes

    node = patrol_node
    node.start_route("closing", "test")
    ours = node.sent_requests[0]
    node._on_nav_status(nav_status(1, "hall", "planning", request_id=ours))
    if phase == "dwelling":
        node._on_nav_status(nav_status(1, "hall", "reached", request_id=ours))
        node.runner.on_speech_done(node._now_s())
    else:
        node._on_nav_status(nav_status(1, "hall", "failed", "path blocked", "blocked",
                                       request_id=ours))
        node.runner.retry_pause_s = 60.0
        node.runner._until_s = node._now_s() + 60.0
    assert node.runner.state == phase
    estop = [s for s in node.subscriptions if s.topic_name.endswith("/estop/state")]
    for data in (True, False):  # as the safety node's latched estop/state says it
        for sub in estop:
            sub.callback(Bool(data=data))
    node.runner._until_s = 0.0  # the dwell / retry pause is over
    node._tick()
    status = node.status_dict()
    assert status["state"] == "finished" and status["outcome"] == "stopped", status
    assert patrol_reason_codes(status["reason"]) == ("interrupted", "estop")
    assert node.sent_goals == ["hall"], "the patrol drove off after the e-stop's release"


# -- the e-stop and the daily schedule ------------------------------------------------------

def test_a_scheduled_route_due_during_the_estop_waits_for_staff() -> None:
    """A closing round that fell due during the e-stop was started, interrupted a few ms later
    and marked as run for the day: it never happened after the release. It now waits (not
    marked as run) and, since a release must never set the robot moving by itself, waits for
    staff to start it by hand; once started, the schedule does not start it again."""
    from passeur.navigation.patrol_schedule import ESTOP, DailySchedule

    r = route()
    schedule = DailySchedule()
    due = dt.datetime(2026, 11, 25, 17, 45, 3)
    step = schedule.check([r], due, ESTOP, False)
    assert step.start is None and step.now_waiting == [r]
    assert schedule.waiting_routes() == ["closing"] and "closing" not in schedule.last_run_day
    later = due + dt.timedelta(minutes=40)
    assert schedule.check([r], later, ESTOP, False).start is None  # still on
    step = schedule.check([r], later + dt.timedelta(seconds=5), "", False)  # released
    assert step.start is None and schedule.waiting_routes() == ["closing"]
    assert schedule.waiting_for_staff()
    schedule.started("closing", later.date())  # staff start it by hand
    assert schedule.waiting_routes() == [] and not schedule.waiting_for_staff()
    assert schedule.last_run_day["closing"] == due.date()
    assert schedule.check([r], later + dt.timedelta(seconds=10), "", False).start is None


def test_a_scheduled_route_due_during_a_pilot_session_starts_when_it_ends() -> None:
    from passeur.navigation.patrol_schedule import PILOT_SESSION, DailySchedule

    r = route()
    schedule = DailySchedule()
    due = dt.datetime(2026, 11, 25, 17, 45, 3)
    assert schedule.check([r], due, PILOT_SESSION, False).start is None
    assert not schedule.waiting_for_staff()
    step = schedule.check([r], due + dt.timedelta(minutes=5), "", False)
    assert step.start == r and schedule.waiting_routes() == []
    assert schedule.last_run_day["closing"] == due.date()
    # Started once: the rest of the day's checks start nothing.
    assert schedule.check([r], due + dt.timedelta(minutes=6), "", False).start is None


def test_a_waiting_route_is_dropped_at_the_end_of_its_day() -> None:
    from passeur.navigation.patrol_schedule import ESTOP, DailySchedule

    r = route()
    schedule = DailySchedule()
    schedule.check([r], dt.datetime(2026, 11, 25, 17, 45), ESTOP, False)
    step = schedule.check([r], dt.datetime(2026, 11, 26, 0, 0, 2), "", False)
    assert step.start is None and step.expired == [r] and schedule.waiting_routes() == []


def test_due_while_a_patrol_runs_is_skipped_but_a_waiting_route_waits_for_it() -> None:
    from passeur.navigation.patrol_schedule import PILOT_SESSION, DailySchedule

    r = route()
    schedule = DailySchedule()
    at = dt.datetime(2026, 11, 25, 17, 45)
    step = schedule.check([r], at, "", True)
    assert step.skipped == [r] and schedule.last_run_day["closing"] == at.date()
    schedule = DailySchedule()
    schedule.check([r], at, PILOT_SESSION, False)
    assert schedule.check([r], at.replace(minute=50), "", True).start is None
    assert schedule.check([r], at.replace(minute=55), "", False).start == r


def test_what_blocks_a_scheduled_route() -> None:
    from passeur.navigation.patrol_schedule import ESTOP, PILOT_SESSION, blocker

    assert blocker(True, False) == ESTOP
    assert blocker(True, True) == ESTOP
    assert blocker(False, False) == ""
    assert blocker(None, False) == ""
    assert blocker(False, True) == PILOT_SESSION


def _freeze_patrol_clock(monkeypatch: pytest.MonkeyPatch, at: dt.datetime) -> list[dt.datetime]:
    """The patrol node's wall clock (its daily schedule) reads now[0]; the list is returned
    so that a test can move the time."""
    import types

    import passeur.navigation.patrol_node as patrol_node_module

    now = [at]

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return now[0]

    monkeypatch.setattr(patrol_node_module, "dt", types.SimpleNamespace(datetime=Clock))
    return now


def _estop(node: Any, on: bool) -> None:
    from std_msgs.msg import Bool

    for sub in [s for s in node.subscriptions if s.topic_name.endswith("/estop/state")]:
        sub.callback(Bool(data=on))


def test_a_manual_start_during_the_estop_is_refused(patrol_node: Any) -> None:
    """`passeur patrol start` and the staff page said "navigating" during the e-stop, and the
    run was interrupted a few ms later: the start is now refused, with the code estop."""
    from passeur.navigation.commands import refusal_text
    from passeur.navigation.exceptions import PatrolRefusedError

    node = patrol_node
    _estop(node, True)
    with pytest.raises(PatrolRefusedError) as info:
        node.start_route("closing", "test")
    assert info.value.code == "estop" and "release the emergency stop first" in str(info.value)
    assert node.sent_goals == [] and node.history_json(5, None) == []
    from std_msgs.msg import String
    node._on_command(String(data=json.dumps({"action": "start", "route": "closing",
                                             "request_id": "r1"})))
    status = {k: str(v) for k, v in node.status_dict().items()}
    assert status["state"] == "idle" and status["last_error_code"] == "estop"
    text = refusal_text(status)
    assert "release the emergency stop first" in text and "relâchez d'abord" in text
    _estop(node, False)
    node.start_route("closing", "test")
    assert node.sent_goals == ["hall"]


def test_the_node_holds_a_scheduled_route_during_the_estop(patrol_node: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    now = _freeze_patrol_clock(monkeypatch, dt.datetime(2026, 11, 25, 17, 45, 2))
    node = patrol_node
    _estop(node, True)
    node._check_schedule()
    status = node.status_dict()
    assert status["state"] == "idle" and node.sent_goals == []
    assert status["waiting_routes"] == "closing" and status["waiting_for"] == "estop"
    now[0] = now[0].replace(minute=58)
    node._check_schedule()
    assert node.sent_goals == []
    _estop(node, False)
    node._check_schedule()  # the release alone never sets the robot moving
    status = node.status_dict()
    assert status["state"] == "idle" and node.sent_goals == []
    assert status["waiting_routes"] == "closing" and status["waiting_for"] == "staff"
    node.start_route("closing", "staff")
    status = node.status_dict()
    assert status["state"] == "navigating" and node.sent_goals == ["hall"]
    assert status["waiting_routes"] == ""
    node.stop_patrol()
    node._check_schedule()  # the day's round was run by hand: not started again
    assert node.sent_goals == ["hall"] and not node.runner.active


def test_a_scheduled_route_waits_for_the_pilots_session_to_end(
        patrol_node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduled patrol started while a visitor was piloting (connected, no key pressed)
    and drove the robot away from them. It now waits for the session's end; staff starting a
    route by hand still starts it (they decide)."""
    from std_msgs.msg import Bool

    from passeur.ros import qos

    now = _freeze_patrol_clock(monkeypatch, dt.datetime(2026, 11, 25, 17, 45, 1))
    node = patrol_node
    # The telepresence node's latched topic (a publisher must exist: without one, a session
    # left latched by a telepresence node that died is not waited for).
    node.create_publisher(Bool, "telepresence/pilot_session", qos.LATCHED)
    sessions = [s for s in node.subscriptions
                if s.topic_name.endswith("/telepresence/pilot_session")]
    assert sessions, "the patrol node does not listen to telepresence/pilot_session"
    for sub in sessions:
        sub.callback(Bool(data=True))
    node._check_schedule()
    status = node.status_dict()
    assert status["state"] == "idle" and node.sent_goals == []
    assert status["waiting_routes"] == "closing" and status["waiting_for"] == "pilot_session"
    # Staff decide: a start by hand during the session starts.
    node.start_route("closing", "web")
    assert node.sent_goals == ["hall"]
    node.stop_patrol()
    now[0] = now[0].replace(hour=18)
    for sub in sessions:
        sub.callback(Bool(data=False))  # the session ended
    node._check_schedule()
    # The start by hand was the day's run: the schedule does not run the route again.
    assert node.sent_goals == ["hall"] and not node.runner.active
    assert node.status_dict()["waiting_routes"] == ""


def test_a_round_started_by_hand_earlier_in_the_day_still_runs_at_its_time(
        patrol_node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staff who tried the closing round in the morning (it was not waiting) lost that
    evening's scheduled round: any start by hand was taken for the day's run. Only a start
    of a route that waited (e-stop, pilot session) is."""
    from passeur.navigation.patrol_schedule import DailySchedule

    now = _freeze_patrol_clock(monkeypatch, dt.datetime(2026, 11, 25, 9, 0, 2))
    node = patrol_node
    node.start_route("closing", "staff")
    node.stop_patrol()
    now[0] = now[0].replace(hour=17, minute=45)
    node._check_schedule()
    assert node.sent_goals == ["hall", "hall"] and node.runner.active, \
        "the scheduled closing round did not run after a start by hand in the morning"
    schedule = DailySchedule()
    schedule.started("closing", now[0].date())
    assert schedule.check([route()], now[0], "", False).start is not None


def test_an_estop_between_two_schedule_checks_still_holds_a_waiting_route(
        patrol_node: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduled route waiting for a pilot's session: the pilot left during an e-stop that
    was pressed and released between two schedule checks (5 s apart). The next check saw
    nothing blocking and started the route, seconds after the release: a release setting the
    robot moving by itself. The e-stop now holds it for staff, however short."""
    from std_msgs.msg import Bool

    from passeur.ros import qos

    now = _freeze_patrol_clock(monkeypatch, dt.datetime(2026, 11, 25, 17, 45, 1))
    node = patrol_node
    node.create_publisher(Bool, "telepresence/pilot_session", qos.LATCHED)
    sessions = [s for s in node.subscriptions
                if s.topic_name.endswith("/telepresence/pilot_session")]
    for sub in sessions:
        sub.callback(Bool(data=True))
    node._check_schedule()
    assert node.status_dict()["waiting_for"] == "pilot_session"
    _estop(node, True)
    for sub in sessions:
        sub.callback(Bool(data=False))
    _estop(node, False)
    now[0] = now[0].replace(second=5)
    node._check_schedule()
    assert node.sent_goals == [], "the route started seconds after the e-stop's release"
    assert node.status_dict()["waiting_for"] == "staff"
    now[0] = now[0].replace(second=10)
    node._check_schedule()
    assert node.sent_goals == []
    node.start_route("closing", "staff")
    assert node.sent_goals == ["hall"]


def test_a_route_held_since_an_estop_says_it_waits_for_staff_while_another_runs(
        ros_context: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closing round held since an e-stop read 'waiting for the current patrol to end'
    while staff ran another route by hand, yet that end would not start it: only staff do."""
    import copy

    import yaml

    from tests.unit.test_nav_config import ROUTES

    routes = copy.deepcopy(ROUTES)
    other = copy.deepcopy(routes["routes"][0])
    other.update({"id": "tour", "name": {"fr": "Tour", "en": "Tour"}})
    other.pop("schedule")
    routes["routes"].append(other)
    routes_file = tmp_path / "two_routes.yaml"
    routes_file.write_text(yaml.safe_dump(routes), encoding="utf-8")
    now = _freeze_patrol_clock(monkeypatch, dt.datetime(2026, 11, 25, 17, 45, 2))
    node = make_patrol_node(ros_context, tmp_path, patrols_file=str(routes_file))
    try:
        _estop(node, True)
        node._check_schedule()
        _estop(node, False)
        now[0] = now[0].replace(second=7)
        node._check_schedule()
        assert node.status_dict()["waiting_for"] == "staff"
        node.start_route("tour", "staff")
        status = node.status_dict()
        assert status["waiting_routes"] == "closing" and status["waiting_for"] == "staff", \
            status["waiting_for"]
        node.stop_patrol()
        now[0] = now[0].replace(minute=50)
        node._check_schedule()
        assert node.sent_goals == ["hall"], "the held round started when the other one ended"
    finally:
        node.destroy_node()
