"""Run part or all of the stack in-process and observe it from a probe node.

    with StackHarness(ros_context, nodes=["sim", "safety"], per_node={"sim": {...}}) as h:
        h.publish("cmd_vel/teleop", Twist(...))
        odom = h.wait_for_message("odom", Odometry, timeout_s=10)
        h.wait_until(lambda: h.latest("odom") is not None, timeout_s=10)

Everything waits on a deadline, never a fixed sleep. Sim time: `h.sim_time_s()` reads the last
`/clock` message (absolute: the clock is shared by every namespace).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile

from passeur.bringup import SIM, Stack, StackOptions
from passeur.ros import qos as qos_profiles

#: Where sim time is published (rclpy's TimeSource listens there, whatever the namespace).
CLOCK_TOPIC = "/clock"


class StackHarness:
    def __init__(
        self,
        context: Any,
        nodes: Sequence[str] | None = None,
        *,
        profile: str = SIM,
        common: dict[str, Any] | None = None,
        per_node: dict[str, dict[str, Any]] | None = None,
        namespace: str = "",
    ) -> None:
        self.context = context
        options = StackOptions(profile=profile, namespace=namespace, only=nodes,
                               common=dict(common or {}), per_node=dict(per_node or {}))
        self.stack = Stack(options, context=context)
        # With the simulator in the graph the probe runs on sim time too, so that (as fast as
        # possible) the simulator waits for the probe as for any node: what the probe sends
        # and measures keeps a bounded sim-time latency however loaded the machine.
        sim_time = any(n.get_name() == "sim" for n in self.stack.nodes)
        self.probe = Node("test_probe", namespace=namespace, context=context,
                          parameter_overrides=[Parameter("use_sim_time", value=sim_time)])
        self.stack.add_node(self.probe)
        self._lock = threading.Lock()
        self._latest: dict[str, Any] = {}
        self._history: dict[str, list[tuple[float, Any]]] = {}
        self._publishers: dict[str, Any] = {}
        self.stack.start_spinning()

    # -- observing -------------------------------------------------------------------------
    def subscribe(self, topic: str, msg_type: type, qos: QoSProfile | None = None,
                  keep_history: bool = False) -> None:
        """Record the latest message (and optionally all, with wall-clock arrival time)."""
        if topic in self._latest or topic in self._history:
            return

        def on_msg(msg: Any) -> None:
            with self._lock:
                self._latest[topic] = msg
                if keep_history:
                    self._history.setdefault(topic, []).append((time.monotonic(), msg))

        if keep_history:
            self._history[topic] = []
        self.probe.create_subscription(msg_type, topic, on_msg, qos or qos_profiles.STATUS)

    def latest(self, topic: str) -> Any:
        with self._lock:
            return self._latest.get(topic)

    def history(self, topic: str) -> list[tuple[float, Any]]:
        with self._lock:
            return list(self._history.get(topic, []))

    def wait_for_message(self, topic: str, msg_type: type, timeout_s: float = 10.0,
                         qos: QoSProfile | None = None) -> Any:
        self.subscribe(topic, msg_type, qos)
        self.wait_until(lambda: self.latest(topic) is not None, timeout_s,
                        f"no message on '{topic}'")
        return self.latest(topic)

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float,
                   what: str = "condition") -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.005)
        raise TimeoutError(f"timed out after {timeout_s:.1f} s waiting for {what}")

    def sim_time_s(self) -> float:
        clock = self.latest(CLOCK_TOPIC)
        if clock is None:
            from rosgraph_msgs.msg import Clock

            clock = self.wait_for_message(CLOCK_TOPIC, Clock, qos=qos_profiles.SENSOR)
        return float(clock.clock.sec + clock.clock.nanosec * 1e-9)

    def wait_sim_time(self, duration_s: float, timeout_s: float = 60.0) -> None:
        start = self.sim_time_s()
        self.wait_until(lambda: self.sim_time_s() - start >= duration_s, timeout_s,
                        f"{duration_s} s of sim time")

    # -- acting ----------------------------------------------------------------------------
    def publish(self, topic: str, msg: Any, qos: QoSProfile | None = None) -> None:
        self._publisher(topic, msg, qos).publish(msg)

    def publish_once(self, topic: str, msg: Any, qos: QoSProfile | None = None,
                     timeout_s: float = 10.0) -> None:
        """Publish one message once someone subscribes (reliable QoS then delivers it):
        for state messages that must not keep arriving after the test has moved on."""
        pub = self._publisher(topic, msg, qos)
        self.wait_until(lambda: pub.get_subscription_count() > 0, timeout_s,
                        f"a subscriber on '{topic}'")
        pub.publish(msg)

    def _publisher(self, topic: str, msg: Any, qos: QoSProfile | None) -> Any:
        pub = self._publishers.get(topic)
        if pub is None:
            pub = self.probe.create_publisher(type(msg), topic, qos or qos_profiles.COMMAND)
            self._publishers[topic] = pub
        return pub

    def node(self, name: str) -> Any:
        for n in self.stack.nodes:
            if n.get_name() == name:
                return n
        raise KeyError(name)

    def close(self) -> None:
        self.stack.close()
        self.probe.destroy_node()

    def __enter__(self) -> StackHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
