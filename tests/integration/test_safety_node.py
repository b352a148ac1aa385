"""SafetyNode on its own, against a scripted clock and lidar (no simulator).

The test drives `/clock` itself (sim time, slower than real time so that a loaded machine does
not distort the sim-time measurements) and publishes scans of a wall at a chosen distance.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import Twist
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Bool
from std_srvs.srv import SetBool

from passeur.errors import ConfigError
from passeur.ros import qos
from tests.support.ros_harness import StackHarness

TICK_S = 1.0 / 30.0  # config/passeur.yaml rate_hz


def twist(v: float, w: float = 0.0) -> Twist:
    msg = Twist()
    msg.linear.x = v
    msg.angular.z = w
    return msg


class FakeWorld:
    """Publishes `/clock` (2 ms of sim time every 5 ms) and a 360-beam scan every 100 ms of sim
    time showing a wall `wall_m` ahead of the lidar (None: nothing in range)."""

    def __init__(self, h: StackHarness) -> None:
        self.h = h
        self.wall_m: float | None = None
        self.scanning = True
        self.now_ns = 1_000_000_000
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clock_pub = h.probe.create_publisher(Clock, "/clock", qos.SENSOR)
        self._scan_pub = h.probe.create_publisher(LaserScan, "scan", qos.SENSOR)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now_s(self) -> float:
        with self._lock:
            return self.now_ns * 1e-9

    def _scan(self) -> LaserScan:
        msg = LaserScan()
        msg.header.frame_id = "lidar_link"
        msg.angle_min = -math.pi
        msg.angle_increment = 2 * math.pi / 360
        msg.angle_max = msg.angle_min + 359 * msg.angle_increment
        msg.range_min, msg.range_max = 0.12, 12.0
        ranges = []
        for i in range(360):
            a = msg.angle_min + i * msg.angle_increment
            if self.wall_m is not None and math.cos(a) > 0.05:
                ranges.append(min(self.wall_m / math.cos(a), math.inf))
            else:
                ranges.append(math.inf)
        msg.ranges = [r if r < 12.0 else math.inf for r in ranges]
        return msg

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            with self._lock:
                self.now_ns += 2_000_000
                now = self.now_ns
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = divmod(now, 1_000_000_000)
            self._clock_pub.publish(clock)
            if self.scanning and now % 100_000_000 == 0:
                self._scan_pub.publish(self._scan())

    def __enter__(self) -> FakeWorld:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)


@pytest.fixture
def rig(ros_context: Any) -> Iterator[tuple[StackHarness, FakeWorld, list[tuple[float, Twist]]]]:
    with StackHarness(ros_context, nodes=["safety"]) as h, FakeWorld(h) as world:
        received: list[tuple[float, Twist]] = []
        h.probe.create_subscription(Twist, "cmd_vel",
                                    lambda m: received.append((world.now_s(), m)), qos.COMMAND)
        h.subscribe("safety/status", DiagnosticStatus)
        h.subscribe("estop/state", Bool, qos.LATCHED)
        yield h, world, received


def last_cmd(received: list[tuple[float, Twist]]) -> Twist | None:
    return received[-1][1] if received else None


def status_values(h: StackHarness) -> dict[str, str]:
    msg = h.latest("safety/status")
    return {kv.key: kv.value for kv in msg.values} if msg else {}


def drive(h: StackHarness, topic: str, msg: Twist, until: Any, timeout_s: float = 20.0) -> None:
    """Keep publishing `msg` on `topic` every 20 ms until `until()` holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        h.publish(topic, msg)
        if until():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out driving {topic}; status {status_values(h)}")


def test_no_scan_no_translation_and_status_says_why(rig: Any) -> None:
    h, world, received = rig
    world.scanning = False
    drive(h, "cmd_vel/teleop", twist(0.3, 0.5),
          lambda: status_values(h).get("source") == "teleop")
    vals = status_values(h)
    assert vals["reason"] == "scan_timeout"
    assert h.latest("safety/status").level == DiagnosticStatus.ERROR
    cmd = last_cmd(received)
    assert cmd is not None and cmd.linear.x == 0.0
    assert cmd.angular.z > 0.0  # a round base may still turn in place


