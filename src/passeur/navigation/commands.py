"""`passeur patrol list|start ROUTE|stop|status|history`.

list and history read the config files and the SQLite history directly; start, stop and
status talk to the running stack over ROS (patrol/command, patrol/status) with a deadline, and
say clearly when the stack is not running.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

from passeur.errors import PasseurError


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser("patrol", help="staff patrols: list, start, stop, status, history")
    sub = p.add_subparsers(dest="patrol_command", metavar="ACTION", required=True)

    def ros_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--namespace", default="", help="ROS namespace of the stack")
        sp.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the stack to answer (default 10)")

    p_list = sub.add_parser("list", help="routes of a world (from config/patrols/<world>.yaml)")
    p_list.add_argument("--world", default="library", help="world name (default library)")
    p_list.set_defaults(func=_cmd_list)

    p_start = sub.add_parser("start", help="start a route on the running stack")
    p_start.add_argument("route", help="route id (see `passeur patrol list`)")
    ros_options(p_start)
    p_start.set_defaults(func=_cmd_start)

    p_stop = sub.add_parser("stop", help="stop the running patrol")
    ros_options(p_stop)
    p_stop.set_defaults(func=_cmd_stop)

    p_status = sub.add_parser("status", help="what the patrol is doing now")
    ros_options(p_status)
    p_status.set_defaults(func=_cmd_status)

    p_hist = sub.add_parser("history", help="recorded patrol runs, newest first")
    p_hist.add_argument("--db", type=Path, default=None,
                        help="history file (default: $PASSEUR_DATA_DIR/patrols.sqlite3 or "
                             "~/.local/share/passeur/patrols.sqlite3)")
    p_hist.add_argument("--limit", type=int, default=10, help="number of runs (default 10)")
    p_hist.add_argument("--route", default=None, help="only this route")
    p_hist.add_argument("--json", action="store_true", help="print JSON")
    p_hist.set_defaults(func=_cmd_history)


# -- list / history (no ROS) --------------------------------------------------------------
def _cmd_list(args: argparse.Namespace) -> int:
    from passeur.navigation.patrols import load_patrols, patrols_path
    from passeur.navigation.places import load_places, places_path

    places = load_places(places_path(args.world), args.world)
    patrols = load_patrols(patrols_path(args.world), places)
    for route in patrols.routes.values():
        sched = f", daily at {route.daily_at}" if route.daily_at else ""
        policy = (f"retry {route.retries}x then skip" if route.policy == "retry_then_skip"
                  else "abort on failure")
        print(f"{route.id}: {route.names['en']} / {route.names['fr']} "
              f"({len(route.waypoints)} waypoints, x{route.repeat}, {policy}{sched})")
        for i, wp in enumerate(route.waypoints, 1):
            say = " [announcement]" if wp.announce else ""
            print(f"  {i}. {wp.place} - {places.places[wp.place].names['en']}, "
                  f"wait {wp.dwell_s:g} s{say}")
    return 0


def _fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _cmd_history(args: argparse.Namespace) -> int:
    from passeur.navigation.patrol_store import PatrolStore, default_history_path

    if args.limit < 1:
        raise PasseurError("--limit must be at least 1")
    store = PatrolStore(args.db or default_history_path(), read_only=True)
    try:
        runs = store.runs(args.limit, args.route)
    finally:
        store.close()
    if args.json:
        print(json.dumps([r.to_json() for r in runs], ensure_ascii=False, indent=1))
        return 0
    if not runs:
        print("no patrol runs recorded yet")
        return 0
    for run in runs:
        why = f" ({run.reason})" if run.reason else ""
        print(f"#{run.id} {run.route} [{run.world}] {_fmt_time(run.started_at)} -> "
              f"{_fmt_time(run.ended_at)}: {run.outcome}{why}")
        for v in run.visits:
            why = f" ({v.reason})" if v.reason else ""
            tries = f", {v.attempts} tries" if v.attempts > 1 else ""
            print(f"   lap {v.lap} #{v.waypoint_index + 1} {v.place}: {v.outcome} at "
                  f"{_fmt_time(v.at)[11:]}{tries}{why}")
    return 0


# -- ROS ----------------------------------------------------------------------------------
class _StackLink:
    """A short-lived node that talks to the patrol node."""

    def __init__(self, namespace: str, timeout_s: float) -> None:
        from passeur.rosenv import configure_environment

        # This machine only (the local demo), unless the user exported ROS_STATIC_PEERS or
        # ROS_AUTOMATIC_DISCOVERY_RANGE to reach a robot elsewhere (rosenv).
        configure_environment()
        import rclpy
        from diagnostic_msgs.msg import DiagnosticStatus
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from std_msgs.msg import String

        from passeur.ros import qos

        self.timeout_s = timeout_s
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"passeur_patrol_cli_{uuid.uuid4().hex[:8]}",
                                      namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.status: dict[str, str] | None = None
        self.message = ""

        def on_status(msg: DiagnosticStatus) -> None:
            self.status = {kv.key: kv.value for kv in msg.values}
            self.message = msg.message

        self.node.create_subscription(DiagnosticStatus, "patrol/status", on_status, qos.LATCHED)
        self.pub = self.node.create_publisher(String, "patrol/command", qos.STATUS)
        self._string = String

    def _spin_until(self, predicate: Any, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return bool(predicate())

    def _not_running(self) -> PasseurError:
        from passeur.navigation.exceptions import StackNotRunningError
        from passeur.rosenv import network_discovery_choice

        where = ("" if network_discovery_choice() else
                 "; this command looks on this machine only: for a robot on another machine, "
                 "export ROS_STATIC_PEERS=<its address> (or ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET)")
        return StackNotRunningError(
            f"no answer from the patrol node within {self.timeout_s:g} s: is the stack running "
            "(`passeur sim` or `passeur robot`) with the same ROS namespace and domain?"
            f"{where}")

    def wait_status(self) -> dict[str, str]:
        if not self._spin_until(lambda: self.status is not None,
                                time.monotonic() + self.timeout_s):
            raise self._not_running()
        assert self.status is not None
        return self.status

    def command(self, payload: dict[str, Any]) -> dict[str, str]:
        deadline = time.monotonic() + self.timeout_s
        if not self._spin_until(lambda: self.pub.get_subscription_count() > 0, deadline):
            raise self._not_running()
        request_id = uuid.uuid4().hex
        payload = {**payload, "request_id": request_id}
        self.pub.publish(self._string(data=json.dumps(payload)))
        if not self._spin_until(lambda: self.status is not None
                                and self.status.get("request_id") == request_id, deadline):
            raise self._not_running()
        assert self.status is not None
        if self.status.get("last_error"):
            raise PasseurError(refusal_text(self.status))
        return self.status

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def refusal_text(status: dict[str, str]) -> str:
    """A refused command, said in English and French when the patrol node gave a known code."""
    from passeur.navigation.exceptions import estop_refusal

    if status.get("last_error_code") == "estop":
        refusal = estop_refusal()
        return f"patrol refused: {refusal.english}\nronde refusée : {refusal.french}"
    return f"patrol refused: {status['last_error']}"


def status_details(status: dict[str, str]) -> str:
    """The status fields as a person reads them: waypoints, laps and attempts counted from 1,
    as in the status message ("waypoint 1/6"); patrol/status keeps `waypoint_index` and
    `attempt` 0-based for programs."""
    def count(key: str) -> str:
        value = status.get(key, "")
        return str(int(value) + 1) if value.lstrip("-").isdigit() else value

    fields = {"route": status.get("route", ""), "state": status.get("state", ""),
              "place": status.get("place", "")}
    if status.get("waypoint_count"):
        fields["waypoint"] = f"{count('waypoint_index')}/{status['waypoint_count']}"
    if status.get("laps"):
        fields["lap"] = f"{status.get('lap', '')}/{status['laps']}"
    if status.get("attempt"):
        fields["attempt"] = count("attempt")
    for key in ("skipped", "outcome", "reason", "waiting_routes", "waiting_for"):
        fields[key] = status.get(key, "")
    return ", ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))


def _print_status(status: dict[str, str], message: str) -> None:
    print(message or status.get("state", "?"))
    if status.get("state") not in ("idle", "") or status.get("waiting_routes"):
        print("  " + status_details(status))


def _with_link(args: argparse.Namespace, action: Any) -> int:
    if args.timeout <= 0:
        raise PasseurError("--timeout must be > 0")
    link = _StackLink(args.namespace, args.timeout)
    try:
        status = action(link)
        _print_status(status, link.message)
        return 0
    finally:
        link.close()


def _cmd_start(args: argparse.Namespace) -> int:
    return _with_link(args, lambda link: link.command({"action": "start", "route": args.route,
                                                        "trigger": "cli"}))


def _cmd_stop(args: argparse.Namespace) -> int:
    return _with_link(args, lambda link: link.command({"action": "stop",
                                                        "reason": "stopped by staff (cli)"}))


def _cmd_status(args: argparse.Namespace) -> int:
    return _with_link(args, lambda link: link.wait_status())
