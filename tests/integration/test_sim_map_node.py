"""map_server publishes the world's map once, latched; the sim's obstacle topic works."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from geometry_msgs.msg import Pose, PoseArray
from nav_msgs.msg import OccupancyGrid
from sensor_msgs.msg import LaserScan

from passeur.errors import ConfigError
from passeur.navigation.map_io import load_map
from passeur.paths import share_path
from passeur.ros import qos
from tests.support.ros_harness import StackHarness


@pytest.mark.parametrize("world", ["library", "chateau"])
def test_map_is_latched_for_late_subscribers(ros_context: Any, world: str) -> None:
    with StackHarness(ros_context, nodes=["map_server"], common={"world": world}) as h:
        # Subscribe only after the node published: transient local must still deliver it.
        msg = h.wait_for_message("map", OccupancyGrid, timeout_s=30.0, qos=qos.LATCHED)
        expected = load_map(share_path("sim", "maps", f"{world}.yaml"))
        assert msg.header.frame_id == "map"
        assert (msg.info.width, msg.info.height) == (expected.width, expected.height)
        assert msg.info.resolution == pytest.approx(0.05)
        assert msg.info.origin.position.x == pytest.approx(expected.origin_x_m)
        data = np.array(msg.data, dtype=np.int8).reshape(msg.info.height, msg.info.width)
        assert np.array_equal(data, expected.data)
        assert set(np.unique(data)) == {-1, 0, 100}


def test_map_server_refuses_a_missing_map_file(ros_context: Any, tmp_path: Any) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError) as info:
        StackHarness(ros_context, nodes=["map_server"],
                     per_node={"map_server": {"map_file": str(missing)}})
    assert str(missing) in str(info.value)


def test_a_world_without_a_map_says_how_to_build_it(ros_context: Any, tmp_path: Any) -> None:
    """`passeur sim --world my_hall.sdf` before its map exists: the command to run is the
    one for that world (a bare `passeur map build` builds the library's)."""
    world = tmp_path / "my_hall.sdf"
    world.write_text("<sdf version='1.9'><world name='w'></world></sdf>", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        StackHarness(ros_context, nodes=["map_server"], common={"world": str(world)})
    assert f"`passeur map build --world {world}`" in str(info.value)
    # `passeur robot --world mars`: no world of that name to build a map from
    with pytest.raises(ConfigError) as info:
        StackHarness(ros_context, nodes=["map_server"], common={"world": "mars"})
    assert "unknown world 'mars' (worlds: chateau, library)" in str(info.value)
    assert "map_file" in str(info.value) and "passeur map build" not in str(info.value)


def test_obstacles_topic_places_and_parks_boxes(ros_context: Any) -> None:
    with StackHarness(ros_context, nodes=["sim"],
                      per_node={"sim": {"real_time_factor": 0.0, "camera_rate_hz": 0.0}}) as h:
        sim = h.node("sim")
        start = sim.ground_truth_pose()
        h.wait_for_message("scan", LaserScan, qos=qos.SENSOR)
        pose = Pose()
        pose.position.x, pose.position.y = start.x_m, start.y_m + 1.5
        arrays = PoseArray(poses=[pose])

        def front() -> float:
            scan = h.latest("scan")
            return float(scan.ranges[180]) if scan is not None else math.inf

        h.wait_until(lambda: h.publish("sim/obstacles", arrays) or abs(front() - 1.2) < 0.05,
                     60.0, "the obstacle in the scan")
        h.wait_until(lambda: h.publish("sim/obstacles", PoseArray()) or front() > 2.0, 60.0,
                     "the obstacle parked again")


def test_a_non_finite_obstacle_pose_is_ignored(ros_context: Any) -> None:
    """A NaN on sim/obstacles made MuJoCo unstable: it reset itself, which put the robot at
    the world's origin, in a wall corner, from where it was thrown out of the building."""
    with StackHarness(ros_context, nodes=["sim"],
                      per_node={"sim": {"real_time_factor": 0.0, "camera_rate_hz": 0.0}}) as h:
        sim = h.node("sim")
        start = sim.ground_truth_pose()
        pose = Pose()
        pose.position.x, pose.position.y = math.nan, start.y_m + 1.5
        sim._on_obstacles(PoseArray(poses=[pose]))  # as the topic delivers it
        t0 = h.sim_time_s()
        h.wait_until(lambda: h.sim_time_s() > t0 + 1.0, 60.0, "1 s of sim time")
        now = sim.ground_truth_pose()
        assert math.hypot(now.x_m - start.x_m, now.y_m - start.y_m) < 0.01
        with pytest.raises(ValueError, match="not finite"):
            sim.place_obstacle(0, 1.0, math.inf)
