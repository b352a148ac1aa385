"""TelepresenceNode in a ROS graph: camera -> WebRTC video, data channel -> cmd_vel/teleop,
watchdog, disconnects, parameters. A probe node plays the camera and odometry."""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from typing import Any

import aiohttp
import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Empty, String

from passeur.errors import ConfigError
from passeur.ros import qos
from passeur.telepresence.access import hash_password
from tests.integration.test_telepresence_server import PASSWORD, Client
from tests.support.ros_harness import StackHarness

PARAMS = {"http_port": 0, "ice_host_addresses": "127.0.0.1",
          "staff_password_hash": hash_password(PASSWORD, n=2**10),
          "audio_mic": "silence", "audio_speaker": "none", "use_sim_time": False}


def image(i: int) -> Image:
    img = np.zeros((480, 640, 3), np.uint8)
    img[:, :, 0] = np.linspace(0, 255, 640, dtype=np.uint8)[None, :]
    img[:, :, 1] = (i * 5) % 256
    msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3)
    msg.header.frame_id = "camera_optical_link"
    msg.data = img.tobytes()
    return msg


def camera_info() -> CameraInfo:
    f = 240 / math.tan(math.radians(30))
    msg = CameraInfo(width=640, height=480)
    msg.k = [f, 0.0, 319.5, 0.0, f, 239.5, 0.0, 0.0, 1.0]
    return msg


@pytest.fixture
def harness(ros_context: Any) -> Any:
    h = StackHarness(ros_context, nodes=["telepresence"], per_node={"telepresence": PARAMS},
                     common={"use_sim_time": False})
    yield h
    h.close()


async def pilot(base: str, http: aiohttp.ClientSession) -> Client:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as staff:
        await staff.post(f"{base}/api/staff/login", json={"password": PASSWORD})
        code = (await (await staff.post(f"{base}/api/staff/codes",
                                        json={"role": "pilot"})).json())["code"]
    assert (await http.post(f"{base}/api/session", json={"code": code})).status == 200
    client = Client(http, base)
    assert (await client.connect()).status == 200
    await client.wait_for(lambda m: m["type"] == "hello")
    return client


