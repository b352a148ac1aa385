"""Daily schedules of patrol routes, without ROS: which route starts now, which waits.

A route falls due at its daily time (to the minute). It starts then unless something blocks it:

- the emergency stop is on (`estop`);
- a visitor's pilot session is live (`pilot_session`): the robot is theirs until it ends (it
  expires, the visitor leaves, or staff end it from the staff page).

A blocked route is not marked as run: it waits, on the same local day (a day's closing round is
still owed; after midnight the next day's time is the one that counts). One that waited for a
pilot's session starts by itself once nothing blocks it. One that waited through an e-stop does
not: releasing an e-stop must never set the robot moving by itself (IEC 60204-1, ISO 13850), so
it waits for staff to start it by hand (`staff`), which `started` records. A route that falls due while another patrol runs is
skipped for the day (a round is not queued behind another); one already waiting keeps waiting
for that patrol to end (`patrol`).

    schedule = DailySchedule()
    step = schedule.check(routes, now, blocked_by, patrol_running)
    step.start -> the route to start now (marked as run today), or None
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from passeur.navigation.patrols import Route

#: What a due route waits for (patrol/status `waiting_for`; the staff page translates).
ESTOP = "estop"
PILOT_SESSION = "pilot_session"
PATROL = "patrol"
#: Waited through an e-stop: starts only by hand.
STAFF = "staff"


def blocker(estop_on: bool | None, pilot_session: bool) -> str:
    """Why a scheduled route may not start now ("" if nothing blocks it)."""
    if estop_on:
        return ESTOP
    if pilot_session:
        return PILOT_SESSION
    return ""


@dataclass
class ScheduleStep:
    start: Route | None = None
    skipped: list[Route] = field(default_factory=list)  # due while another patrol ran
    now_waiting: list[Route] = field(default_factory=list)  # due now, blocked: they wait
    expired: list[Route] = field(default_factory=list)  # waited all day: not run today


class DailySchedule:
    def __init__(self) -> None:
        self.last_run_day: dict[str, dt.date] = {}
        #: route id -> when it fell due, oldest first.
        self.waiting: dict[str, dt.datetime] = {}
        #: Waiting routes that waited through an e-stop: started by hand only.
        self.held: set[str] = set()

    def check(self, routes: Sequence[Route], now: dt.datetime, blocked_by: str,
              patrol_running: bool) -> ScheduleStep:
        step = ScheduleStep()
        by_id = {r.id: r for r in routes}
        for route_id, due in list(self.waiting.items()):
            if due.date() != now.date() or route_id not in by_id:
                del self.waiting[route_id]
                self.held.discard(route_id)
                if route_id in by_id:
                    step.expired.append(by_id[route_id])
        hhmm = now.strftime("%H:%M")
        for route in routes:
            if (route.daily_at != hhmm or self.last_run_day.get(route.id) == now.date()
                    or route.id in self.waiting):
                continue
            if blocked_by:
                self.waiting[route.id] = now
                step.now_waiting.append(route)
            elif patrol_running or step.start is not None:
                self.last_run_day[route.id] = now.date()
                step.skipped.append(route)
            elif self._startable():
                # Routes that waited go first; this one waits behind them.
                self.waiting[route.id] = now
            else:
                self.last_run_day[route.id] = now.date()
                step.start = route
        if blocked_by == ESTOP:
            self.held.update(self.waiting)
        startable = self._startable()
        if step.start is None and not blocked_by and not patrol_running and startable:
            self.started(startable[0], now.date())
            step.start = by_id[startable[0]]
        return step

    def started(self, route_id: str, day: dt.date) -> None:
        """The route started (by the schedule or by hand). One that was waiting no longer
        waits: that start is its run for `day`. A start by hand of a route that was not
        waiting (a test round in the morning) is not its scheduled run: that still comes."""
        if route_id not in self.waiting:
            return
        self.waiting.pop(route_id, None)
        self.held.discard(route_id)
        self.last_run_day[route_id] = day

    def _startable(self) -> list[str]:
        return [r for r in self.waiting if r not in self.held]

    def waiting_routes(self) -> list[str]:
        return list(self.waiting)

    def waiting_for_staff(self) -> bool:
        """Every waiting route waits for a start by hand (they waited through an e-stop)."""
        return bool(self.waiting) and not self._startable()
