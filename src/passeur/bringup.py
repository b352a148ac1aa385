"""THE node graph. One list, used by `passeur sim|robot`, by `passeur_stack`, and by the
launch files in launch/ (which import NODES so that both stay the same).

Conventions every node class follows (see CONVENTIONS.md):
- `Cls(**kwargs)` forwards kwargs (namespace, parameter_overrides, context) to rclpy's Node
  with its fixed node name;
- optional `web_features()` returns the web pages/APIs it serves (telepresence hosts them);
- optional `add_web_features(features)` (the telepresence node) receives them;
- optional `add_time_consumer(clock)` (the simulator) receives the clock of every other node
  on sim time, so that at `--rtf max` sim time waits for the slowest of them;
- optional `start()` is called once every node exists;
- optional `failure()` returns why the node can no longer do its work (a thread of its own
  died: the simulator's loop), None while it can; `passeur sim|robot` then stop and exit;
- optional `close()` (idempotent) stops motors/threads before the node is destroyed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passeur.errors import ConfigError, PasseurError
from passeur.paths import share_path

log = logging.getLogger(__name__)

SIM = "sim"  # embedded MuJoCo simulator in the graph
EXTERNAL = "external"  # Gazebo + bridge, or a real robot's drivers, provide the sensors


@dataclass(frozen=True)
class NodeSpec:
    name: str
    target: str  # "module:Class"
    profiles: frozenset[str]
    description: str

    def load(self) -> type:
        module_name, _, cls_name = self.target.partition(":")
        module = importlib.import_module(module_name)
        cls: type = getattr(module, cls_name)
        return cls


BOTH = frozenset({SIM, EXTERNAL})

NODES: tuple[NodeSpec, ...] = (
    NodeSpec("sim", "passeur.sim.sim_node:SimNode", frozenset({SIM}),
             "MuJoCo simulator: clock, odom, scan, camera; drives cmd_vel"),
    NodeSpec("map_server", "passeur.navigation.map_node:MapNode", BOTH,
             "publishes the world's occupancy map on `map` (transient local)"),
    NodeSpec("safety", "passeur.safety.safety_node:SafetyNode", BOTH,
             "velocity mux, collision monitor, e-stop -> cmd_vel"),
    NodeSpec("navigator", "passeur.navigation.navigator_node:NavigatorNode", BOTH,
             "goal_pose / goal_place -> cmd_vel/nav, plan, navigation/status"),
    NodeSpec("patrol", "passeur.navigation.patrol_node:PatrolNode", BOTH,
             "staff patrol routes, history in SQLite"),
    NodeSpec("reading", "passeur.reading.reading_node:ReadingNode", BOTH,
             "reading companion: reader page, ASR, tutor, TTS, progress"),
    NodeSpec("telepresence", "passeur.telepresence.telepresence_node:TelepresenceNode", BOTH,
             "web server: pilot/staff/reader pages, WebRTC, teleop"),
)


def specs_for(profile: str, only: Iterable[str] | None = None) -> list[NodeSpec]:
    if profile not in (SIM, EXTERNAL):
        raise ConfigError(f"unknown profile '{profile}' (expected '{SIM}' or '{EXTERNAL}')")
    chosen = [s for s in NODES if profile in s.profiles]
    if only is not None:
        wanted = list(only)
        known = {s.name for s in NODES}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise ConfigError(
                f"unknown node(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
            )
        # Asked for but not of this profile (the simulator under `passeur robot`): dropping
        # them silently left a stack without them, even with no node at all.
        elsewhere = [n for n in wanted if n not in {s.name for s in chosen}]
        if elsewhere:
            raise ConfigError(
                f"node(s) {', '.join(elsewhere)} not in profile '{profile}' (the simulator runs "
                f"with `passeur sim` / sim.launch.py only); choose from "
                f"{', '.join(s.name for s in chosen)}")
        chosen = [s for s in chosen if s.name in wanted]
    return chosen


def runs_every_node(specs: Iterable[NodeSpec]) -> bool:
    """Whether `specs` is every node of NODES. Only then can a `/**` parameter no running node
    declares be called unknown: the parameter file is shared by `passeur sim` and `passeur
    robot` (profile `external`, no simulator) and by `--nodes` subsets, so a `/**` value may be
    meant for a node left out (the simulator's `seed`, ...)."""
    return {s.name for s in specs} == {s.name for s in NODES}


def default_params_file() -> Path:
    return share_path("config", "passeur.yaml")


@dataclass
class StackOptions:
    profile: str = SIM
    params_file: Path | None = None
    namespace: str = ""
    only: Sequence[str] | None = None
    #: Parameters applied to every node that declares them (e.g. world, use_sim_time).
    common: dict[str, Any] = field(default_factory=dict)
    #: Per-node overrides: {"sim": {"real_time_factor": 0.0}}.
    per_node: dict[str, dict[str, Any]] = field(default_factory=dict)


def create_node(cls: type, name: str, *, params_file: Path,
                command_line: Iterable[str] = (), **kwargs: Any) -> Any:
    """Build one node; a parameter rclpy refuses (wrong type, out of range, bad namespace)
    becomes a ConfigError naming the file (or the command line), the node and the parameter,
    not a traceback. `command_line`: parameter names given as options rather than in the file.
    """
    from rclpy.exceptions import NameValidationException, ParameterException

    from passeur.ros.params import ParameterValueError

    try:
        return cls(**kwargs)
    except ParameterValueError as exc:
        if exc.name in set(command_line):
            raise ConfigError(f"node '{name}': {exc.problem} (given on the command line)") from exc
        raise ConfigError(f"node '{name}': {exc.problem}; fix it in this file",
                          params_file) from exc
    except (ParameterException, NameValidationException) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{params_file}: node '{name}': {detail} (fix the value under "
                          f"'/**/{name}: ros__parameters' or the command-line option)") from exc


def check_namespace(namespace: str) -> None:
    """Refuse a bad --namespace before any node exists (rclpy would fail in every node)."""
    if not namespace:
        return
    from rclpy.exceptions import InvalidNamespaceException
    from rclpy.validate_namespace import validate_namespace

    full = namespace if namespace.startswith("/") else f"/{namespace}"
    try:
        validate_namespace(full)
    except InvalidNamespaceException as exc:
        # rclpy's text: "Invalid namespace: <reason>:\n  '<ns>'\n  ^" (a caret under the fault)
        reason = str(exc).splitlines()[0].removeprefix("Invalid namespace:").strip().rstrip(":")
        raise ConfigError(f"--namespace '{namespace}': {reason or 'not a valid ROS namespace'}"
                          " (e.g. robot1)") from exc


#: A node whose callbacks fail this many times in a row, with no success between, is stopped.
MAX_FAILURES_IN_A_ROW = 100
#: At most one log line (with its traceback) per node this often while callbacks fail.
FAILURE_LOG_INTERVAL_S = 5.0


@dataclass
class _Spinner:
    node: Any
    executor: Any
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None


class NodeSpinners:
    """One SingleThreadedExecutor and one thread per node (see `Stack` for why).

    A callback that raises is logged with its node's name (at most every
    FAILURE_LOG_INTERVAL_S) and spinning goes on: one bad message must not stop a robot's
    other callbacks. MAX_FAILURES_IN_A_ROW failures with no success between stop the node's
    thread: `alive()` is then False and `passeur sim|robot` stop the robot and exit.
    """

    def __init__(self, context: Any) -> None:
        self._context = context
        self._lock = threading.Lock()
        self._spinners: dict[int, _Spinner] = {}
        self._started = False

    def add(self, node: Any) -> None:
        from rclpy.executors import SingleThreadedExecutor

        executor = SingleThreadedExecutor(context=self._context)
        executor.add_node(node)
        spinner = _Spinner(node, executor)
        with self._lock:
            self._spinners[id(node)] = spinner
            if self._started:
                self._start(spinner)

    def start(self) -> None:
        with self._lock:
            self._started = True
            for spinner in self._spinners.values():
                self._start(spinner)

    def alive(self) -> bool:
        with self._lock:
            return all(s.thread is not None and s.thread.is_alive()
                       for s in self._spinners.values())

    def close(self) -> None:
        """Stop and join every thread, then shut the executors down. Idempotent."""
        with self._lock:
            spinners = list(self._spinners.values())
            self._spinners.clear()
        for spinner in spinners:
            spinner.stop.set()
        for spinner in spinners:
            self._stop(spinner)

    def _start(self, spinner: _Spinner) -> None:
        if spinner.thread is None:
            spinner.thread = threading.Thread(target=self._spin, args=(spinner,),
                                              name=f"ros-{spinner.node.get_name()}",
                                              daemon=True)
            spinner.thread.start()

    @staticmethod
    def _spin(spinner: _Spinner) -> None:
        from rclpy.executors import ExternalShutdownException

        executor = spinner.executor
        name = spinner.node.get_name()
        failures = 0  # in a row
        last_log = -math.inf
        while not spinner.stop.is_set() and executor.context.ok():
            try:
                executor.spin_once(timeout_sec=0.1)
                failures = 0
            except ExternalShutdownException:
                return
            except Exception:
                if spinner.stop.is_set():
                    return
                failures += 1
                if failures >= MAX_FAILURES_IN_A_ROW:
                    # Not one bad message: the node is broken. Stop its thread so that
                    # `Stack.spinning()` says so and the stack stops the robot.
                    log.critical("node %s failed %d times in a row; stopping it", name,
                                 failures, exc_info=True)
                    return
                now = time.monotonic()
                if now - last_log >= FAILURE_LOG_INTERVAL_S:
                    last_log = now
                    log.exception("a callback of node %s failed (%d in a row); the node "
                                  "keeps running", name, failures)

    @staticmethod
    def _stop(spinner: _Spinner) -> None:
        spinner.stop.set()
        thread = spinner.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
            if thread.is_alive():
                log.warning("executor thread of %s did not stop within 5 s",
                            spinner.node.get_name())
        try:
            spinner.executor.remove_node(spinner.node)
            spinner.executor.shutdown(timeout_sec=1.0)
        except Exception:
            log.exception("executor shutdown for %s failed", spinner.node.get_name())


class Stack:
    """All nodes of the graph in one process, each spun by its own executor thread.

    One single-threaded executor per node rather than one MultiThreadedExecutor: measured on 2
    cores (rclpy 9.1), a MultiThreadedExecutor over the whole graph live-locked in its own
    bookkeeping (thousands of queued handlers for callback groups that were busy; the
    simulator at `rtf max` crawled at 0.04x real time and a 4 m plan took 2 s instead of
    30 ms). Per-node executors also isolate the nodes: a slow navigator callback never delays
    the safety node's. Inside a node, callbacks run one at a time.

    Not rclpy's EventsExecutor (rclpy.experimental), although it ran the simulator 1.6-2.6x
    faster here: with it, subscription callbacks taking a MessageInfo (the e-stop's) failed
    with "SystemError: null argument to internal routine", and timer callbacks with a
    default argument were handed a TimerInfo, unlike with the other executors.
    """

    def __init__(self, options: StackOptions, context: Any = None) -> None:
        from rclpy.parameter import Parameter

        from passeur.ros.params import (
            load_parameter_file_with_keys,
            misspelt_sections,
            unknown_parameter_problems,
        )

        self.options = options
        self.context = context
        self.nodes: list[Any] = []
        self._spinners = NodeSpinners(context)
        params_file = options.params_file or default_params_file()
        specs = specs_for(options.profile, options.only)
        check_namespace(options.namespace)
        common = dict(options.common)
        if options.profile == SIM:
            common.setdefault("use_sim_time", True)
        file_keys: dict[str, dict[str, str]] = {}
        for hint in misspelt_sections(params_file, [s.name for s in NODES], options.namespace):
            log.warning("%s: %s", params_file, hint)
        try:
            for spec in specs:
                overrides, file_keys[spec.name] = load_parameter_file_with_keys(
                    params_file, spec.name, options.namespace)
                extra = {**common, **options.per_node.get(spec.name, {})}
                if spec.name == "sim":
                    extra.pop("use_sim_time", None)  # the simulator is the clock
                if spec.name == "navigator" and "odom_origin" not in file_keys[spec.name]:
                    extra = {**self._navigator_odom_origin(), **extra}
                overrides += [Parameter(k, value=v) for k, v in extra.items()]
                cls = spec.load()
                node = create_node(cls, spec.name, params_file=params_file,
                                   command_line=extra, namespace=options.namespace,
                                   parameter_overrides=overrides, context=context)
                self.nodes.append(node)
            # rclpy ignores an override no node declares: a misspelt key would silently
            # leave the default (a speed limit, a timeout) in force.
            problems = unknown_parameter_problems(
                file_keys, {spec.name: set(node.list_parameters([], 0).names)
                            for spec, node in zip(specs, self.nodes, strict=True)},
                whole_graph=runs_every_node(specs))
            if problems:
                raise ConfigError("unknown parameter(s): " + "; ".join(problems)
                                  + "; fix the name or remove it", params_file)
            features = [f for n in self.nodes if hasattr(n, "web_features")
                        for f in n.web_features()]
            for node in self.nodes:
                if hasattr(node, "add_web_features"):
                    node.add_web_features(features)
            self._link_sim_time()
            for node in self.nodes:
                self._spinners.add(node)
            for node in self.nodes:
                if hasattr(node, "start"):
                    node.start()
        except BaseException:
            self.close()
            raise

    def _navigator_odom_origin(self) -> dict[str, Any]:
        """The simulator's map -> odom for the navigator's `odom_origin` (a simulator with
        `odom_origin: start` starts odom at the robot's start pose, and a navigator left at
        [0, 0, 0] would put the robot at the map's origin, inside a wall); {} without one in
        this process: the navigator then follows the simulator's latched `sim/odom_origin`."""
        for node in self.nodes:
            if hasattr(node, "odom_origin_pose"):
                origin = node.odom_origin_pose()
                return {"odom_origin": [origin.x_m, origin.y_m, origin.yaw_rad]}
        return {}

    def _link_sim_time(self, nodes: Iterable[Any] | None = None) -> None:
        """Register every node on sim time with the simulator (see `add_time_consumer`)."""
        for sim in (n for n in self.nodes if hasattr(n, "add_time_consumer")):
            for node in (self.nodes if nodes is None else nodes):
                if node is not sim and node.get_parameter("use_sim_time").value:
                    sim.add_time_consumer(node.get_clock())

    def add_node(self, node: Any) -> None:
        """Spin one more node (a probe, a viewer) beside the stack's, in its own thread.

        A node on sim time also holds the simulator back at `--rtf max`, like the stack's own.
        """
        self._link_sim_time([node])
        self._spinners.add(node)

    def start_spinning(self) -> None:
        """Spin every node in a background thread; `close()` stops and joins them."""
        self._spinners.start()

    def spinning(self) -> bool:
        """True while every node's executor thread is alive."""
        return self._spinners.alive()

    def failure(self) -> str | None:
        """Why the stack can no longer run (an executor thread stopped, a node's own thread
        died), or None while it can."""
        if not self.spinning():
            return "a node's executor stopped unexpectedly"
        for node in self.nodes:
            problem = node.failure() if hasattr(node, "failure") else None
            if problem:
                return f"node {node.get_name()}: {problem}"
        return None

    def published_topics(self) -> list[str]:
        topics: set[str] = set()
        for node in self.nodes:
            for pub in node.publishers:
                if not pub.topic_name.startswith(("/rosout", "/parameter_events")):
                    topics.add(pub.topic_name)
        return sorted(topics)

    def urls(self) -> list[str]:
        return [u for n in self.nodes if hasattr(n, "urls") for u in n.urls()]

    def close(self) -> None:
        """Stop the executors, then every node (zero velocity), then destroy them. Idempotent."""
        self._spinners.close()
        for node in reversed(self.nodes):
            if hasattr(node, "close"):
                try:
                    node.close()
                except Exception:
                    log.exception("closing node %s failed", node.get_name())
        for node in reversed(self.nodes):
            try:
                node.destroy_node()
            except Exception:
                log.exception("destroying node failed")
        self.nodes.clear()


def run_stack(options: StackOptions, announce: bool = True) -> int:
    """Run the stack until Ctrl-C / SIGTERM; returns a process exit code."""
    from passeur.rosenv import configure_environment

    # The simulated robot stays on this machine; a real one talks to the network.
    configure_environment(local_only=options.profile == SIM)
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    stack: Stack | None = None
    try:
        stack = Stack(options)
        stack.start_spinning()
        if announce:
            ns = options.namespace or "/"
            print(f"passeur: {len(stack.nodes)} nodes running (profile {options.profile}, "
                  f"namespace {ns})", flush=True)
            print("publishing: " + " ".join(stack.published_topics()), flush=True)
            for url in stack.urls():
                print(f"open: {url}", flush=True)
            print("Ctrl-C to stop.", flush=True)
        while not stop.wait(0.2):
            problem = stack.failure()
            if problem is not None:
                print(f"passeur: {problem}; stopping", file=sys.stderr)
                return 1
        return 0
    finally:
        if stack is not None:
            stack.close()
        rclpy.try_shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if announce and stack is not None:
            print("passeur: stopped (zero velocity sent).", flush=True)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params-file", type=Path, default=None,
                        help="ROS 2 parameter file (default: config/passeur.yaml)")
    parser.add_argument("--namespace", default="", help="ROS namespace for every node")
    parser.add_argument("--nodes", default=None,
                        help="comma-separated subset of nodes to run (default: all)")
    parser.add_argument("--world", default=None, help="world name (library, chateau)")