async def until(pred: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(what)


async def test_video_drive_watchdog_and_disconnect(harness: StackHarness) -> None:
    node = harness.node("telepresence")
    base = node.server.base_url
    harness.subscribe("cmd_vel/teleop", Twist, qos.COMMAND, keep_history=True)
    harness.subscribe("goal_place", String, qos.COMMAND)
    harness.subscribe("goal_pose", PoseStamped, qos.COMMAND)
    harness.subscribe("navigation/cancel", Empty, qos.COMMAND)
    stop_feed = asyncio.Event()

    async def feed() -> None:
        i = 0
        while not stop_feed.is_set():
            harness.publish("camera/image_raw", image(i), qos.SENSOR)
            harness.publish("camera/camera_info", camera_info(), qos.SENSOR)
            odom = Odometry()
            odom.pose.pose.orientation.w = 1.0
            harness.publish("odom", odom, qos.SENSOR)
            i += 1
            await asyncio.sleep(1 / 15)

    feeder = asyncio.ensure_future(feed())
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        client = await pilot(base, http)
        try:
            await until(lambda: len(client.frames) >= 5, 30, "video frames")
            frame = client.frames[-1]
            assert frame[10, 630, 0] > 200 and frame[10, 10, 0] < 40  # the camera's picture
            # Hold forward: repeated commands -> cmd_vel/teleop forward.
            for _ in range(5):
                client.send({"type": "drive", "direction": "forward", "speed_level": 3})
                await asyncio.sleep(0.1)
            hist = harness.history("cmd_vel/teleop")
            assert any(m.linear.x == pytest.approx(node.limits.levels[2].linear_mps)
                       for _, m in hist)
            # Release (silence): the watchdog publishes zero within 300 ms (+ slack).
            silent_at = time.monotonic()
            await until(lambda: (harness.latest("cmd_vel/teleop").linear.x == 0.0), 3,
                        "zero after silence")
            zero_after = [t for t, m in harness.history("cmd_vel/teleop")
                          if m.linear.x == 0.0 and t >= silent_at]
            assert zero_after and zero_after[0] - silent_at < 0.3 + 0.2
            # Goals.
            client.send({"type": "goto_place", "id": "reading_corner"})
            await until(lambda: harness.latest("goal_place") is not None, 5, "goal_place")
            goal_place = json.loads(harness.latest("goal_place").data)
            assert goal_place["place"] == "reading_corner" and goal_place["request_id"]
            client.send({"type": "goto_pixel", "u": 320, "v": 470})
            await until(lambda: harness.latest("goal_pose") is not None, 5, "goal_pose")
            goal = harness.latest("goal_pose")
            assert goal.header.frame_id == "map" and 0.5 < goal.pose.position.x < 5.0
            assert abs(goal.pose.position.y) < 0.1
            client.send({"type": "goto_pixel", "u": 320, "v": 5})  # above the horizon
            await client.wait_for(lambda m: m.get("code") == "not_floor")
            # Hostile input: refused or clamped, never more than the configured limits.
            t_h = time.monotonic()
            for raw in ('{"type":"drive","linear":NaN}', '{"type":"drive","linear":"9"}',
                        "x" * 4000, '{"type":"teleport"}'):
                client.send(raw)
            await client.wait_for(lambda m: m.get("code") == "unknown_type")
            assert not [m for t, m in harness.history("cmd_vel/teleop")
                        if t >= t_h and m.linear.x != 0]
            client.send({"type": "drive", "linear": 1e308, "angular": -1e308})
            await until(lambda: any(t >= t_h and m.linear.x > 0
                                    for t, m in harness.history("cmd_vel/teleop")), 5, "clamped")
            fast = [m for t, m in harness.history("cmd_vel/teleop") if t >= t_h]
            assert max(m.linear.x for m in fast) == pytest.approx(node.limits.max_linear_mps)
            assert min(m.angular.z for m in fast) == pytest.approx(-node.limits.max_angular_rps)
            # Drive again, then drop the connection: zero at once.
            client.send({"type": "drive", "direction": "forward", "speed_level": 1})
            await until(lambda: harness.latest("cmd_vel/teleop").linear.x > 0, 3, "moving")
        finally:
            closed_at = time.monotonic()
            await client.close()
        await until(lambda: harness.latest("cmd_vel/teleop").linear.x == 0.0, 3, "zero")
        assert time.monotonic() - closed_at < 0.3 + 0.5
        assert harness.latest("navigation/cancel") is not None
    stop_feed.set()
    await feeder


def test_bad_parameters_are_clear(ros_context: Any) -> None:
    from passeur.telepresence.telepresence_node import TelepresenceNode

    for overrides, text in (({"video_codec": "theora"}, "VP8 or H264"),
                            ({"staff_password_hash": "plain"}, "staff-password"),
                            ({"ice_host_addresses": "robot.local"}, "not an IP address"),
                            ({"allowed_hosts": "robot.org, http://robot.org:8080"},
                             "allowed_hosts: 'http://robot.org:8080' is not a host name"),
                            ({"speed_levels_linear_mps": [0.1, 0.2]}, "3 or more"),
                            ({"tls_cert": "/nonexistent.pem", "tls_key": "/x.pem"}, "not found"),
                            ({"staff_max_failures": 30, "staff_global_max_failures": 10},
                             "staff_global_max_failures")):
        params = [Parameter(k, value=v) for k, v in {**PARAMS, **overrides}.items()]
        with pytest.raises(ConfigError, match=text):
            TelepresenceNode(parameter_overrides=params, context=ros_context)


def test_port_in_use_is_a_clear_error(ros_context: Any) -> None:
    import socket

    from passeur.telepresence.telepresence_node import TelepresenceNode

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        params = [Parameter(k, value=v) for k, v in {**PARAMS, "http_port": port}.items()]
        node = TelepresenceNode(parameter_overrides=params, context=ros_context)
        with pytest.raises(ConfigError, match="cannot listen"):
            node.start()
        node.close()
        node.destroy_node()
    finally:
        sock.close()


def test_the_server_shortens_the_gil_switch_interval_while_it_runs(ros_context: Any) -> None:
    """A driving command waits for the GIL at most the switch interval (1 ms, not Python's 5)
    when another thread is busy; closing the node gives the process its own value back."""
    from passeur.telepresence.telepresence_node import TelepresenceNode

    before = sys.getswitchinterval()
    sys.setswitchinterval(0.004)  # not 1 ms already, whatever ran before in this process
    node = TelepresenceNode(parameter_overrides=[Parameter(k, value=v)
                                                 for k, v in PARAMS.items()],
                            context=ros_context)
    try:
        assert sys.getswitchinterval() == pytest.approx(0.004)  # not before it serves
        node.start()
        assert sys.getswitchinterval() == pytest.approx(0.001)
        node.close()
        assert sys.getswitchinterval() == pytest.approx(0.004)
        node.start()  # after close: refused, takes nothing
        assert sys.getswitchinterval() == pytest.approx(0.004)
    finally:
        node.close()
        node.destroy_node()
        sys.setswitchinterval(before)


def test_json_status_is_serialisable(harness: StackHarness) -> None:
    node = harness.node("telepresence")
    json.dumps(node.status())


def _nav_status(pose: str, state: str = "idle", reason: str = "",
                odom_in_map: str | None = None) -> Any:
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    msg = DiagnosticStatus(name="navigator", message=state)
    msg.values = [KeyValue(key="state", value=state), KeyValue(key="reason", value=reason),
                  KeyValue(key="goal_id", value="1"), KeyValue(key="pose", value=pose)]
    if odom_in_map is not None:
        msg.values.append(KeyValue(key="odom_in_map", value=odom_in_map))
    return msg


def test_map_pose_click_to_go_and_heading_with_a_nonzero_odom_origin(
        harness: StackHarness) -> None:
    """Odometry started at map (5, 3) facing +y; the robot has driven 1 m. Pages, click-to-go
    and the heading of a point goal must use the map pose, not odometry's."""
    from passeur.telepresence.access import PILOT
    from passeur.telepresence.messages import GotoPixel, GotoPoint

    node = harness.node("telepresence")
    harness.subscribe("goal_pose", PoseStamped, qos.COMMAND, keep_history=True)
    odom = Odometry()
    odom.pose.pose.position.x = 1.0
    odom.pose.pose.orientation.w = 1.0
    for _ in range(3):
        harness.publish("camera/camera_info", camera_info(), qos.SENSOR)
        harness.publish("odom", odom, qos.SENSOR)
    harness.wait_until(lambda: node.status()["pose"] is not None, 10, "odometry")
    # No navigator yet: odometry, and the status says so.
    status = node.status()
    assert status["pose"]["frame"] == "odom" and status["pose_source"] == "odometry"
    nav = _nav_status("5.00,4.00,1.5708", "failed", "unknown place 'nowhere' (known: desk)")
    # Once: a copy arriving after odometry moves on would pair the old map pose with the new
    # odometry (the node pairs each navigator pose with the odometry of its arrival).
    harness.publish_once("navigation/status", nav, qos.LATCHED)
    harness.wait_until(lambda: node.status()["pose"]["frame"] == "map", 10, "the map pose")
    status = node.status()
    assert status["pose_source"] == "navigator"
    assert status["pose"]["x"] == pytest.approx(5.0, abs=0.01)
    assert status["pose"]["y"] == pytest.approx(4.0, abs=0.01)
    assert status["pose"]["yaw"] == pytest.approx(math.pi / 2, abs=0.01)
    assert status["navigation"]["reason_code"] == "unknown_place"
    # Odometry moves on (0.5 m more, no new navigator pose): the map pose follows.
    odom.pose.pose.position.x = 1.5
    harness.wait_until(lambda: (harness.publish("odom", odom, qos.SENSOR) or
                                abs(node.status()["pose"]["y"] - 4.5) < 0.01), 10, "moved")
    assert node.status()["pose"]["x"] == pytest.approx(5.0, abs=0.01)

    session = node.access.grant(PILOT, "test")
    node.pilot_connected(session)
    try:
        # The floor 2.3 m ahead in the video is 2.3 m along +y on the map.
        t0 = time.monotonic()
        assert node.command(GotoPixel(320, 470), session)["action"] == "goto_point"
        harness.wait_until(lambda: any(t >= t0 for t, _ in harness.history("goal_pose")), 10,
                           "goal from the video")
        goal = [m for t, m in harness.history("goal_pose") if t >= t0][0]
        assert goal.header.frame_id == "map"
        assert goal.pose.position.x == pytest.approx(5.0, abs=0.1)
        assert 5.5 < goal.pose.position.y < 8.0
        # A point goal's heading points from the robot's map pose towards the point.
        t1 = time.monotonic()
        node.command(GotoPoint(5.0, 8.0), session)
        harness.wait_until(lambda: any(t >= t1 for t, _ in harness.history("goal_pose")), 10,
                           "point goal")
        goal = [m for t, m in harness.history("goal_pose") if t >= t1][0]
        q = goal.pose.orientation
        assert 2 * math.atan2(q.z, q.w) == pytest.approx(math.pi / 2, abs=0.02)
    finally:
        node.pilot_disconnected(session, "test over")


def test_navigator_odom_in_map_is_used_as_is(harness: StackHarness) -> None:
    """With the navigator's exact map -> odom, late or repeated status messages never skew the
    map pose (nothing is paired in time)."""
    node = harness.node("telepresence")
    odom = Odometry()
    odom.pose.pose.position.x = 1.0
    odom.pose.pose.orientation.w = 1.0
    # A stale `pose` on purpose: the node must compose odom_in_map with its own odometry.
    nav = _nav_status("0.00,0.00,0.00", odom_in_map="4.0000,3.0000,1.570796")

    def shows(y: float) -> bool:
        harness.publish("odom", odom, qos.SENSOR)
        harness.publish("navigation/status", nav, qos.LATCHED)
        pose = node.status()["pose"]
        return pose is not None and pose["frame"] == "map" and abs(pose["y"] - y) < 0.01

    harness.wait_until(lambda: shows(4.0), 10, "the map pose")
    odom.pose.pose.position.x = 1.5
    harness.wait_until(lambda: shows(4.5), 10, "moved, status still arriving")
    assert node.status()["pose"]["x"] == pytest.approx(4.0, abs=0.01)


def test_a_navigator_on_default_qos_is_still_heard(harness: StackHarness) -> None:
    """navigation/status became latched, and the node asked for transient local: a navigator
    publishing on ROS's default QoS (volatile: another navigator, a bridge, `ros2 topic pub`)
    no longer matched, and the pages showed 'no navigator' and the robot at its odometry
    pose. Such a publisher is heard again; ours (latched) is not taken twice."""
    node = harness.node("telepresence")
    odom = Odometry()
    odom.pose.pose.orientation.w = 1.0
    nav = _nav_status("0.00,0.00,0.00", state="driving",
                      odom_in_map="2.0000,3.0000,0.000000")

    def shows() -> bool:
        harness.publish("odom", odom, qos.SENSOR)
        harness.publish("navigation/status", nav, qos.ROS_DEFAULT)
        pose = node.status()["pose"]
        return node.status()["navigation"].get("state") == "driving" and pose is not None \
            and pose["frame"] == "map" and abs(pose["y"] - 3.0) < 0.01

    harness.wait_until(shows, 10, "the status of a navigator on default QoS")
    # Ours, latched, beside it: taken by the latched subscription only, not a second time
    # (late, out of order) through the best-effort one.
    from diagnostic_msgs.msg import DiagnosticStatus

    unlatched: list[Any] = []
    take = node._on_nav_status
    node._on_nav_status = lambda msg: (unlatched.append(msg), take(msg))  # type: ignore[method-assign]
    ours = harness.probe.create_publisher(DiagnosticStatus, "navigation/status", qos.LATCHED)
    ours.publish(_nav_status("0.00,0.00,0.00", state="reached",
                             odom_in_map="2.0000,3.0000,0.000000"))
    harness.wait_until(lambda: node.status()["navigation"].get("state") == "reached", 10,
                       "the latched status")
    time.sleep(0.3)  # a copy through the best-effort subscription would be there by now
    assert unlatched == []


def test_access_limits_are_declared_parameters(harness: StackHarness) -> None:
    """Lockout limits, session lengths and extension sizes are parameters (with descriptions),
    and reach the access policy."""
    node = harness.node("telepresence")
    names = ["code_max_failures", "code_lockout_s", "code_global_max_failures",
             "staff_max_failures", "staff_lockout_s", "staff_global_max_failures",
             "staff_global_interval_s", "failure_window_s", "spectator_session_s",
             "spectator_extend_s", "spectator_max_extensions", "staff_session_s",
             "staff_extend_s", "staff_max_extensions", "pilot_extend_s", "pilot_max_extensions",
             "max_spectators", "nudge_ms", "session_warning_s"]
    for descriptor in node.describe_parameters(names):
        assert descriptor.description, descriptor.name
    policy = node.access.policy
    assert policy.spectator_session_s == node.get_parameter("spectator_session_s").value
    assert policy.staff_max_failures == node.get_parameter("staff_max_failures").value
    assert node.options.max_spectators == node.get_parameter("max_spectators").value


async def test_estop_release_does_not_restart_a_held_drive(harness: StackHarness) -> None:
    """The pilot holds 'forward' (the page repeats the command) when staff press the e-stop;
    once it is released the robot must not drive off by itself: commands are refused (said
    once, with a code the page translates) until the pilot lets go, then a press drives."""
    from std_msgs.msg import Bool

    node = harness.node("telepresence")
    harness.subscribe("cmd_vel/teleop", Twist, qos.COMMAND, keep_history=True)
    held = {"type": "drive", "direction": "forward", "speed_level": 1}

    def moving_since(t0: float) -> bool:
        return any(t >= t0 and m.linear.x > 0 for t, m in harness.history("cmd_vel/teleop"))

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        client = await pilot(node.server.base_url, http)
        try:
            client.send(held)
            await until(lambda: moving_since(0.0), 5, "driving")
            harness.publish("estop/state", Bool(data=True), qos.LATCHED)
            await until(lambda: harness.latest("cmd_vel/teleop").linear.x == 0.0, 3, "zero")
            t_on = time.monotonic()
            for _ in range(5):  # still held under the e-stop
                client.send(held)
                await asyncio.sleep(0.1)
            await client.wait_for(lambda m: m.get("code") == "estop")
            harness.publish("estop/state", Bool(data=False), qos.LATCHED)
            await until(lambda: node.teleop.refusal() == "let_go_first", 5, "released")
            for _ in range(8):  # still held after the release
                client.send(held)
                await asyncio.sleep(0.1)
            await client.wait_for(lambda m: m.get("code") == "let_go_first")
            assert not moving_since(t_on)
            assert sum(m.get("code") in ("estop", "let_go_first") for m in client.messages) == 2
            client.send({"type": "drive", "linear": 0, "angular": 0})  # let go
            t_press = time.monotonic()
            client.send(held)
            await until(lambda: moving_since(t_press), 5, "driving after a new press")
        finally:
            await client.close()


async def test_a_reconnecting_pilot_is_told_why_the_robot_does_not_move(
        harness: StackHarness) -> None:
    """A pilot pressing 'forward' under the e-stop is told why nothing moves, once per press.
    The page reloaded (or the link dropped) with the control still held: the new connection
    was never told, its presses refused in silence. Each connection is told again."""
    from std_msgs.msg import Bool

    node = harness.node("telepresence")
    held = {"type": "drive", "direction": "forward", "speed_level": 1}
    harness.publish("estop/state", Bool(data=True), qos.LATCHED)
    await until(lambda: node.teleop.refusal() == "estop", 5, "e-stop on")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        client = await pilot(node.server.base_url, http)
        try:
            client.send(held)
            await client.wait_for(lambda m: m.get("code") == "estop")
        finally:
            await client.close()  # still held: no let-go reached the robot
        again = Client(http, node.server.base_url)  # the reloaded page, same session
        try:
            assert (await again.connect()).status == 200
            await again.wait_for(lambda m: m["type"] == "hello")
            again.send(held)
            told = await again.wait_for(lambda m: m.get("code") == "estop", timeout_s=3)
            assert "emergency stop" in told["message"]
        finally:
            await again.close()


def test_one_address_may_fill_every_spectator_slot(ros_context: Any) -> None:
    """Spectator sessions are bounded per address, but never below the spectator video
    slots: a class watching from behind one NAT (a guest Wi-Fi) can use every slot."""
    from passeur.telepresence.telepresence_node import TelepresenceNode

    for spectators, expected in ((14, 14), (3, 8)):
        overrides = {"max_viewers": 16, "max_spectators": spectators}
        params = [Parameter(k, value=v) for k, v in {**PARAMS, **overrides}.items()]
        node = TelepresenceNode(parameter_overrides=params, context=ros_context)
        try:
            assert node.access.policy.max_spectator_sessions_per_client == expected
        finally:
            node.close()
            node.destroy_node()


async def test_driving_by_hand_cancels_navigation_under_way(harness: StackHarness) -> None:
    """A patrol (or staff's goal) was driving when the pilot took the controls: teleop wins
    in the safety mux only while it speaks, so 300 ms after the pilot let go the robot drove
    off by itself. A pilot's drive now cancels the navigation under way, once per goal."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    node = harness.node("telepresence")
    cancels: list[float] = []
    harness.probe.create_subscription(Empty, "navigation/cancel",
                                      lambda _m: cancels.append(time.monotonic()), qos.COMMAND)

    def nav(state: str, goal_id: str) -> DiagnosticStatus:
        return DiagnosticStatus(name="navigator", values=[
            KeyValue(key="state", value=state), KeyValue(key="goal_id", value=goal_id)])

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        client = await pilot(node.server.base_url, http)
        try:
            # Idle navigation: driving cancels nothing.
            harness.publish("navigation/status", nav("idle", ""), qos.LATCHED)
            await until(lambda: node.status()["navigation"].get("state") == "idle", 5, "idle")
            client.send({"type": "drive", "direction": "forward", "speed_level": 1})
            await asyncio.sleep(0.5)
            assert cancels == []
            # A patrol's goal under way: the first drive cancels it, the repeats do not again.
            harness.publish("navigation/status", nav("driving", "7"), qos.LATCHED)
            await until(lambda: node.status()["navigation"].get("goal_id") == "7", 5, "goal 7")
            for _ in range(5):
                client.send({"type": "drive", "direction": "forward", "speed_level": 1})
                await asyncio.sleep(0.1)
            await until(lambda: len(cancels) == 1, 5, "one cancel")
            await asyncio.sleep(0.3)
            assert len(cancels) == 1
            # A patrol dwelling at a waypoint has no goal to cancel: the run itself is stopped.
            stops: list[str] = []
            harness.probe.create_subscription(String, "patrol/command",
                                              lambda m: stops.append(m.data), qos.STATUS)
            harness.publish("patrol/status", DiagnosticStatus(name="patrol", values=[
                KeyValue(key="state", value="dwelling"), KeyValue(key="run_id", value="3")]),
                qos.LATCHED)
            await until(lambda: node.status()["patrol"].get("state") == "dwelling", 5, "dwell")
            for _ in range(3):
                client.send({"type": "drive", "direction": "left", "speed_level": 1})
                await asyncio.sleep(0.1)
            await until(lambda: len(stops) == 1, 5, "patrol stop")
            await asyncio.sleep(0.3)
            assert len(stops) == 1 and json.loads(stops[0])["action"] == "stop"
        finally:
            await client.close()


async def test_the_let_go_after_an_estop_release_keeps_a_place_just_chosen(
        harness: StackHarness) -> None:
    """After an e-stop's release the pilot page lets go for the pilot (a zero drive) when the
    next status tells it so, up to half a second later. A place the pilot chose in between
    was cancelled by that let-go, and the page then said another goal had taken the trip. A
    zero drive now re-arms driving without cancelling navigation; a moving drive and STOP
    still cancel it."""
    from std_msgs.msg import Bool

    node = harness.node("telepresence")
    cancels: list[float] = []
    harness.probe.create_subscription(Empty, "navigation/cancel",
                                      lambda _m: cancels.append(time.monotonic()), qos.COMMAND)
    harness.subscribe("goal_place", String, qos.COMMAND)
    harness.subscribe("cmd_vel/teleop", Twist, qos.COMMAND, keep_history=True)

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        client = await pilot(node.server.base_url, http)
        try:
            harness.publish("estop/state", Bool(data=True), qos.LATCHED)
            await until(lambda: node.teleop.refusal() == "estop", 5, "e-stop on")
            harness.publish("estop/state", Bool(data=False), qos.LATCHED)
            await until(lambda: node.status()["estop"] is False, 5, "release seen")
            client.send({"type": "goto_place", "id": "reading_corner"})
            await client.wait_for(lambda m: m.get("action") == "goto_place")
            await until(lambda: harness.latest("goal_place") is not None, 5, "goal_place")
            client.send({"type": "drive", "linear": 0, "angular": 0})  # the page's let-go
            client.send({"type": "ping", "t": 1.0})
            await client.wait_for(lambda m: m.get("type") == "pong")
            await asyncio.sleep(0.3)
            assert cancels == [], "the let-go cancelled the place the pilot had just chosen"
            assert node.teleop.refusal() is None  # and driving works again
            # Taking the controls still ends the pilot's trip; so does STOP.
            t_drive = time.monotonic()
            client.send({"type": "drive", "direction": "forward", "speed_level": 1})
            await until(lambda: any(t >= t_drive for t in cancels), 5, "a drive cancels")
            await until(lambda: any(t >= t_drive and m.linear.x > 0
                                    for t, m in harness.history("cmd_vel/teleop")), 5, "moving")
            client.send({"type": "goto_place", "id": "reading_corner"})
            await until(lambda: sum(m.get("action") == "goto_place"
                                    for m in client.messages) == 2, 5, "second goal sent")
            t_stop = time.monotonic()
            client.send({"type": "stop"})
            await until(lambda: any(t >= t_stop for t in cancels), 5, "STOP cancels")
        finally:
            await client.close()


async def test_stop_also_stops_a_patrol_that_dwells(harness: StackHarness) -> None:
    """The pilot pressed STOP while a patrol dwelt at a waypoint: STOP cancelled navigation,
    which had no goal, so after its dwell the patrol sent the robot to its next place by
    itself. STOP now stops the run too (once), with a reason the staff desk translates."""
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    node = harness.node("telepresence")
    stops: list[str] = []
    harness.probe.create_subscription(String, "patrol/command",
                                      lambda m: stops.append(m.data), qos.STATUS)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        client = await pilot(node.server.base_url, http)
        try:
            harness.publish("patrol/status", DiagnosticStatus(name="patrol", values=[
                KeyValue(key="state", value="dwelling"), KeyValue(key="run_id", value="5")]),
                qos.LATCHED)
            await until(lambda: node.status()["patrol"].get("state") == "dwelling", 5, "dwell")
            for _ in range(2):
                client.send({"type": "stop"})
            await until(lambda: len(stops) == 1, 5, "patrol stop")
            await asyncio.sleep(0.3)
            assert len(stops) == 1
            command = json.loads(stops[0])
            assert command == {"action": "stop", "reason": "interrupted: the pilot pressed STOP"}
        finally:
            await client.close()


async def test_a_pilot_session_is_published_for_the_patrols(harness: StackHarness) -> None:
    """The patrol node holds scheduled routes back during a pilot session: the telepresence
    node says on telepresence/pilot_session (latched) when one is live, connected or not."""
    from std_msgs.msg import Bool

    node = harness.node("telepresence")
    harness.subscribe("telepresence/pilot_session", Bool, qos.LATCHED)
    harness.wait_until(lambda: harness.latest("telepresence/pilot_session") is not None, 10,
                       "the latched pilot_session")
    assert harness.latest("telepresence/pilot_session").data is False
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        client = await pilot(node.server.base_url, http)
        try:
            await until(lambda: harness.latest("telepresence/pilot_session").data is True, 5,
                        "pilot session on")
            await client.close()  # the page goes away (a reload): the session lives on
            await asyncio.sleep(1.5)
            assert harness.latest("telepresence/pilot_session").data is True
            node.access.end_pilot()  # staff end it
            await until(lambda: harness.latest("telepresence/pilot_session").data is False, 5,
                        "pilot session off")
        finally:
            await client.close()


def _goal_status(goal_id: int, state: str, request_id: str = "", place: str = "",
                 reason_code: str = "") -> Any:
    from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

    return DiagnosticStatus(name="navigator", message=state, values=[
        KeyValue(key=k, value=v) for k, v in {
            "state": state, "goal_id": str(goal_id), "place": place, "goal": place,
            "request_id": request_id, "reason_code": reason_code}.items()])


def _sent_request_id(data: str) -> str:
    """The request_id a goal_place / goal_point message carries ("" for a bare place id)."""
    return str(json.loads(data).get("request_id", "")) if data.startswith("{") else ""


def test_the_pilots_goal_is_known_by_its_request_id_not_guessed(
        harness: StackHarness) -> None:
    """A staff goal (or a patrol's) sent at about the same time as the pilot's was taken for
    the pilot's: once the pilot's trip had ended, or been replaced, a pilot who left still
    cancelled navigation, ending staff's trip. The node now sends each pilot goal with a
    request_id, follows it in navigation/status, tells the page which status is its own,
    and cancels only a goal of the pilot's that may still be under way."""
    from passeur.telepresence.access import PILOT
    from passeur.telepresence.messages import GotoPlace

    node = harness.node("telepresence")
    cancels: list[int] = []
    sent: list[str] = []
    node._publish_cancel = lambda: cancels.append(1)  # type: ignore[method-assign]
    node.pub_goal_place.publish = lambda m: sent.append(m.data)  # type: ignore[method-assign]
    session = node.access.grant(PILOT, "test")

    # 1. The pilot's goal arrives; staff sends the robot elsewhere just after: the pilot's
    #    trip ends ("replaced"), and leaving must not cancel staff's trip.
    node.pilot_connected(session)
    ack = node.command(GotoPlace("desk"), session)
    ours = _sent_request_id(sent[-1])
    assert ours and ack is not None and ack["request_id"] == ours
    node._on_nav_status(_goal_status(1, "planning", ours, "desk"))
    node._on_nav_status(_goal_status(1, "cancelled", ours, "desk", "replaced"))
    node._on_nav_status(_goal_status(2, "planning", "", "entrance"))
    node._on_nav_status(_goal_status(2, "driving", "", "entrance"))
    pilot_goal = node.status()["pilot_goal"]
    assert pilot_goal["request_id"] == ours and pilot_goal["state"] == "cancelled"
    assert pilot_goal["reason_code"] == "replaced"
    node.pilot_disconnected(session, "left")
    assert cancels == [], "the pilot leaving cancelled staff's goal"

    # 2. Staff's goal came first, the pilot's replaced it: leaving cancels the pilot's.
    node.pilot_connected(session)
    node.command(GotoPlace("desk"), session)
    ours = _sent_request_id(sent[-1])
    node._on_nav_status(_goal_status(3, "planning", "staff-1", "entrance"))
    node._on_nav_status(_goal_status(3, "cancelled", "staff-1", "entrance", "replaced"))
    node._on_nav_status(_goal_status(4, "planning", ours, "desk"))
    node._on_nav_status(_goal_status(4, "driving", ours, "desk"))
    assert node.status()["pilot_goal"]["state"] == "driving"
    node.pilot_disconnected(session, "left")
    assert cancels == [1]

    # 3. The pilot's goal was reached; a patrol's goal is under way when the pilot leaves.
    node.pilot_connected(session)
    node.command(GotoPlace("desk"), session)
    ours = _sent_request_id(sent[-1])
    node._on_nav_status(_goal_status(5, "planning", ours, "desk"))
    node._on_nav_status(_goal_status(5, "reached", ours, "desk"))
    node._on_nav_status(_goal_status(6, "planning", "patrol-1", "entrance"))
    assert node.status()["pilot_goal"]["state"] == "reached"
    node.pilot_disconnected(session, "left")
    assert cancels == [1], "the pilot leaving cancelled a patrol's goal"

    # 4. Its "cancelled" lost (the status is latched, depth 1): a newer goal under way
    #    means the pilot's was replaced.
    node.pilot_connected(session)
    node.command(GotoPlace("desk"), session)
    ours = _sent_request_id(sent[-1])
    node._on_nav_status(_goal_status(7, "driving", ours, "desk"))
    node._on_nav_status(_goal_status(8, "driving", "", "entrance"))
    assert node.status()["pilot_goal"]["state"] == "cancelled"
    node.pilot_disconnected(session, "left")
    assert cancels == [1]

    # 5. Sent, not yet in any status: leaving cancels it (the navigator has it, or will).
    node.pilot_connected(session)
    node.command(GotoPlace("desk"), session)
    assert node.status()["pilot_goal"]["state"] == "sent"
    node.pilot_disconnected(session, "left")
    assert cancels == [1, 1]


def test_a_point_goal_carries_the_pilots_request_id(harness: StackHarness) -> None:
    """Click-to-go went out as a bare goal_pose, which no status can be matched to: with a
    navigator listening on goal_point, the point goes there with the pilot's request_id
    (the ack gives it to the page); without one (Nav2), still on goal_pose."""
    from passeur.telepresence.access import PILOT
    from passeur.telepresence.messages import GotoPoint

    node = harness.node("telepresence")
    session = node.access.grant(PILOT, "test")
    node.pilot_connected(session)
    try:
        harness.subscribe("goal_pose", PoseStamped, qos.COMMAND)
        ack = node.command(GotoPoint(2.0, 3.0), session)
        assert ack is not None and ack["request_id"]
        harness.wait_until(lambda: harness.latest("goal_pose") is not None, 10, "goal_pose")
        harness.subscribe("goal_point", String, qos.COMMAND)
        harness.wait_until(lambda: node.pub_goal_point.get_subscription_count() > 0, 10,
                           "a goal_point subscriber")
        ack = node.command(GotoPoint(4.0, -1.0), session)
        assert ack is not None
        harness.wait_until(lambda: harness.latest("goal_point") is not None, 10, "goal_point")
        goal = json.loads(harness.latest("goal_point").data)
        assert goal["request_id"] == ack["request_id"] != ""
        assert (goal["x"], goal["y"]) == (4.0, -1.0)
        assert node.status()["pilot_goal"]["request_id"] == ack["request_id"]
    finally:
        node.pilot_disconnected(session, "test over")
