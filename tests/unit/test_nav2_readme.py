"""The README's "Using Nav2 instead of the navigator" names nodes, topics, frames and
parameters of this stack: check they exist (Nav2 itself cannot be installed here)."""

from __future__ import annotations

import re
from pathlib import Path

from passeur.bringup import NODES

ROOT = Path(__file__).resolve().parents[2]
TITLE = "## Using Nav2 instead of the navigator"


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert TITLE in text
    body = text.split(TITLE, 1)[1].split("\n## ", 1)[0]
    return " ".join(body.split())


def source(*parts: str) -> str:
    return ROOT.joinpath("src", "passeur", *parts).read_text(encoding="utf-8")


def test_node_lists_name_existing_nodes_without_the_navigator() -> None:
    lists = re.findall(r"(?:nodes:=|--nodes )([\w,]+)", section())
    assert lists, "the section shows how to leave the navigator out"
    known = {spec.name for spec in NODES}
    for value in lists:
        names = value.split(",")
        assert set(names) <= known, f"unknown node in {value}"
        assert "navigator" not in names and "patrol" not in names
    for name in ("navigator", "map_server", "patrol"):
        assert f"`{name}`" in section() and name in known


def test_nav2_drives_the_topic_the_safety_node_takes_as_twist() -> None:
    text = section()
    assert "`cmd_vel/nav`" in text and "enable_stamped_cmd_vel: false" in text
    safety = " ".join(source("safety", "safety_node.py").split())
    assert 'create_subscription(Twist, "cmd_vel/nav",' in safety
    assert 'create_publisher(Twist, "cmd_vel",' in safety


def test_topics_frames_and_footprint_nav2_finds() -> None:
    from rclpy.qos import DurabilityPolicy

    from passeur.ros import qos
    from passeur.sim import sim_node

    text = section()
    assert 'create_publisher(OccupancyGrid, "map", qos.LATCHED)' in source(
        "navigation", "map_node.py")
    assert qos.LATCHED.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert "`map`, transient local" in text
    for topic in ("odom", "scan"):
        assert f"`{topic}`" in text and topic in sim_node.PUBLISHED_TOPICS
    for frame in (sim_node.MAP_FRAME, sim_node.ODOM_FRAME, sim_node.BASE_FRAME,
                  sim_node.LIDAR_FRAME):
        assert f"`{frame}`" in text
    assert all(f"`{t}`" in text for t in sim_node.TF_TOPICS)
    assert "`publish_map_to_odom: false`" in text and '"publish_map_to_odom"' in source(
        "sim", "sim_node.py")
    xacro = (ROOT / "urdf" / "passeur.urdf.xacro").read_text(encoding="utf-8")
    radius = re.search(r'name="base_radius" value="([\d.]+)"', xacro)
    assert radius is not None and f"radius {radius.group(1)} m" in text
    assert f"`robot_radius: {radius.group(1)}`" in text


def test_gazebo_launch_takes_the_nodes_argument_the_section_uses() -> None:
    assert "`gazebo.launch.py nodes:=...`" in section()
    launch = (ROOT / "launch" / "gazebo.launch.py").read_text(encoding="utf-8")
    assert 'DeclareLaunchArgument("nodes"' in launch
