"""launch/gazebo.launch.py, checked statically (launch/ros_gz are not installable here)."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from passeur.sim.sim_node import CLOCK_TOPIC, PUBLISHED_TOPICS, SUBSCRIBED_TOPICS, TF_TOPICS

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "gazebo.launch.py"


def module() -> ast.Module:
    return ast.parse(LAUNCH.read_text(encoding="utf-8"), filename=str(LAUNCH))


def constants(tree: ast.Module) -> dict[str, str]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def test_launch_file_parses_and_defines_the_entry_point() -> None:
    tree = module()
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_every_file_the_launch_file_names_exists() -> None:
    names = constants(module())
    for key in ("ROBOT_XACRO", "BRIDGE_CONFIG", "PARAMS_FILE"):
        assert (ROOT / names[key]).is_file(), f"{key} = {names[key]} is missing"
    worlds = ROOT / names["WORLDS_DIR"]
    assert (worlds / "library.sdf").is_file() and (worlds / "chateau.sdf").is_file()
    # The stack executable it runs is one of the package's console scripts.
    setup_py = (ROOT / "setup.py").read_text(encoding="utf-8")
    assert f'"{names["STACK_EXECUTABLE"]} = ' in setup_py
    text = LAUNCH.read_text(encoding="utf-8")
    assert '"--profile", "external"' in text


def test_launch_arguments_have_defaults_and_descriptions() -> None:
    for call in ast.walk(module()):
        if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument":
            keywords = {k.arg for k in call.keywords}
            assert {"default_value", "description"} <= keywords


def test_bridge_offers_exactly_the_embedded_simulator_topics() -> None:
    entries = yaml.safe_load((ROOT / "config" / "gz_bridge.yaml").read_text(encoding="utf-8"))
    to_ros = {e["ros_topic_name"] for e in entries if e["direction"] == "GZ_TO_ROS"}
    assert CLOCK_TOPIC == "/clock" and CLOCK_TOPIC in to_ros
    to_gz = {e["ros_topic_name"] for e in entries if e["direction"] == "ROS_TO_GZ"}
    assert to_ros - set(TF_TOPICS) == set(PUBLISHED_TOPICS)
    assert to_gz == set(SUBSCRIBED_TOPICS)
    for entry in entries:
        if entry["ros_topic_name"] == CLOCK_TOPIC:
            continue  # absolute: rclpy's use_sim_time listens on /clock in every namespace
        assert not entry["ros_topic_name"].startswith("/"), "relative names keep namespaces working"
        assert set(entry) == {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name",
                              "direction"}


def test_gazebo_topics_match_the_robot_description() -> None:
    """The gz topics bridged are the ones the URDF's <gazebo> sensors and DiffDrive use."""
    urdf = (ROOT / "urdf" / "passeur.urdf.xacro").read_text(encoding="utf-8")
    entries = yaml.safe_load((ROOT / "config" / "gz_bridge.yaml").read_text(encoding="utf-8"))
    for entry in entries:
        if entry["gz_topic_name"] in ("/clock",):
            continue
        gz = entry["gz_topic_name"]
        assert f">{gz}<" in urdf, f"no <gazebo> element publishes or reads '{gz}'"