def test_teleop_drives_with_acceleration_limit_and_beats_navigation(rig: Any) -> None:
    h, world, received = rig
    drive(h, "cmd_vel/nav", twist(0.2), lambda: status_values(h).get("source") == "nav")
    drive(h, "cmd_vel/nav", twist(0.2),
          lambda: (c := last_cmd(received)) is not None and abs(c.linear.x - 0.2) < 1e-6)
    def both() -> bool:
        h.publish("cmd_vel/nav", twist(0.2))
        c = last_cmd(received)
        return c is not None and abs(c.linear.x - 0.4) < 1e-6
    drive(h, "cmd_vel/teleop", twist(0.4), both)
    # (the status of that tick may trail its command: another topic)
    h.wait_until(lambda: status_values(h).get("source") == "teleop", 5.0, "status 'teleop'")
    # acceleration limit: no step between consecutive outputs above a * dt (+1 tick of slack)
    xs = [(t, m.linear.x) for t, m in received]
    for (t0, v0), (t1, v1) in zip(xs, xs[1:], strict=False):
        assert v1 - v0 <= 1.0 * max(t1 - t0, TICK_S) * 2 + 1e-6
    # over the limit: clamped
    drive(h, "cmd_vel/teleop", twist(3.0), lambda: status_values(h).get("reason") == "speed_limit")
    assert max(m.linear.x for _, m in received) <= 0.5 + 1e-9


def test_estop_overrides_within_100_ms_and_service_releases(rig: Any) -> None:
    h, world, received = rig
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x > 0.29)
    t_estop = world.now_s()
    h.publish("estop", Bool(data=True), qos.LATCHED)
    def stopped() -> bool:
        h.publish("cmd_vel/teleop", twist(0.3))
        return any(t >= t_estop and m.linear.x == 0.0 for t, m in received)
    h.wait_until(stopped, 20.0, "zero after e-stop")
    t_zero = min(t for t, m in received if t >= t_estop and m.linear.x == 0.0)
    assert t_zero - t_estop <= 0.1
    h.wait_until(lambda: (s := h.latest("estop/state")) is not None and s.data, 10.0, "estop/state")
    # e-stop holds against a pilot still pressing forward
    drive(h, "cmd_vel/teleop", twist(0.3), lambda: world.now_s() > t_estop + 0.5)
    assert all(m.linear.x == 0.0 for t, m in received if t > t_zero + 0.01)
    assert status_values(h)["source"] == "estop"
    # released through the service
    client = h.probe.create_client(SetBool, "estop/set")
    assert client.wait_for_service(timeout_sec=10.0)
    future = client.call_async(SetBool.Request(data=False))
    h.wait_until(future.done, 10.0, "estop/set reply")
    assert future.result().success
    h.wait_until(lambda: not h.latest("estop/state").data, 10.0, "estop/state false")
    # The pilot still pressing forward does not move the robot (IEC 60204-1): held at zero
    t_release = world.now_s()
    drive(h, "cmd_vel/teleop", twist(0.3), lambda: world.now_s() > t_release + 0.5)
    assert all(m.linear.x == 0.0 for t, m in received if t > t_release)
    assert status_values(h)["reason"] == "let_go_first"
    # until it lets go (a zero: depth-1 commands, so until the safety node has it) and
    # presses again
    drive(h, "cmd_vel/teleop", twist(0.0), lambda: status_values(h)["reason"] != "let_go_first")
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x > 0.29)


@pytest.mark.parametrize("durability", ["volatile", "transient_local"])
def test_estop_from_latched_and_default_qos_publishers(rig: Any, durability: str) -> None:
    """A hardware button driver publishes with default (volatile) QoS, staff tools latched:
    both must reach the safety node (DDS drops volatile -> transient-local silently)."""
    h, world, received = rig
    profile = qos.LATCHED if durability == "transient_local" else qos.ROS_DEFAULT
    pub = h.probe.create_publisher(Bool, "estop", profile)
    h.wait_until(lambda: pub.get_subscription_count() > 0, 10.0,
                 f"the safety node matching a {durability} e-stop publisher")
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x > 0.29)
    pub.publish(Bool(data=True))
    h.wait_until(lambda: (s := h.latest("estop/state")) is not None and s.data, 10.0,
                 "e-stop engaged")
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x == 0.0)
    assert h.node("safety").estop
    pub.publish(Bool(data=False))
    h.wait_until(lambda: not h.node("safety").estop and not h.latest("estop/state").data,
                 10.0, "e-stop released")
    # let go (a command held since before the release stays at zero until then)
    drive(h, "cmd_vel/teleop", twist(0.0), lambda: status_values(h)["reason"] != "let_go_first")
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x > 0.29)


def test_silent_teleop_is_zero_after_the_timeout(rig: Any) -> None:
    h, world, received = rig
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x > 0.29)
    h.publish("cmd_vel/teleop", twist(0.3))
    t_last = world.now_s()
    h.wait_until(lambda: any(t > t_last and m.linear.x == 0.0 for t, m in received), 20.0,
                 "zero after silence")
    t_zero = min(t for t, m in received if t > t_last and m.linear.x == 0.0)
    # Zero at 300 ms of silence (the node's one-shot silence timer), not at the next tick; at
    # most one tick for delivery both ways and the clock's 2 ms steps. The lower bound allows
    # for the node's clock trailing the world's by a few steps when the command arrived.
    assert 0.3 - 0.01 <= t_zero - t_last <= 0.3 + TICK_S
    # The status goes out in the same tick, just after the command, on another topic: its
    # delivery may trail the command's.
    h.wait_until(lambda: status_values(h).get("source") == "none", 5.0,
                 "status source 'none' after silence")


