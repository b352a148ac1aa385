"""The simulator node in the loop: rates, driving, turning, camera, obstacles, bad worlds.

Runs with real_time_factor 0 (as fast as possible) and measures everything in sim time.
"""

from __future__ import annotations

import math
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, LaserScan

from passeur.errors import ConfigError
from passeur.ros import qos
from passeur.ros.geometry import quaternion_to_yaw
from tests.support.ros_harness import StackHarness

ROOT = Path(__file__).resolve().parents[2]


#: Deep reliable queue: at 'as fast as possible' odom arrives faster than the probe spins.
ODOM_QOS = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)


def stamp_s(msg: Any) -> float:
    return float(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)


@pytest.fixture
def harness(ros_context: Any) -> Iterator[StackHarness]:
    with StackHarness(ros_context, nodes=["sim"],
                      per_node={"sim": {"real_time_factor": 0.0, "world": "library"}}) as h:
        h.subscribe("/clock", Clock, qos.SENSOR)
        yield h


def drive(h: StackHarness, linear: float, angular: float, sim_s: float,
          timeout_s: float = 120.0) -> None:
    """Keep commanding (v, w) until `sim_s` of sim time have passed, then stop."""
    start = h.sim_time_s()
    h.wait_until(lambda: (h.publish("cmd_vel", Twist(linear=_vec(linear), angular=_vec(z=angular)))
                          or h.sim_time_s() - start >= sim_s), timeout_s, f"{sim_s} s of driving")
    h.publish("cmd_vel", Twist())


def drive_while_moving(h: StackHarness, linear: float, angular: float, moving_s: float,
                       timeout_s: float = 120.0) -> None:
    """Command (v, w) until odom shows the base has been moving for `moving_s` of sim time.

    At 'as fast as possible' a command takes a variable amount of sim time to arrive, so the
    test times the motion by odom's own stamps rather than by when commands were sent.
    """
    def moved_long_enough() -> bool:
        h.publish("cmd_vel", Twist(linear=_vec(linear), angular=_vec(z=angular)))
        stamps = [stamp_s(m) for _w, m in h.history("odom")
                  if abs(m.twist.twist.linear.x) > 0.01 or abs(m.twist.twist.angular.z) > 0.05]
        return bool(stamps) and stamps[-1] - stamps[0] >= moving_s

    h.wait_until(moved_long_enough, timeout_s, f"{moving_s} s of motion")
    h.publish("cmd_vel", Twist())


def _vec(x: float = 0.0, z: float = 0.0) -> Any:
    from geometry_msgs.msg import Vector3

    return Vector3(x=float(x), y=0.0, z=float(z))


def odom_at(history: list[tuple[float, Any]], t_s: float) -> Any:
    """The odom message whose stamp is closest to t_s."""
    return min((m for _w, m in history), key=lambda m: abs(stamp_s(m) - t_s))


def test_topic_rates_match_configuration(ros_context: Any) -> None:
    """Every topic within 20 % of its configured rate, at the default real-time factor (1).
    While the simulator runs, the process's GIL switch interval is its parameter's (1 ms);
    closing it gives Python's back."""
    before = sys.getswitchinterval()
    with StackHarness(ros_context, nodes=["sim"],
                      per_node={"sim": {"real_time_factor": 1.0, "world": "library"}}) as h:
        assert sys.getswitchinterval() == pytest.approx(
            h.node("sim").get_parameter("gil_switch_interval_ms").value / 1000.0)
        assert sys.getswitchinterval() == pytest.approx(0.001)
        _check_rates(h)
    assert sys.getswitchinterval() == pytest.approx(before)


def _resolved(topic: str, namespace: str = "") -> str:
    return topic if topic.startswith("/") else f"{namespace.rstrip('/')}/{topic}"


