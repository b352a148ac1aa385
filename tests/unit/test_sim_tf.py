"""TF from the simulator (a full ROS install only: tf2_msgs is not installable here).

tf2_msgs is FAKED for these tests only: a stand-in module in sys.modules, and the node's
TFMessage publishers replaced by recorders (rclpy cannot publish a class without type
support). Everything else is the real SimNode on the real world and robot.
"""

from __future__ import annotations

import math
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy

from passeur.ros.geometry import Pose2D, quaternion_to_yaw
from passeur.sim.simulator import Twist2D


class FakeTFMessage:
    def __init__(self, transforms: list[TransformStamped] | None = None) -> None:
        self.transforms = list(transforms or [])


class Recorder:
    def __init__(self, topic: str, qos: Any) -> None:
        self.topic, self.qos = topic, qos
        self.messages: list[FakeTFMessage] = []

    def publish(self, msg: FakeTFMessage) -> None:
        self.messages.append(msg)


@pytest.fixture
def fake_tf2(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Recorder]]:
    from passeur.sim.sim_node import SimNode

    package = types.ModuleType("tf2_msgs")
    msg_module = types.ModuleType("tf2_msgs.msg")
    msg_module.TFMessage = FakeTFMessage  # type: ignore[attr-defined]
    package.msg = msg_module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tf2_msgs", package)
    monkeypatch.setitem(sys.modules, "tf2_msgs.msg", msg_module)
    recorders: dict[str, Recorder] = {}
    real = SimNode.create_publisher

    def create_publisher(self: Any, msg_type: Any, topic: str, qos: Any, **kwargs: Any) -> Any:
        if msg_type is FakeTFMessage:
            recorders[topic] = Recorder(topic, qos)
            return recorders[topic]
        return real(self, msg_type, topic, qos, **kwargs)

    monkeypatch.setattr(SimNode, "create_publisher", create_publisher)
    yield recorders


def make_sim(ros_context: Any, **params: Any) -> Any:
    from rclpy.parameter import Parameter

    from passeur.sim.sim_node import SimNode

    overrides = {"world": "library", "camera_rate_hz": 0.0, **params}
    return SimNode(context=ros_context,
                   parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])


def frames(msg: FakeTFMessage) -> dict[tuple[str, str], TransformStamped]:
    return {(t.header.frame_id, t.child_frame_id): t for t in msg.transforms}


def xyz(t: TransformStamped) -> tuple[float, float, float]:
    v = t.transform.translation
    return (v.x, v.y, v.z)


def quat(t: TransformStamped) -> tuple[float, float, float, float]:
    q = t.transform.rotation
    return (q.x, q.y, q.z, q.w)


def test_static_frames_map_odom_and_sensors(ros_context: Any,
                                            fake_tf2: dict[str, Recorder]) -> None:
    node = make_sim(ros_context)
    try:
        static = fake_tf2["tf_static"]
        assert static.qos.durability == DurabilityPolicy.TRANSIENT_LOCAL  # late RViz sees it
        assert len(static.messages) == 1
        found = frames(static.messages[0])
        assert set(found) == {("map", "odom"), ("base_link", "lidar_link"),
                              ("base_link", "camera_link"),
                              ("camera_link", "camera_optical_link")}
        # odom_origin 'map' (default): odom coincides with the map
        assert xyz(found["map", "odom"]) == (0.0, 0.0, 0.0)
        assert quat(found["map", "odom"]) == pytest.approx((0.0, 0.0, 0.0, 1.0))
        robot = node.sim.robot
        lidar = xyz(found["base_link", "lidar_link"])
        assert lidar[0] == pytest.approx(0.10, abs=0.01) and lidar[1] == pytest.approx(0.0)
        assert 0.1 < lidar[2] < 0.6
        camera = xyz(found["base_link", "camera_link"])
        assert camera[2] == pytest.approx(1.3, abs=0.1), "camera at visitor eye height"
        assert quat(found["base_link", "camera_link"]) == pytest.approx((0.0, 0.0, 0.0, 1.0))
        # REP-103 optical frame: z forward, x right, y down
        assert xyz(found["camera_link", "camera_optical_link"]) == (0.0, 0.0, 0.0)
        assert quat(found["camera_link", "camera_optical_link"]) == (-0.5, 0.5, -0.5, 0.5)
        assert robot.lidar_samples == 360
        # odom -> base_link follows every odometry message, with its stamp
        node._publish_odom(12.25, Pose2D(10.5, 2.25, math.pi / 2), Twist2D(0.3, 0.0, 0.1))
        moving = fake_tf2["tf"].messages[-1]
        assert list(frames(moving)) == [("odom", "base_link")]
        t = moving.transforms[0]
        assert (t.header.stamp.sec, t.header.stamp.nanosec) == (12, 250_000_000)
        assert xyz(t)[:2] == pytest.approx((10.5, 2.25))
        assert quaternion_to_yaw(*quat(t)) == pytest.approx(math.pi / 2)
    finally:
        node.destroy_node()


def test_odom_starting_at_the_start_pose(ros_context: Any,
                                         fake_tf2: dict[str, Recorder]) -> None:
    node = make_sim(ros_context, odom_origin="start")
    try:
        start = node.start_pose
        found = frames(fake_tf2["tf_static"].messages[0])
        x, y, z = xyz(found["map", "odom"])
        assert (x, y, z) == pytest.approx((start.x_m, start.y_m, 0.0))
        assert quaternion_to_yaw(*quat(found["map", "odom"])) == pytest.approx(start.yaw_rad)
        # at the start pose the robot is at the odom origin
        node._publish_odom(0.0, start, Twist2D(0.0, 0.0, 0.0))
        t = fake_tf2["tf"].messages[-1].transforms[0]
        assert xyz(t)[:2] == pytest.approx((0.0, 0.0), abs=1e-9)
        assert quaternion_to_yaw(*quat(t)) == pytest.approx(0.0, abs=1e-9)
    finally:
        node.destroy_node()


def test_a_localiser_owns_map_to_odom(ros_context: Any, fake_tf2: dict[str, Recorder]) -> None:
    node = make_sim(ros_context, publish_map_to_odom=False)
    try:
        found = frames(fake_tf2["tf_static"].messages[0])
        assert ("map", "odom") not in found and ("base_link", "lidar_link") in found
    finally:
        node.destroy_node()


def test_without_tf2_msgs_no_tf_is_published(ros_context: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tf2_msgs", None)  # import fails, as here
    node = make_sim(ros_context)
    try:
        topics = {p.topic_name for p in node.publishers}
        assert "/tf" not in topics and "/tf_static" not in topics
        assert node._tf_pub is None
    finally:
        node.destroy_node()
