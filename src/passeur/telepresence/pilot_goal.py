"""Which navigation goal is the pilot's: known by the request_id it was sent with.

Pure logic (no rclpy) for the telepresence node. The node sends each pilot goal with a
request_id of its own (goal_place JSON, goal_point JSON), and the navigator echoes it in
navigation/status. Guessing instead ("the first new goal after the pilot sent one") took a
staff goal or a patrol's, sent at about the same time, for the pilot's: the page announced
an arrival for a trip it did not take, and a pilot who left cancelled someone else's trip.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

#: navigation/status states in which a goal is over (navigator_node.TERMINAL; the
#: telepresence node does not import the navigation package).
NAV_TERMINAL = ("reached", "failed", "cancelled")
#: The state of a pilot goal sent but not yet seen in navigation/status.
SENT = "sent"


def new_request_id() -> str:
    return f"pilot-{uuid.uuid4().hex[:16]}"


def _goal_id(values: dict[str, Any]) -> int | None:
    try:
        return int(str(values.get("goal_id", "")))
    except ValueError:
        return None


@dataclass
class PilotGoal:
    """The pilot's latest goal and what navigation/status last said of it."""

    request_id: str
    state: str = SENT
    goal_id: int | None = None
    reason_code: str = ""
    reason: str = ""

    @property
    def live(self) -> bool:
        """Sent and not known to be over: the navigator may be driving to it (or soon)."""
        return self.state not in NAV_TERMINAL

    def on_status(self, values: dict[str, Any]) -> bool:
        """Take one navigation/status (its key/values); True when it changed this goal."""
        state = str(values.get("state", ""))
        goal_id = _goal_id(values)
        if str(values.get("request_id", "")) == self.request_id:
            if not state or state == "idle":
                return False
            before = (self.state, self.goal_id, self.reason_code)
            self.state, self.goal_id = state, goal_id
            self.reason_code = str(values.get("reason_code", ""))
            self.reason = str(values.get("reason", ""))
            return before != (self.state, self.goal_id, self.reason_code)
        if (self.live and self.goal_id is not None and goal_id is not None
                and goal_id > self.goal_id and state in ("planning", "driving")):
            # A newer goal is under way: ours was replaced, though its own "cancelled"
            # status never came (navigation/status keeps only the latest message).
            self.state, self.reason_code, self.reason = "cancelled", "replaced", \
                "replaced by a new goal"
            return True
        return False

    def as_status(self) -> dict[str, Any]:
        """For the pages: `request_id` is the one the goto's ack gave the pilot page."""
        return {"request_id": self.request_id, "state": self.state,
                "goal_id": "" if self.goal_id is None else str(self.goal_id),
                "reason_code": self.reason_code, "reason": self.reason}