def _check_rates(h: StackHarness) -> None:
    from passeur.sim.sim_node import ODOM_ORIGIN_TOPIC, PUBLISHED_TOPICS, TF_TOPICS

    sim = h.node("sim")
    # sim/odom_origin is for our navigator, not the robot's interface (beside Gazebo,
    # gazebo.launch.py gives the navigator its odom_origin).
    published = {p.topic_name for p in sim.publishers} - {
        "/rosout", "/parameter_events", _resolved(ODOM_ORIGIN_TOPIC),
        *(_resolved(t) for t in TF_TOPICS)}
    # what config/gz_bridge.yaml must offer too
    assert published == {_resolved(t) for t in PUBLISHED_TOPICS}
    rates = {name: float(sim.get_parameter(name).value)
             for name in ("clock_rate_hz", "odom_rate_hz", "scan_rate_hz", "camera_rate_hz")}
    assert rates["camera_rate_hz"] > 0.0
    # Images are big: keep their stamps only (a subscriber also makes the simulator render).
    image_stamps: list[float] = []
    lock = threading.Lock()

    def on_image(msg: Image) -> None:
        with lock:
            image_stamps.append(stamp_s(msg))

    h.probe.create_subscription(Image, "camera/image_raw", on_image, qos.SENSOR)
    h.subscribe("/clock", Clock, qos.SENSOR, keep_history=True)
    h.subscribe("scan", LaserScan, qos.SENSOR, keep_history=True)
    h.subscribe("odom", Odometry, keep_history=True)
    h.subscribe("camera/camera_info", CameraInfo, qos.SENSOR, keep_history=True)
    h.wait_until(lambda: bool(image_stamps) and h.latest("scan") is not None, 60.0,
                 "first image and scan")
    t0 = h.sim_time_s() + 0.2
    window_s = 4.0
    h.wait_sim_time(window_s + 0.5, timeout_s=60.0)

    def rate(stamps: list[float]) -> float:
        return len({t for t in stamps if t0 <= t < t0 + window_s}) / window_s

    def topic_rate(topic: str) -> float:
        return rate([stamp_s(m) for _w, m in h.history(topic)])

    clock = rate([m.clock.sec + m.clock.nanosec * 1e-9 for _w, m in h.history("/clock")])
    with lock:
        image = rate(image_stamps)
    measured = {"clock": clock, "odom": topic_rate("odom"), "scan": topic_rate("scan"),
                "camera/image_raw": image, "camera/camera_info": topic_rate("camera/camera_info")}
    expected = {"clock": rates["clock_rate_hz"], "odom": rates["odom_rate_hz"],
                "scan": rates["scan_rate_hz"], "camera/image_raw": rates["camera_rate_hz"],
                "camera/camera_info": rates["camera_rate_hz"]}
    for topic, hz in expected.items():
        assert measured[topic] == pytest.approx(hz, rel=0.2), (topic, measured)
    assert expected == {"clock": 100.0, "odom": 50.0, "scan": 10.0, "camera/image_raw": 15.0,
                        "camera/camera_info": 15.0}  # the documented defaults
    scan = h.latest("scan")
    assert len(scan.ranges) == 360
    assert scan.range_min == pytest.approx(0.12) and scan.range_max == pytest.approx(12.0)
    assert scan.header.frame_id == "lidar_link"
    finite = [r for r in scan.ranges if math.isfinite(r)]
    assert len(finite) > 300, "inside a closed library most beams must hit something"


def test_forward_0_3_mps_for_3_s_moves_0_9_m(harness: StackHarness) -> None:
    h = harness
    h.subscribe("odom", Odometry, ODOM_QOS, keep_history=True)
    h.wait_for_message("odom", Odometry)
    before = h.latest("odom")
    drive_while_moving(h, 0.3, 0.0, 3.5)
    history = h.history("odom")
    moving = [m for _w, m in history if m.twist.twist.linear.x > 0.01]
    assert moving, "the robot never moved"
    t_start = stamp_s(moving[0])
    a, b = odom_at(history, t_start), odom_at(history, t_start + 3.0)
    assert stamp_s(b) - stamp_s(a) == pytest.approx(3.0, abs=0.05)
    dist = math.hypot(b.pose.pose.position.x - a.pose.pose.position.x,
                      b.pose.pose.position.y - a.pose.pose.position.y)
    assert dist == pytest.approx(0.9, rel=0.1)
    # It drove forward (north, yaw pi/2 at the library's start) and odom agrees with truth.
    assert b.pose.pose.position.y > before.pose.pose.position.y + 0.8
    truth = h.node("sim").ground_truth_pose()
    h.wait_sim_time(1.0)
    last = h.latest("odom")
    truth = h.node("sim").ground_truth_pose()
    assert abs(last.pose.pose.position.y - truth.y_m) < 0.05
    assert abs(last.twist.twist.linear.x) < 0.02, "the robot must stop after the command ends"
    # Nobody subscribed to the camera: the simulator did not spend time rendering.
    assert h.node("sim").loop.stats.images == 0