def test_wall_inside_stop_zone_blocks_forward_allows_backing(rig: Any) -> None:
    h, world, received = rig
    # lidar 0.10 m ahead of base_link: wall 0.30 m from the lidar is 0.155 m from the
    # padded footprint, inside the stop zone at 0.3 m/s
    world.wall_m = 0.30
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: status_values(h).get("reason") in ("stop_zone", "slowdown_zone")
          and float(status_values(h)["closest_obstacle_m"]) < 0.3)
    t0 = world.now_s()
    drive(h, "cmd_vel/teleop", twist(0.3), lambda: world.now_s() > t0 + 0.3)
    recent = [m.linear.x for t, m in received[-5:]]
    assert max(recent) <= 0.1  # at most a creep towards the edge of the stop margin
    world.wall_m = 0.20  # now within the stop margin: nothing forward at all
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x == 0.0)
    drive(h, "cmd_vel/teleop", twist(-0.2),
          lambda: (c := last_cmd(received)) is not None and c.linear.x < -0.19)


def test_scans_stopping_stops_the_robot(rig: Any) -> None:
    h, world, received = rig
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x > 0.29)
    world.scanning = False
    t_off = world.now_s()
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x == 0.0)
    t_zero = min(t for t, m in received if t > t_off and m.linear.x == 0.0)
    assert t_zero - t_off <= 0.5 + 0.1 + 2 * TICK_S  # scan_timeout_s after the last scan
    h.wait_until(lambda: status_values(h).get("reason") == "scan_timeout", 10.0, "status")


def test_close_publishes_zero_and_is_idempotent(rig: Any) -> None:
    h, world, received = rig
    drive(h, "cmd_vel/teleop", twist(0.3),
          lambda: (c := last_cmd(received)) is not None and c.linear.x > 0.29)
    node = h.node("safety")
    node.close()
    node.close()
    h.wait_until(lambda: last_cmd(received).linear.x == 0.0, 10.0, "final zero")
    n = len(received)
    world_time = world.now_s()
    h.wait_until(lambda: world.now_s() > world_time + 0.3, 10.0, "time passing")
    h.publish("cmd_vel/teleop", twist(0.3))
    assert all(m.linear.x == 0.0 for _, m in received[n - 1:])


def test_bad_parameter_is_a_clear_error(ros_context: Any) -> None:
    with pytest.raises(ConfigError, match="footprint_shape"):
        StackHarness(ros_context, nodes=["safety"],
                     per_node={"safety": {"footprint_shape": "triangle"}})
    with pytest.raises(ConfigError, match="footprint_polygon"):
        StackHarness(ros_context, nodes=["safety"],
                     per_node={"safety": {"footprint_shape": "polygon",
                                          "footprint_polygon": [0.1, 0.1, 0.2, 0.2]}})


def test_run_time_parameter_changes_apply_or_are_refused(rig: Any) -> None:
    from rclpy.parameter import Parameter

    h, world, received = rig
    node = h.node("safety")
    result = node.set_parameters([Parameter("max_linear_mps", value=0.2)])[0]
    assert result.successful
    drive(h, "cmd_vel/teleop", twist(0.4),
          lambda: (c := last_cmd(received)) is not None and abs(c.linear.x - 0.2) < 1e-6)
    bad = node.set_parameters([Parameter("footprint_shape", value="triangle")])[0]
    assert not bad.successful and "footprint_shape" in bad.reason
    assert node.get_parameter("footprint_shape").value == "circle"
    fixed = node.set_parameters([Parameter("rate_hz", value=10.0)])[0]
    assert not fixed.successful  # read-only: the timer is built once


def test_every_shipped_safety_parameter_is_declared(rig: Any) -> None:
    from passeur.paths import share_dir
    from passeur.ros.params import load_parameter_file

    h, _world, _received = rig
    node = h.node("safety")
    shipped = {p.name for p in load_parameter_file(share_dir() / "config" / "passeur.yaml",
                                                   "safety")}
    common = {"world"}  # `/**` values for every node; safety has no use for them
    undeclared = {n for n in shipped - common if not node.has_parameter(n)}
    assert not undeclared, f"config/passeur.yaml sets unknown safety parameters {undeclared}"
    for name in node._parameter_names:
        assert node.describe_parameter(name).description, name
