"""The patrol node: staff routes through named places, run through the navigator.

    patrol/command (String JSON: {"action": "start", "route": id} | {"action": "stop"}
                    | {"action": "status"}; optional "request_id" echoed in the status)
    navigation/status (DiagnosticStatus, latched), estop/state (Bool, latched),
    telepresence/pilot_session (Bool, latched: a visitor's pilot session is live)
      -> goal_place (String JSON {"place", "request_id"}), navigation/cancel (Empty),
         speech/say (String JSON {"text", "lang"}), patrol/status (DiagnosticStatus, latched)

Every goal the patrol sends carries a request_id of its own, which the navigator echoes in
navigation/status: the patrol acts only on the statuses of its own goals, never on an older
goal to the same place (the latched status may describe one, and reach the patrol node only
after the patrol has started).

A goal from anyone else (a pilot, staff) pre-empts a patrol: when the patrol's goal is
cancelled or replaced by someone else, or another goal starts while the patrol dwells, the
run stops with "interrupted by another goal" (recorded in the history) instead of retrying and
driving the robot back.

A start while the emergency stop is on is refused (reason code `estop`): the robot cannot
move, and its release must not set it moving by itself.

Runs are recorded in SQLite (patrol_store.py). Routes with a daily schedule start by
themselves at that local time when no patrol is running; one that falls due during the
e-stop waits for staff to start it by hand after the release (a release never sets the robot
moving by itself), and one that falls due
during a visitor's pilot session waits for the session's end, on the same day
(patrol_schedule.py); patrol/status says so (`waiting_routes`, `waiting_for`). Staff may still
start a route by hand during a pilot session (they decide; the pilot's page says so). The web API
(web.py) and the CLI (commands.py) use the same start/stop paths.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from std_msgs.msg import Bool, Empty, String

from passeur.navigation.exceptions import (
    NavConfigError,
    NavConfigFileNotFoundError,
    PatrolRefusedError,
    estop_refusal,
)
from passeur.navigation.patrol_runner import (
    CancelNavigation,
    Effect,
    GoTo,
    PatrolRunner,
    Say,
)
from passeur.navigation.patrol_schedule import ESTOP, PATROL, STAFF, DailySchedule, blocker
from passeur.navigation.patrol_store import HistoryWriter, PatrolStore, default_history_path
from passeur.navigation.patrols import PatrolsConfig, load_patrols, patrols_path
from passeur.navigation.places import load_places, places_path
from passeur.navigation.web import PatrolBusyError, PatrolsFeature
from passeur.ros import qos
from passeur.ros.params import declare

NAV_TERMINAL = ("reached", "failed", "cancelled")
#: The patrol's timers (dwell, retry pause, goal take-up, announcements) resolve to this;
#: dwell times are whole seconds, so a finer tick buys nothing.
TICK_PERIOD_S = 0.25
#: Schedules are to the minute: checking every 5 s starts a route within 5 s of its time
#: and can never miss its minute.
SCHEDULE_CHECK_PERIOD_S = 5.0
#: Longest request_id echoed back in patrol/status (a browser sends it; bound it).
MAX_REQUEST_ID_CHARS = 64
#: Request ids of the patrol's own goals remembered: more than the copies of one waypoint's
#: goal that can be in flight at once (goal_max_resends + 1, at most 101).
SENT_REQUEST_IDS_KEPT = 128
#: patrol/status `reason` of a run ended by the emergency stop (cause code `estop`).
ESTOP_REASON = "interrupted: stopped by the emergency stop"


class PatrolNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("patrol", **kwargs)
        self._closed = True  # until fully built (a bad file stops __init__ early)
        self.world = str(declare(self, "world", "library", "world name (places, patrols)"))
        places_file = str(declare(self, "places_file", "",
                                  "places YAML (default: config/places/<world>.yaml)"))
        patrols_file = str(declare(self, "patrols_file", "",
                                   "patrol routes YAML (default: config/patrols/<world>.yaml)"))
        history = str(declare(self, "history_db", "",
                              "SQLite file of patrol runs (default: $PASSEUR_DATA_DIR/"
                              "patrols.sqlite3 or ~/.local/share/passeur/patrols.sqlite3)"))
        self.retry_pause_s = float(declare(self, "retry_pause_s", 2.0,
                                           "pause before retrying a failed waypoint (s)",
                                           min_value=0.0, max_value=600.0))
        self.accept_timeout_s = float(declare(self, "goal_accept_timeout_s", 5.0,
                                              "resend a goal the navigator has not taken up "
                                              "after this long (s)", min_value=0.5,
                                              max_value=120.0))
        self.max_resends = int(declare(self, "goal_max_resends", 3,
                                       "resend a goal the navigator has not taken up this many "
                                       "times, then count the waypoint as failed",
                                       min_value=0, max_value=100))
        self.announce_timeout_s = float(declare(
            self, "announce_timeout_s", 60.0, "longest wait for an announcement to be spoken "
            "before the dwell starts (s)", min_value=1.0, max_value=600.0))
        self.speech_start_timeout_s = float(declare(
            self, "speech_start_timeout_s", 3.0, "after an announcement, move on if the speaker "
            "has not started speaking within this time (s)", min_value=0.0, max_value=60.0))
        self.schedule_enabled = bool(declare(self, "schedule_enabled", True,
                                             "start routes at their daily schedule"))
        try:
            self.places = load_places(
                Path(places_file) if places_file else places_path(self.world), self.world)
            self.patrols: PatrolsConfig = load_patrols(
                Path(patrols_file) if patrols_file else patrols_path(self.world), self.places)
        except NavConfigFileNotFoundError as exc:
            # A building of one's own (`--world my_museum`) has no routes yet: say what to do.
            raise NavConfigFileNotFoundError(
                f"{exc.problem}: the patrol node needs the world's places and patrol routes; "
                f"write config/places/{self.world}.yaml and config/patrols/{self.world}.yaml "
                "(see the library's), set the patrol node's places_file and patrols_file, or "
                "leave the patrol node out (--nodes / nodes:=)", exc.path) from exc
        self.history_path = Path(history) if history else default_history_path()
        self.store = PatrolStore(self.history_path)
        interrupted = self.store.mark_interrupted()
        if interrupted:
            self.get_logger().warning(f"{interrupted} patrol run(s) were interrupted by a stop")
        # Callbacks record through the writer thread, never SQLite itself.
        self.history = HistoryWriter(self.store)
        self.runner = PatrolRunner(self.world, self.history, retry_pause_s=self.retry_pause_s,
                                   announce_timeout_s=self.announce_timeout_s)
        self._speaking = False
        self._speech_started = False
        self._say_time_s = 0.0
        self._lock = threading.RLock()
        # The goal the patrol sent: its place and request_id, then (once the navigator
        # reports it) its goal id. Results are matched by request_id, never by place or by
        # goal id alone: someone else's goal to the same place is not the patrol's.
        self._pending_place: str | None = None
        self._pending_request_id = ""
        self._pending_goal_id: int | None = None
        self._pending_sent_s = 0.0
        self._pending_resends = 0
        # The patrol's recent goals, pending or given up on: one the navigator takes up late
        # (after a resend) is still the patrol's own, never "another goal".
        self._sent_request_ids: deque[str] = deque(maxlen=SENT_REQUEST_IDS_KEPT)
        self._latest_nav_goal_id = 0
        self._last_request_id = ""
        self._last_error = ""
        self._last_error_code = ""
        self.schedule = DailySchedule()
        self._estop_on: bool | None = None  # None: no estop/state heard yet
        # The e-stop came on since the last schedule check, perhaps released since: the
        # check holds waiting and due routes for staff all the same, or a route could start
        # seconds after a release (e.g. a pilot's session ending during the e-stop).
        self._estop_since_check = False
        self._pilot_session = False

        self.goal_pub = self.create_publisher(String, "goal_place", qos.STATUS)
        self.cancel_pub = self.create_publisher(Empty, "navigation/cancel", qos.STATUS)
        self.say_pub = self.create_publisher(String, "speech/say", qos.STATUS)
        self.status_pub = self.create_publisher(DiagnosticStatus, "patrol/status", qos.LATCHED)
        self.create_subscription(String, "patrol/command", self._on_command, qos.STATUS)
        # Latched: the navigator's current goal id is known as soon as it matches (not at its
        # next idle repeat), so an old goal to the patrol's first place is not taken for ours.
        self.create_subscription(DiagnosticStatus, "navigation/status", self._on_nav_status,
                                 qos.LATCHED_EVENTS)
        self.create_subscription(Bool, "speech/speaking", self._on_speaking, qos.LATCHED)
        self.create_subscription(Bool, "estop/state", self._on_estop, qos.LATCHED)
        self.create_subscription(Bool, "telepresence/pilot_session", self._on_pilot_session,
                                 qos.LATCHED)
        self._timer = self.create_timer(TICK_PERIOD_S, self._tick)
        # The daily schedule follows the wall clock, whatever the node clock is.
        self._schedule_timer = self.create_timer(
            SCHEDULE_CHECK_PERIOD_S, self._check_schedule,
            clock=Clock(clock_type=ClockType.STEADY_TIME)
        ) if self.schedule_enabled else None
        self._closed = False
        self._publish_status()

    # -- control API (ROS command, web, tests) ---------------------------------------------
    def routes_json(self) -> dict[str, Any]:
        with self._lock:
            return {"world": self.world,
                    "routes": [r.to_json() for r in self.patrols.routes.values()],
                    "places": {p.id: p.names for p in self.places.places.values()},
                    "status": self.status_dict()}

    def start_route(self, route_id: str, trigger: str = "") -> dict[str, Any]:
        route = self.patrols.route(route_id)  # NavConfigError if unknown
        with self._lock:
            if self.runner.active:
                raise PatrolBusyError(
                    f"patrol '{self.runner.route.id if self.runner.route else ''}' is already "
                    "running; stop it first")
            if self._estop_on:
                # The navigator would end its first goal at once: the desk and the CLI said
                # "navigating", then "interrupted" a few ms later.
                raise estop_refusal()
            effects = self.runner.start(route, self._now_s(), trigger)
            # A route started by hand while it waited (for a pilot, or after an e-stop) is the
            # day's run: the schedule must not start it again afterwards.
            self.schedule.started(route_id, dt.datetime.now().date())
            self._last_error = ""
            self._last_error_code = ""
            self.get_logger().info(f"patrol '{route_id}' started ({trigger or 'api'})")
            self._apply(effects)
            self._publish_status()
            return self.status_dict()

    def stop_patrol(self, reason: str = "stopped by staff") -> dict[str, Any]:
        """Stop the run under way; the status, with "stopped": whether a run was under way
        (the desk says "no patrol was running" rather than "done")."""
        with self._lock:
            running = self.runner.active
            effects = self.runner.stop(self._now_s(), reason)
            self._pending_place = None
            self._pending_goal_id = None
            self._last_error = ""
            self._last_error_code = ""
            self._apply(effects)
            self._publish_status()
            return {**self.status_dict(), "stopped": running}

    def history_json(self, limit: int = 20, route: str | None = None) -> list[dict[str, Any]]:
        """Recorded runs, newest first, including what is still queued (blocks: call it from
        a worker thread, as the web API does)."""
        self.history.flush()
        return [r.to_json() for r in self.store.runs(limit, route)]

    def status_dict(self) -> dict[str, Any]:
        with self._lock:
            status = self.runner.status()
            status["world"] = self.world
            status["request_id"] = self._last_request_id
            status["last_error"] = self._last_error
            status["last_error_code"] = self._last_error_code
            waiting = self.schedule.waiting_routes()
            status["waiting_routes"] = ",".join(waiting)
            why = self._schedule_blocker()
            if why != ESTOP and self.schedule.waiting_for_staff():
                # Held since an e-stop: neither a session's nor another patrol's end starts
                # them; only staff do (they may, even meanwhile).
                why = STAFF
            why = why or (PATROL if self.runner.active else "")
            status["waiting_for"] = why if waiting else ""
            return status

    def _schedule_blocker(self) -> str:
        # A telepresence node that died with a session live leaves its last word latched here:
        # without a publisher there is no session to wait for.
        pilot = (self._pilot_session
                 and self.count_publishers("telepresence/pilot_session") > 0)
        return blocker(bool(self._estop_on), pilot)

    def _on_pilot_session(self, msg: Bool) -> None:
        with self._lock:
            self._pilot_session = bool(msg.data)
            waiting = bool(self.schedule.waiting)
        if waiting:
            self._publish_status()

    # -- ROS inputs ------------------------------------------------------------------------
    def _now_s(self) -> float:
        return float(self.get_clock().now().nanoseconds) * 1e-9

    def _on_command(self, msg: String) -> None:
        try:
            cmd = json.loads(msg.data)
            if not isinstance(cmd, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):  # RecursionError: too deeply nested
            self._reject("", 'patrol/command must be JSON like {"action": "start", "route": "id"}')
            return
        request_id = str(cmd.get("request_id", ""))[:MAX_REQUEST_ID_CHARS]
        action = cmd.get("action")
        try:
            if action == "start":
                route = cmd.get("route")
                if not isinstance(route, str):
                    raise NavConfigError('start needs "route": "<route id>"')
                with self._lock:
                    self._last_request_id = request_id
                self.start_route(route, str(cmd.get("trigger", "ros")))
            elif action == "stop":
                with self._lock:
                    self._last_request_id = request_id
                self.stop_patrol(str(cmd.get("reason", "stopped by staff")))
            elif action == "status":
                with self._lock:
                    self._last_request_id = request_id
                    self._last_error = ""
                    self._last_error_code = ""
                self._publish_status()
            else:
                raise NavConfigError(f"unknown action {action!r} (expected start, stop, status)")
        except PatrolRefusedError as exc:
            self._reject(request_id, exc.english, exc.code)
        except (NavConfigError, PatrolBusyError) as exc:
            self._reject(request_id, exc.problem if isinstance(exc, NavConfigError) else str(exc))

    def _reject(self, request_id: str, message: str, code: str = "") -> None:
        self.get_logger().warning(f"patrol command refused: {message}")
        with self._lock:
            self._last_request_id = request_id
            self._last_error = message
            self._last_error_code = code
        self._publish_status()

    def _on_nav_status(self, msg: DiagnosticStatus) -> None:
        values = {kv.key: kv.value for kv in msg.values}
        state, place = values.get("state", ""), values.get("place", "")
        request_id = values.get("request_id", "")
        try:
            goal_id = int(values.get("goal_id") or 0)
        except ValueError:
            return
        with self._lock:
            previous = self._latest_nav_goal_id
            if goal_id:
                self._latest_nav_goal_id = goal_id
            if not goal_id:
                return
            if self._pending_place is None:
                if (self.runner.active and state == "planning" and goal_id != previous
                        and request_id not in self._sent_request_ids):
                    # A new goal that is not the patrol's while it dwells, announces or
                    # waits to retry: its next goal would replace that one. Give way.
                    self._apply(self.runner.interrupt(self._now_s()))
                    self.get_logger().warning(
                        f"patrol stopped: interrupted by another goal ({values.get('goal', '')})")
                    self._publish_status()
                return
            if request_id != self._pending_request_id:
                # Not our goal: an older one (the latched status), or someone else's, even
                # to the same place; or one we sent before a resend replaced it.
                return
            self._pending_goal_id = goal_id  # taken up
            if state not in NAV_TERMINAL:
                return
            self._pending_place = None
            self._pending_goal_id = None
            now = self._now_s()
            reason = values.get("reason", "")
            if state == "cancelled":
                # Not by us (stop_patrol forgets the goal before cancelling): a pilot's or
                # staff goal replaced it, or someone cancelled navigation. Give way.
                code = values.get("reason_code")
                # The e-stop reads the same whether the navigator's cancel or the patrol's
                # own estop/state came first (the navigator's advice is about a goal).
                why = ("interrupted by another goal" if code == "replaced"
                       else ESTOP_REASON if code == "estop"
                       else f"interrupted: {reason or 'navigation cancelled'}")
                effects = self.runner.interrupt(now, why)
                self.get_logger().warning(f"patrol stopped at {place}: {why}")
            else:
                effects = self.runner.on_nav_result(state, reason, now)
                self.get_logger().info(f"patrol: {place} {state} {reason}")
            self._apply(effects)
            self._publish_status()

    def _on_estop(self, msg: Bool) -> None:
        """The e-stop ends a run whatever its state: one that dwells, announces or waits to
        retry would otherwise send its next goal after the release, setting the robot moving
        by itself (IEC 60204-1, ISO 13850). The navigator ends a goal under way itself."""
        with self._lock:
            self._estop_on = bool(msg.data)
            self._estop_since_check = self._estop_since_check or bool(msg.data)
            waiting = bool(self.schedule.waiting)
        if waiting:
            self._publish_status()  # the desk: what the scheduled route now waits for
        if not msg.data:
            return
        with self._lock:
            if not self.runner.active:
                return
            self._pending_place = None
            self._pending_goal_id = None
            self._apply(self.runner.interrupt(self._now_s(), ESTOP_REASON))
        self.get_logger().warning(f"patrol stopped: {ESTOP_REASON}")
        self._publish_status()

    def _on_speaking(self, msg: Bool) -> None:
        with self._lock:
            self._speaking = bool(msg.data)
            if self._speaking:
                self._speech_started = True

    def _speech_finished(self, now: float) -> bool:
        """After an announcement: spoken, or no speaker at all, or it never started."""
        if self.count_publishers("speech/speaking") == 0:
            return True
        if self._speaking:
            return False
        return self._speech_started or now - self._say_time_s > self.speech_start_timeout_s

    def _tick(self) -> None:
        if self._closed:
            return
        now = self._now_s()
        with self._lock:
            before = (self.runner.state, self.runner.index, self.runner.lap)
            if self.runner.state == "announcing" and self._speech_finished(now):
                self._apply(self.runner.on_speech_done(now))
            if (self._pending_place is not None and self._pending_goal_id is None
                    and now - self._pending_sent_s > self.accept_timeout_s):
                if self._pending_resends >= self.max_resends:
                    place = self._pending_place
                    self._pending_place = None
                    effects = self.runner.on_nav_result(
                        "failed", "the navigator did not answer (is it running?)", now)
                    self.get_logger().warning(f"patrol: no answer from the navigator for {place}")
                    self._apply(effects)
                else:
                    self._pending_resends += 1
                    self._send_goal(self._pending_place, resend=True)
            effects = self.runner.tick(now)
            self._apply(effects)
            changed = before != (self.runner.state, self.runner.index, self.runner.lap)
        if changed:
            self._publish_status()

    def _check_schedule(self) -> None:
        if self._closed:
            return
        now = dt.datetime.now()
        log = self.get_logger()
        # Under the lock: the e-stop cannot come on between the check and the start.
        with self._lock:
            before = self.schedule.waiting_routes()
            why = ESTOP if self._estop_since_check else self._schedule_blocker()
            self._estop_since_check = False
            step = self.schedule.check(list(self.patrols.routes.values()), now, why,
                                       self.runner.active)
            for route in step.skipped:
                log.warning(f"scheduled route '{route.id}' skipped: a patrol is already running")
            for route in step.now_waiting:
                log.warning(f"scheduled route '{route.id}' waits ({why}): it starts once "
                            "nothing blocks it, today")
            for route in step.expired:
                log.warning(f"scheduled route '{route.id}' did not run: it waited until the "
                            "end of the day")
            if step.start is not None:
                self.start_route(step.start.id, "schedule")  # publishes the status
            elif before != self.schedule.waiting_routes():
                self._publish_status()

    # -- effects ---------------------------------------------------------------------------
    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, GoTo):
                self._send_goal(effect.place)
            elif isinstance(effect, Say):
                self._speech_started = False
                self._say_time_s = self._now_s()
                self.say_pub.publish(String(data=json.dumps({"text": effect.text,
                                                             "lang": effect.lang})))
            elif isinstance(effect, CancelNavigation):
                self.cancel_pub.publish(Empty())

    def _send_goal(self, place: str, resend: bool = False) -> None:
        # A new request_id for every goal, resends included: should the navigator get both
        # copies, the first one's "replaced" is not taken for the patrol being interrupted.
        request_id = f"patrol-{uuid.uuid4().hex[:16]}"
        self._pending_place = place
        self._pending_request_id = request_id
        self._sent_request_ids.append(request_id)
        self._pending_goal_id = None
        self._pending_sent_s = self._now_s()
        if not resend:
            self._pending_resends = 0
        self.goal_pub.publish(String(data=json.dumps({"place": place,
                                                      "request_id": request_id})))

    def _publish_status(self) -> None:
        if self._closed or not self.context.ok():
            return
        status = self.status_dict()
        msg = DiagnosticStatus()
        msg.name = "patrol"
        msg.hardware_id = self.get_namespace()
        state = status["state"]
        if state == "finished" and status["outcome"] in ("aborted",):
            msg.level = DiagnosticStatus.ERROR
        elif status["last_error"] or status["outcome"] == "completed_with_skips":
            msg.level = DiagnosticStatus.WARN
        else:
            msg.level = DiagnosticStatus.OK
        if state == "idle":
            msg.message = "no patrol running"
        elif state == "finished":
            msg.message = f"patrol '{status['route']}' {status['outcome']}" + (
                f": {status['reason']}" if status["reason"] else "")
        else:
            msg.message = (f"patrol '{status['route']}': {state} {status['place']} "
                           f"(waypoint {status['waypoint_index'] + 1}/{status['waypoint_count']},"
                           f" lap {status['lap']}/{status['laps']})")
        if status["waiting_routes"]:
            msg.message += (f"; scheduled {status['waiting_routes']} waiting "
                            f"({status['waiting_for'] or 'starting'})")
        if status["last_error"]:
            msg.message += f" [refused: {status['last_error']}]"
        msg.values = [KeyValue(key=k, value=str(v)) for k, v in status.items()]
        self.status_pub.publish(msg)

    # -- web -------------------------------------------------------------------------------
    def web_features(self) -> list[Any]:
        return [PatrolsFeature(self)]

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        with self._lock:
            if self.runner.active:
                self._apply(self.runner.stop(self._now_s(), "the stack stopped"))
            self._closed = True
        self.history.close()  # writes what is queued (the run just stopped) first
        self.store.close()

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()