def test_turning_in_place(harness: StackHarness) -> None:
    h = harness
    h.subscribe("odom", Odometry, ODOM_QOS, keep_history=True)
    h.wait_for_message("odom", Odometry)
    drive_while_moving(h, 0.0, 0.5, 2.5)
    history = h.history("odom")
    turning = [m for _w, m in history if m.twist.twist.angular.z > 0.05]
    assert turning, "the robot never turned"
    t_start = stamp_s(turning[0])
    a, b = odom_at(history, t_start), odom_at(history, t_start + 2.0)

    def yaw(m: Any) -> float:
        q = m.pose.pose.orientation
        return quaternion_to_yaw(q.x, q.y, q.z, q.w)

    turned = math.remainder(yaw(b) - yaw(a), 2 * math.pi)
    assert turned == pytest.approx(1.0, rel=0.15)
    moved = math.hypot(b.pose.pose.position.x - a.pose.pose.position.x,
                       b.pose.pose.position.y - a.pose.pose.position.y)
    assert moved < 0.05, "turning in place must not translate the base"


def test_camera_image_shows_the_world(harness: StackHarness, artifacts_dir: Path) -> None:
    import cv2

    h = harness
    msg = h.wait_for_message("camera/image_raw", Image, timeout_s=60.0, qos=qos.SENSOR)
    info = h.wait_for_message("camera/camera_info", CameraInfo, timeout_s=30.0, qos=qos.SENSOR)
    assert (msg.width, msg.height, msg.encoding) == (640, 480, "rgb8")
    assert msg.header.frame_id == "camera_optical_link"
    assert info.k[0] == pytest.approx(554.3, abs=1.0)
    rgb = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(480, 640, 3)
    path = artifacts_dir / "sim_camera_library_start.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert path.stat().st_size > 1000
    gray = rgb.astype(np.float64).mean(axis=2)
    # Structured, not flat and not noise: large variance across the image, small between
    # neighbouring pixels (flat-shaded surfaces).
    assert gray.std() > 20.0
    neighbour = np.abs(np.diff(gray, axis=1)).mean()
    assert neighbour < 0.1 * gray.std()
    # The floor (bottom rows, brown wood) differs from what is at eye level and above.
    floor = rgb[440:, :, :].reshape(-1, 3).mean(axis=0)
    upper = rgb[:120, :, :].reshape(-1, 3).mean(axis=0)
    assert np.linalg.norm(floor - upper) > 40.0
    assert floor[0] > floor[2], "the library floor is warm wood, red above blue"
    # Many distinct colours: walls, shelves, furniture, floor.
    quantised = {tuple(c) for c in (rgb[::8, ::8] // 32).reshape(-1, 3)}
    assert len(quantised) >= 5


def test_obstacle_placed_ahead_is_seen_and_touched(harness: StackHarness) -> None:
    h = harness
    sim = h.node("sim")
    start = sim.ground_truth_pose()
    # 1.2 m ahead of the robot (the library start faces north).
    ox = start.x_m + 1.2 * math.cos(start.yaw_rad)
    oy = start.y_m + 1.2 * math.sin(start.yaw_rad)
    sim.place_obstacle(0, ox, oy)
    h.wait_sim_time(0.3)
    scan = h.wait_for_message("scan", LaserScan, qos=qos.SENSOR)
    t_placed = h.sim_time_s()
    h.wait_until(lambda: stamp_s(h.latest("scan")) > t_placed, 60.0, "a fresh scan")
    scan = h.latest("scan")
    front = scan.ranges[len(scan.ranges) // 2]  # angle 0 (angle_min = -pi)
    # Lidar 0.10 m ahead of base_link, box face 0.2 m before its centre.
    assert front == pytest.approx(1.2 - 0.10 - 0.2, abs=0.05)
    assert not sim.robot_in_contact()
    assert sim.robot_contact_steps() == 0
    # Without the safety node nothing stops the base: it must touch the box.
    h.wait_until(lambda: (h.publish("cmd_vel", Twist(linear=_vec(0.3)))
                          or sim.robot_in_contact()), 120.0, "contact with the obstacle")
    h.publish("cmd_vel", Twist())
    assert sim.robot_contact_steps() > 0
    sim.park_obstacle(0)


def test_malformed_world_is_refused_with_the_file_named(ros_context: Any, tmp_path: Path) -> None:
    bad = tmp_path / "broken.sdf"
    bad.write_text("<sdf version='1.9'><world name='w'><model name='m'><static>true</static>"
                   "<link name='l'><collision name='c'><geometry><box><size>1 1</size></box>"
                   "</geometry></collision></link></model></world></sdf>")
    with pytest.raises(ConfigError) as info:
        StackHarness(ros_context, nodes=["sim"], per_node={"sim": {"world": str(bad)}})
    message = str(info.value)
    assert str(bad) in message and "model 'm'" in message and "expected 3" in message


def test_cli_reports_a_bad_world_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "unclosed.sdf"
    bad.write_text("<sdf version='1.9'><world name='w'>")
    result = subprocess.run(
        [sys.executable, "-m", "passeur.cli", "sim", "--world", str(bad), "--nodes", "sim"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr and "not well-formed XML" in result.stderr


def test_the_navigator_follows_the_simulators_odom_origin(ros_context: Any,
                                                          tmp_path: Path) -> None:
    """With the simulator's odom_origin 'start' (odom at 0 at robot_start, as on a real
    robot), the navigator must place the robot at robot_start, not at the map's origin (a
    wall corner: every goal failed with 'the robot is inside an obstacle')."""
    sim = {"real_time_factor": 0.0, "camera_rate_hz": 0.0, "odom_origin": "start"}
    with StackHarness(ros_context, nodes=["sim", "navigator"], per_node={"sim": sim}) as h:
        start = h.node("sim").start_pose
        assert (start.x_m, start.y_m) == (10.0, 2.0)  # library's robot_start
        navigator = h.node("navigator")
        h.wait_until(lambda: navigator.pose() is not None, 30.0, "the navigator's pose")
        pose = navigator.pose()
        assert (pose.x_m, pose.y_m) == pytest.approx((start.x_m, start.y_m), abs=0.02)
        assert pose.yaw_rad == pytest.approx(start.yaw_rad, abs=0.02)
    # A parameter file that sets the navigator's odom_origin keeps it (a localiser's set-up).
    params = tmp_path / "own.yaml"
    params.write_text("/**/navigator:\n  ros__parameters:\n    odom_origin: [1.0, 2.0, 0.0]\n",
                      encoding="utf-8")
    from passeur.bringup import Stack, StackOptions

    stack = Stack(StackOptions(params_file=params, only=["sim", "navigator"],
                               per_node={"sim": sim}), context=ros_context)
    try:
        assert stack.nodes[1].odom_origin == (1.0, 2.0, 0.0)
    finally:
        stack.close()


def test_a_navigator_in_another_process_follows_the_simulators_odom_origin(
        ros_context: Any) -> None:
    """With the simulator in a process of its own (`sim.launch.py split_processes:=true`, or
    `passeur sim --nodes sim` beside `--nodes navigator,...`), its odom_origin 'start' never
    reached the navigator: the robot was placed at the map's origin (a wall corner: every goal
    failed, the pages drew it there). A context of its own is a DDS participant of its own,
    found by discovery as another process would be."""
    import rclpy
    from rclpy.context import Context

    from passeur.bringup import Stack, StackOptions

    sim_cfg = {"real_time_factor": 1.0, "camera_rate_hz": 0.0, "odom_origin": "start"}
    nav_context = Context()
    rclpy.init(context=nav_context)
    try:
        with StackHarness(ros_context, nodes=["sim"], per_node={"sim": sim_cfg}) as h:
            start = h.node("sim").start_pose
            stack = Stack(StackOptions(only=["navigator"]), context=nav_context)
            try:
                stack.start_spinning()
                navigator = stack.nodes[0]

                def placed() -> bool:
                    pose = navigator.pose()
                    return pose is not None and pose.distance_to(start) < 0.05

                h.wait_until(lambda: navigator.pose() is not None, 30.0, "odometry")
                h.wait_until(placed, 10.0, f"the robot at robot_start, not at {navigator.pose()}")
                assert navigator.pose().yaw_rad == pytest.approx(start.yaw_rad, abs=0.05)
                offset = navigator.status_values()["odom_in_map"]  # what the pages use
                assert [float(v) for v in offset.split(",")] == pytest.approx(
                    [start.x_m, start.y_m, start.yaw_rad], abs=1e-3)
            finally:
                stack.close()
    finally:
        rclpy.try_shutdown(context=nav_context)


def test_a_second_clock_on_the_domain_is_reported(ros_context: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Two simulators on one ROS domain (`passeur sim` twice, or beside Gazebo's bridge) both
    published /clock and nothing said so: every node on sim time saw time jump back and
    forth. The simulator now logs an error naming the other publisher and the fix."""
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    from passeur.sim import sim_node

    monkeypatch.setattr(sim_node, "CLOCK_CHECK_PERIOD_S", 0.1)
    sim_cfg = {"real_time_factor": 1.0, "camera_rate_hz": 0.0}
    with StackHarness(ros_context, nodes=["sim"], per_node={"sim": sim_cfg}) as h:
        sim = h.node("sim")
        errors: list[str] = []
        logger = sim.get_logger()

        class Recorder:
            def __getattr__(self, name: str) -> Any:
                return getattr(logger, name)

            def error(self, message: str, **kwargs: Any) -> bool:
                errors.append(message)
                return bool(logger.error(message, **kwargs))

        monkeypatch.setattr(sim, "get_logger", Recorder)
        # Alone (the probe only listens): no complaint, however many checks.
        h.wait_sim_time(0.5, timeout_s=30.0)
        assert sim.clock_conflict() is None and errors == []
        # A Gazebo bridge on the same domain: a context of its own is a DDS participant of its
        # own, found by discovery as another process would be.
        other_context = Context()
        rclpy.init(context=other_context)
        other = Node("ros_gz_bridge", context=other_context)
        try:
            other.create_publisher(Clock, "/clock", 10)
            # (Logged at once, and again when the graph learns the node's name.)
            h.wait_until(lambda: any("/ros_gz_bridge" in e for e in errors), 10.0,
                         "the simulator's error naming the other publisher")
            message = errors[-1]
            assert "/sim" not in message
            assert f"ROS_DOMAIN_ID {ros_context.get_domain_id()}" in message
            assert "export ROS_DOMAIN_ID=" in message
            assert sim.clock_conflict() == message
            said = len(errors)
            h.wait_sim_time(0.5, timeout_s=30.0)
            assert len(errors) == said, "said once, not at every check (again every 30 s)"
            assert sim.loop is not None and sim.failure() is None, "the simulator keeps running"
        finally:
            other.destroy_node()
            rclpy.try_shutdown(context=other_context)
        h.wait_until(lambda: sim.clock_conflict() is None, 10.0, "the conflict to clear")


def test_another_simulator_of_the_same_name_counts_as_another_clock() -> None:
    from passeur.sim.clock_check import full_name, other_publishers

    assert full_name("/", "sim") == "/sim" and full_name("/robot1", "sim") == "/robot1/sim"
    assert full_name("_NODE_NAMESPACE_UNKNOWN_", "_NODE_NAME_UNKNOWN_") == \
        "a publisher whose node is not known yet"
    assert other_publishers(["/sim"], "/sim") == []
    assert other_publishers(["/sim", "/sim"], "/sim") == ["/sim"]  # `passeur sim` twice
    assert other_publishers(["/sim", "/robot1/sim"], "/robot1/sim") == ["/sim"]


def test_passeur_sim_exits_when_the_simulator_stops(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The simulator's loop thread failing froze the clock, odometry and scans (every node on
    sim time with it) while `passeur sim` went on running as if nothing had happened."""
    import os
    import signal
    import time

    from passeur.bringup import StackOptions, run_stack
    from passeur.sim.simulator import Simulator

    def diverged(self: Simulator, n: int = 1) -> None:
        raise RuntimeError("physics diverged")

    monkeypatch.setattr(Simulator, "step", diverged)
    # Before the fix run_stack never returned: a deadline turns that into a failure.
    deadline = threading.Timer(60.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    deadline.start()
    started = time.monotonic()
    try:
        code = run_stack(StackOptions(only=["sim", "safety"], per_node={
            "sim": {"real_time_factor": 0.0, "camera_rate_hz": 0.0}}), announce=False)
    finally:
        deadline.cancel()
    assert code == 1, f"run_stack returned {code} after {time.monotonic() - started:.1f} s"
    assert ("passeur: node sim: the simulator stopped: physics diverged; stopping"
            in capsys.readouterr().err)
