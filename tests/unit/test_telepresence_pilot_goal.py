"""The pilot's navigation goal, followed by its request_id (pilot_goal.py, no rclpy)."""

from __future__ import annotations

from passeur.telepresence.pilot_goal import SENT, PilotGoal, new_request_id


def status(goal_id: int, state: str, request_id: str = "", reason_code: str = "") -> dict[str, str]:
    return {"goal_id": str(goal_id), "state": state, "request_id": request_id,
            "reason_code": reason_code, "reason": ""}


def test_only_its_own_statuses_move_it() -> None:
    goal = PilotGoal(new_request_id())
    assert goal.state == SENT and goal.live and goal.request_id.startswith("pilot-")
    # Someone else's goal, before ours shows up: not ours, whatever its state.
    assert not goal.on_status(status(1, "reached", "staff-1"))
    assert goal.state == SENT and goal.live
    assert goal.on_status(status(2, "planning", goal.request_id))
    assert not goal.on_status(status(2, "planning", goal.request_id))  # a repeat
    assert goal.on_status(status(2, "reached", goal.request_id))
    assert not goal.live
    # A later goal of someone else's changes nothing about a goal that is over.
    assert not goal.on_status(status(3, "driving", "patrol-1"))
    assert goal.as_status() == {"request_id": goal.request_id, "state": "reached",
                                "goal_id": "2", "reason_code": "", "reason": ""}


def test_a_newer_goal_under_way_means_it_was_replaced() -> None:
    goal = PilotGoal("pilot-a")
    goal.on_status(status(5, "driving", "pilot-a"))
    assert not goal.on_status(status(4, "driving", "staff-old"))  # an older one: no news
    assert goal.live
    assert goal.on_status(status(6, "planning", "staff-1"))
    assert (goal.state, goal.reason_code) == ("cancelled", "replaced") and not goal.live


def test_unseen_it_stays_live_and_idle_repeats_do_not_move_it() -> None:
    goal = PilotGoal("pilot-b")
    assert not goal.on_status(status(9, "driving", "staff-1"))  # goal id unknown: no guess
    assert goal.live
    assert not goal.on_status({"state": "idle", "goal_id": "", "request_id": "pilot-b"})
    assert goal.on_status(status(10, "failed", "pilot-b", "unreachable"))
    assert goal.as_status()["reason_code"] == "unreachable" and not goal.live