def node_list(text: str | None) -> list[str] | None:
    """`--nodes` / `nodes:=` as names: "sim, safety" is ["sim", "safety"] (spaces around the
    commas and empty items are ignored); empty or None: None (every node of the profile)."""
    names = [name.strip() for name in (text or "").split(",")]
    return [name for name in names if name] or None


def options_from_args(args: argparse.Namespace, profile: str) -> StackOptions:
    common: dict[str, Any] = {}
    if args.world:
        common["world"] = args.world
    return StackOptions(
        profile=profile,
        params_file=args.params_file,
        namespace=args.namespace,
        only=node_list(args.nodes),
        common=common,
    )


def main(argv: list[str] | None = None) -> int:
    """`passeur_stack`: the whole graph in one process (used by the launch files)."""
    parser = argparse.ArgumentParser(prog="passeur_stack", description=__doc__)
    parser.add_argument("--profile", choices=[SIM, EXTERNAL], default=SIM)
    add_stack_arguments(parser)
    # ros2 launch/run may add `--ros-args ...`; parameters come from --params-file instead.
    # Anything else unknown is refused: a misspelt option (--param-file) must not leave the
    # default parameter file in force without a word.
    from rclpy.utilities import remove_ros_args

    given = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(remove_ros_args([parser.prog, *given])[1:])
    try:
        return run_stack(options_from_args(args, args.profile))
    except PasseurError as exc:
        print(f"passeur_stack: error: {exc}", file=sys.stderr)
        return 2
