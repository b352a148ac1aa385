"""The patrol state machine, without ROS.

The node feeds it navigation results and the time; it answers with effects to carry out
(send a goal, say something, cancel navigation) and records each run in the PatrolStore.

    runner.start(route, now_s) -> effects
    runner.on_nav_result("reached" | "failed" | "cancelled", reason, now_s) -> effects
    runner.on_speech_done(now_s) -> effects  (an announcement has been spoken: dwell)
    runner.tick(now_s) -> effects            (dwell timers, retries)
    runner.stop(now_s, reason) -> effects
    runner.interrupt(now_s, reason) -> effects  (another goal replaced the patrol's: give way)

Failure policy per route: `retry_then_skip` tries a waypoint 1 + retries times, then records
it as skipped and goes on; `abort` ends the run at the first failed waypoint.

A goal from anyone else (a pilot, staff, RViz) pre-empts a patrol: when the navigator reports
the patrol's goal cancelled or replaced, the run stops ("interrupted by another goal",
recorded in the history) instead of counting a failure and driving back after a retry pause,
which would fight the pilot for the robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from passeur.navigation.patrol_store import PatrolHistory, RunHandle, RunRef
from passeur.navigation.patrols import Route


@dataclass(frozen=True)
class GoTo:
    place: str


@dataclass(frozen=True)
class Say:
    text: str
    lang: str


@dataclass(frozen=True)
class CancelNavigation:
    pass


Effect = GoTo | Say | CancelNavigation


class PatrolRunner:
    def __init__(self, world: str, store: PatrolHistory | None = None,
                 retry_pause_s: float = 2.0, announce_timeout_s: float = 60.0) -> None:
        self.world = world
        self.store = store
        self.retry_pause_s = retry_pause_s
        self.announce_timeout_s = announce_timeout_s
        self.route: Route | None = None
        self.state = "idle"  # idle, navigating, announcing, dwelling, waiting_retry, finished
        self.lap = 0
        self.index = 0
        self.attempt = 0
        self._run: RunRef | None = None
        self.outcome = ""
        self.reason = ""
        self.skipped = 0
        self._until_s = 0.0
        self.trigger = ""

    # -- queries -------------------------------------------------------------------------
    @property
    def run_id(self) -> int | None:
        """The current run's history id (None until written, or without a store)."""
        return self._run.id if isinstance(self._run, RunHandle) else self._run

    @property
    def active(self) -> bool:
        return self.state in ("navigating", "announcing", "dwelling", "waiting_retry")

    @property
    def current_place(self) -> str | None:
        if self.route is None or not self.active:
            return None
        return self.route.waypoints[self.index].place

    def status(self) -> dict[str, Any]:
        r = self.route
        return {
            "state": self.state,
            "route": r.id if r else "",
            "run_id": self.run_id if self.run_id is not None else "",
            "lap": self.lap + 1 if r else 0,
            "laps": r.repeat if r else 0,
            "waypoint_index": self.index if r else 0,
            "waypoint_count": len(r.waypoints) if r else 0,
            "place": self.current_place or "",
            "attempt": self.attempt,
            "skipped": self.skipped,
            "outcome": self.outcome,
            "reason": self.reason,
        }

    # -- commands ------------------------------------------------------------------------
    def start(self, route: Route, now_s: float, trigger: str = "") -> list[Effect]:
        if self.active:
            raise RuntimeError(f"patrol '{self.route.id if self.route else ''}' is already "
                               "running; stop it first")
        self.route = route
        self.lap = 0
        self.index = 0
        self.attempt = 0
        self.skipped = 0
        self.outcome = ""
        self.reason = ""
        self.trigger = trigger
        self._run = self.store.start_run(route.id, self.world, trigger) if self.store else None
        return self._go(now_s)

    def stop(self, now_s: float, reason: str = "stopped by staff") -> list[Effect]:
        if not self.active:
            return []
        effects: list[Effect] = [CancelNavigation()] if self.state == "navigating" else []
        self._finish("stopped", reason)
        return effects

    def interrupt(self, now_s: float, reason: str = "interrupted by another goal") -> list[Effect]:
        """The patrol's goal was cancelled or replaced by someone else: stop the run. No
        CancelNavigation: the navigator is now serving that other goal."""
        if not self.active:
            return []
        if self.state == "navigating" and self.route is not None:
            self._record(self.route.waypoints[self.index].place, "interrupted", reason)
        self._finish("stopped", reason)
        return []

    def on_nav_result(self, result: str, reason: str, now_s: float) -> list[Effect]:
        if self.state != "navigating" or self.route is None:
            return []
        wp = self.route.waypoints[self.index]
        if result == "reached":
            self._record(wp.place, "reached", "")
            effects: list[Effect] = [Say(wp.announce[lang], lang) for lang in ("fr", "en")
                                     if lang in wp.announce]
            if effects:
                # Stay until the announcement has been spoken (on_speech_done), then dwell.
                self.state = "announcing"
                self._until_s = now_s + self.announce_timeout_s
                return effects
            self.state = "dwelling"
            self._until_s = now_s + wp.dwell_s
            return self.tick(now_s)
        # failed or cancelled by someone else
        why = reason or result
        if self.route.policy == "abort":
            self._record(wp.place, "failed", why)
            self._finish("aborted", f"waypoint {self.index + 1} ({wp.place}) failed: {why}")
            return []
        if self.attempt < self.route.retries:
            self.attempt += 1
            self.state = "waiting_retry"
            self._until_s = now_s + self.retry_pause_s
            self.reason = f"retrying {wp.place} ({why})"
            return []
        self._record(wp.place, "skipped", why)
        self.skipped += 1
        return self._advance(now_s)

    def on_speech_done(self, now_s: float) -> list[Effect]:
        """The announcement has been spoken (or the speaker is absent): start the dwell."""
        if self.state != "announcing" or self.route is None:
            return []
        self.state = "dwelling"
        self._until_s = now_s + self.route.waypoints[self.index].dwell_s
        return self.tick(now_s)

    def tick(self, now_s: float) -> list[Effect]:
        if self.state == "announcing" and now_s >= self._until_s:
            return self.on_speech_done(now_s)  # never wait forever for a silent speaker
        if self.state == "dwelling" and now_s >= self._until_s:
            return self._advance(now_s)
        if self.state == "waiting_retry" and now_s >= self._until_s:
            return self._go(now_s)
        return []

    def close(self, reason: str = "the stack stopped") -> None:
        if self.active:
            self._finish("stopped", reason)

    # -- internals -----------------------------------------------------------------------
    def _go(self, now_s: float) -> list[Effect]:
        assert self.route is not None
        self.state = "navigating"
        return [GoTo(self.route.waypoints[self.index].place)]

    def _advance(self, now_s: float) -> list[Effect]:
        assert self.route is not None
        self.attempt = 0
        self.index += 1
        if self.index >= len(self.route.waypoints):
            self.lap += 1
            if self.lap >= self.route.repeat:
                self.index = len(self.route.waypoints) - 1
                self.lap = self.route.repeat - 1
                outcome = "completed" if self.skipped == 0 else "completed_with_skips"
                self._finish(outcome, f"{self.skipped} waypoint(s) skipped" if self.skipped else "")
                return []
            self.index = 0
        return self._go(now_s)

    def _record(self, place: str, outcome: str, reason: str) -> None:
        if self.store is not None and self._run is not None:
            self.store.record_visit(self._run, self.lap + 1, self.index, place, outcome,
                                    self.attempt + 1, reason)

    def _finish(self, outcome: str, reason: str) -> None:
        self.state = "finished"
        self.outcome = outcome
        self.reason = reason
        if self.store is not None and self._run is not None:
            self.store.finish_run(self._run, outcome, reason)

