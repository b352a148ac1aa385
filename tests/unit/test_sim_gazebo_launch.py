"""launch/gazebo.launch.py, checked statically (launch/ros_gz are not installable here)."""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
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
    assert to_ros - set(TF_TOPICS) - set(GAZEBO_ONLY) == set(PUBLISHED_TOPICS)
    assert to_gz == set(SUBSCRIBED_TOPICS)
    for entry in entries:
        if entry["ros_topic_name"] == CLOCK_TOPIC:
            continue  # absolute: rclpy's use_sim_time listens on /clock in every namespace
        assert not entry["ros_topic_name"].startswith("/"), "relative names keep namespaces working"
        assert set(entry) == {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name",
                              "direction"}


#: Bridged for robot_state_publisher only: the embedded simulator publishes the sensor frames
#: itself and runs no robot_state_publisher.
GAZEBO_ONLY = ("joint_states",)


def test_robot_state_publisher_gets_the_wheel_joint_states() -> None:
    """robot_state_publisher publishes a moving joint's frame only from `joint_states`: without
    them RViz's RobotModel shows the wheels with 'No transform from [left_wheel_link]'."""
    import xml.etree.ElementTree as ET

    import xacro

    urdf = ET.fromstring(xacro.process_file(str(ROOT / "urdf" / "passeur.urdf.xacro")).toxml())
    moving = [j.get("name") for j in urdf.iter("joint") if j.get("type") != "fixed"]
    assert moving == ["left_wheel_joint", "right_wheel_joint"]
    plugins = [p for p in urdf.iter("plugin")
               if p.get("name") == "gz::sim::systems::JointStatePublisher"]
    assert len(plugins) == 1
    # without <topic> it publishes on /world/<world>/model/<model>/joint_state
    gz_topic = plugins[0].findtext("topic")
    assert gz_topic, "JointStatePublisher without <topic>: nothing bridges its world-scoped topic"
    entries = yaml.safe_load((ROOT / "config" / "gz_bridge.yaml").read_text(encoding="utf-8"))
    bridged = [e for e in entries if e["gz_topic_name"] == gz_topic]
    assert bridged == [{"ros_topic_name": "joint_states", "gz_topic_name": gz_topic,
                        "ros_type_name": "sensor_msgs/msg/JointState",
                        "gz_type_name": "gz.msgs.Model", "direction": "GZ_TO_ROS"}]


def test_gazebo_topics_match_the_robot_description() -> None:
    """The gz topics bridged are the ones the URDF's <gazebo> sensors and DiffDrive use."""
    urdf = (ROOT / "urdf" / "passeur.urdf.xacro").read_text(encoding="utf-8")
    entries = yaml.safe_load((ROOT / "config" / "gz_bridge.yaml").read_text(encoding="utf-8"))
    for entry in entries:
        if entry["gz_topic_name"] in ("/clock",):
            continue
        gz = entry["gz_topic_name"]
        assert f">{gz}<" in urdf, f"no <gazebo> element publishes or reads '{gz}'"


# ---- gazebo.launch.py run against a unit-test FAKE of the launch API -----------------------
# (records constructor arguments, runs nothing; launch/launch_ros are not installable here)

class _Recorded:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorded):
    def perform(self, context: dict[str, str]) -> str:
        return context[self.args[0]]


class _OnProcessExit(_Recorded):
    pass


FAKE_CLASSES = {
    "launch": ["LaunchDescription"],
    "launch.actions": ["DeclareLaunchArgument", "ExecuteProcess", "LogInfo", "OpaqueFunction",
                       "RegisterEventHandler", "Shutdown", "TimerAction"],
    "launch.event_handlers": [],
    "launch.substitutions": [],
    "launch_ros": [],
    "launch_ros.actions": ["Node"],
}


@pytest.fixture
def fake_launch(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    classes: dict[str, type] = {}
    for module_name, names in FAKE_CLASSES.items():
        module = types.ModuleType(module_name)
        for name in names:
            classes[name] = type(name, (_Recorded,), {})
            setattr(module, name, classes[name])
        monkeypatch.setitem(sys.modules, module_name, module)
    sys.modules["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration  # type: ignore[attr-defined]
    sys.modules["launch.event_handlers"].OnProcessExit = _OnProcessExit  # type: ignore[attr-defined]
    return classes


def _gazebo_actions(fake: dict[str, type], world: str = "library", nodes: str = "",
                    params_file: str = "") -> list[Any]:
    spec = importlib.util.spec_from_file_location("gazebo_launch", LAUNCH)
    assert spec is not None and spec.loader is not None
    launch_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_module)
    desc = launch_module.generate_launch_description()
    opaque = [e for e in desc.args[0] if isinstance(e, fake["OpaqueFunction"])]
    assert len(opaque) == 1
    actions: list[Any] = opaque[0].kwargs["function"](
        {"world": world, "headless": "true", "nodes": nodes, "params_file": params_file})
    return actions


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_gazebo_launch_starts_the_stack_once_the_robot_is_spawned(
        fake_launch: dict[str, type]) -> None:
    from passeur.sim.sdf_world import load_world

    start = load_world(ROOT / "sim" / "worlds" / "library.sdf").start_pose
    fds = _open_fds()
    actions = _gazebo_actions(fake_launch)
    assert _open_fds() == fds, "the temporary parameter file's descriptor leaked"
    assert not any(isinstance(a, fake_launch["TimerAction"]) for a in actions), \
        "a fixed delay instead of an event"
    nodes = {a.kwargs["package"]: a for a in actions if isinstance(a, fake_launch["Node"])}
    spawn = nodes["ros_gz_sim"]
    args = spawn.kwargs["arguments"]
    pose = {flag: float(args[args.index(flag) + 1]) for flag in ("-x", "-y", "-Y")}
    assert pose == pytest.approx({"-x": start.x_m, "-y": start.y_m, "-Y": start.yaw_rad})
    # map -> odom is the spawn pose (Gazebo's odometry starts at zero there)
    tf_args = nodes["tf2_ros"].kwargs["arguments"]
    assert float(tf_args[tf_args.index("--x") + 1]) == pytest.approx(start.x_m)
    assert float(tf_args[tf_args.index("--qz") + 1]) == pytest.approx(
        math.sin(start.yaw_rad / 2))
    # the stack is started by the spawner's exit, and only if it succeeded
    handlers = [a for a in actions if isinstance(a, fake_launch["RegisterEventHandler"])]
    assert len(handlers) == 1
    on_exit = handlers[0].args[0]
    assert isinstance(on_exit, _OnProcessExit) and on_exit.kwargs["target_action"] is spawn
    started = on_exit.kwargs["on_exit"](types.SimpleNamespace(returncode=0), {})
    assert len(started) == 1 and isinstance(started[0], fake_launch["Node"])
    cmd = started[0].kwargs["arguments"]
    assert cmd[:2] == ["--profile", "external"]
    params_file = Path(cmd[cmd.index("--params-file") + 1])
    params = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    assert params["/**"]["ros__parameters"]["use_sim_time"] is True
    navigator = params["/**/navigator"]["ros__parameters"]
    assert navigator["odom_origin"] == pytest.approx([start.x_m, start.y_m, start.yaw_rad])
    # the rest of the shipped file is kept
    shipped = yaml.safe_load((ROOT / "config" / "passeur.yaml").read_text(encoding="utf-8"))
    assert set(params) == set(shipped)
    failed = on_exit.kwargs["on_exit"](types.SimpleNamespace(returncode=1), {})
    assert any(isinstance(a, fake_launch["Shutdown"]) for a in failed)
    assert not any(isinstance(a, (fake_launch["ExecuteProcess"], fake_launch["Node"]))
                   for a in failed)
    params_file.unlink()


def test_navigator_parameter_the_launch_file_sets_exists() -> None:
    """gazebo_stack_parameters sets the navigator's odom origin under the name it declares."""
    from passeur.launch_support import NAVIGATOR_ODOM_ORIGIN, gazebo_stack_parameters

    source = (ROOT / "src" / "passeur" / "navigation" / "navigator_node.py").read_text(
        encoding="utf-8")
    assert f'declare(self, "{NAVIGATOR_ODOM_ORIGIN}", [0.0, 0.0, 0.0]' in source
    # and keeps what is there, even empty sections
    out = gazebo_stack_parameters({"/**": None, "/**/navigator": {"ros__parameters": {
        "pose_source": "odom"}}}, (1.0, 2.0, 0.5))
    assert out == {"/**": {"ros__parameters": {"use_sim_time": True}},
                   "/**/navigator": {"ros__parameters": {"pose_source": "odom",
                                                         "odom_origin": [1.0, 2.0, 0.5]}}}


def test_package_xml_declares_what_the_launch_file_runs() -> None:
    import xml.etree.ElementTree as ET

    depends = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    tree = module()
    packages = {k.value.value for call in ast.walk(tree) if isinstance(call, ast.Call)
                for k in call.keywords if k.arg == "package" and isinstance(k.value, ast.Constant)}
    packages.discard("passeur")  # the stack itself
    assert packages == {"ros_gz_sim", "ros_gz_bridge", "robot_state_publisher", "tf2_ros"}
    assert packages | {"launch", "launch_ros", "xacro", "ament_index_python"} <= depends


def test_the_stack_is_run_from_the_packages_lib_directory(fake_launch: dict[str, type]) -> None:
    """colcon installs this package's console scripts in lib/passeur (setup.cfg), which is not
    on PATH: `ros2 launch` finds them only through launch_ros' Node(package=, executable=).
    A bare `passeur_stack` in an ExecuteProcess fails with 'executable not found'."""
    import configparser

    from passeur.bringup import EXTERNAL, add_stack_arguments

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert cfg["install"]["install_scripts"] == "$base/lib/passeur"
    setup_py = (ROOT / "setup.py").read_text(encoding="utf-8")
    scripts = {line.split("=")[0].strip().strip('"') for line in setup_py.splitlines()
               if "= passeur." in line}
    assert "passeur_stack" in scripts
    actions = _gazebo_actions(fake_launch)
    handler = next(a for a in actions if isinstance(a, fake_launch["RegisterEventHandler"]))
    started = handler.args[0].kwargs["on_exit"](types.SimpleNamespace(returncode=0), {})
    for action in [*actions, *started]:
        if isinstance(action, fake_launch["ExecuteProcess"]):
            assert action.kwargs["cmd"][0] not in scripts, \
                f"{action.kwargs['cmd'][0]} is not on PATH in a colcon install"
    (stack,) = started
    assert isinstance(stack, fake_launch["Node"])
    assert (stack.kwargs["package"], stack.kwargs["executable"]) == ("passeur", "passeur_stack")
    # no name/namespace: launch_ros would rename every node of the process to it
    assert "name" not in stack.kwargs and "namespace" not in stack.kwargs
    import argparse

    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--profile", required=True)
    add_stack_arguments(parser)
    args = parser.parse_args(stack.kwargs["arguments"])
    assert args.profile == EXTERNAL and args.params_file.is_file()
    args.params_file.unlink()


def _docstring(path: Path) -> str:
    text = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(text.split())


def test_gazebo_and_robot_launch_files_are_documented_as_alternatives(
        fake_launch: dict[str, type]) -> None:
    """gazebo.launch.py runs the `external` stack itself, which is what robot.launch.py runs:
    docs telling the user to start both would give two stacks (two `cmd_vel` publishers, two
    web servers on one port)."""
    from passeur.bringup import EXTERNAL

    actions = _gazebo_actions(fake_launch)
    handler = next(a for a in actions if isinstance(a, fake_launch["RegisterEventHandler"]))
    (stack,) = handler.args[0].kwargs["on_exit"](types.SimpleNamespace(returncode=0), {})
    arguments = stack.kwargs["arguments"]
    assert arguments[arguments.index("--profile") + 1] == EXTERNAL
    robot_text = (ROOT / "launch" / "robot.launch.py").read_text(encoding="utf-8")
    assert "stack_launch_description(EXTERNAL)" in robot_text  # the same graph

    robot_doc = _docstring(ROOT / "launch" / "robot.launch.py")
    gazebo_doc = _docstring(LAUNCH)
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    # Nothing tells the user to start one next to the other ...
    both = re.compile(r"(start|run|launch)\w*[^.;:]*(gazebo\.launch\.py[^.;:]*\b(first|then|"
                      r"before|beside|alongside|next to)\b|\b(first|then)\b[^.;:]*"
                      r"robot\.launch\.py)", re.IGNORECASE)
    for name, text in (("robot.launch.py", robot_doc), ("gazebo.launch.py", gazebo_doc),
                       ("README.md", readme)):
        for sentence in re.split(r"(?<=[.:;])\s", text):
            negated = re.search(r"\b(not|never)\b", sentence, re.IGNORECASE)
            assert negated or not both.search(sentence), \
                f"{name} tells the user to run both: {sentence!r}"
    # ... and each launch file says the other is not to be added.
    assert "gazebo.launch.py starts this same stack itself" in robot_doc
    assert "do not also start robot.launch.py" in gazebo_doc
    assert "never two" in readme and "Do not add robot.launch.py" in readme


def test_the_ball_casters_touch_the_floor_as_the_urdf_says() -> None:
    """The xacro's comment says the casters touch the floor: their spheres' lowest point is
    at base_link's height (the floor)."""
    import xml.etree.ElementTree as ET

    import xacro

    urdf = ET.fromstring(xacro.process_file(str(ROOT / "urdf" / "passeur.urdf.xacro")).toxml())
    links = {link.get("name"): link for link in urdf.iter("link")}
    casters = [j for j in urdf.iter("joint") if "caster" in (j.get("name") or "")]
    assert len(casters) == 2
    for joint in casters:
        child = joint.find("child").get("link")  # type: ignore[union-attr]
        radius = float(links[child].find("collision/geometry/sphere").get("radius"))  # type: ignore[union-attr,arg-type]
        z = float(joint.find("origin").get("xyz").split()[2])  # type: ignore[union-attr]
        assert joint.find("parent").get("link") == "base_link"  # type: ignore[union-attr]
        assert z - radius == pytest.approx(0.0, abs=1e-9)


def test_gazebo_launch_passes_a_subset_of_nodes_to_the_stack(
        fake_launch: dict[str, type]) -> None:
    """`nodes:=safety,reading,telepresence` (Nav2 instead of the navigator) reaches
    passeur_stack's --nodes; empty: every node of the profile."""
    import argparse

    from passeur.bringup import add_stack_arguments

    for nodes, expected in (("", None), ("safety,reading,telepresence",
                                         "safety,reading,telepresence")):
        actions = _gazebo_actions(fake_launch, nodes=nodes)
        handler = next(a for a in actions if isinstance(a, fake_launch["RegisterEventHandler"]))
        (stack,) = handler.args[0].kwargs["on_exit"](types.SimpleNamespace(returncode=0), {})
        parser = argparse.ArgumentParser(exit_on_error=False)
        parser.add_argument("--profile", required=True)
        add_stack_arguments(parser)
        args = parser.parse_args(stack.kwargs["arguments"])
        assert args.nodes == expected
        args.params_file.unlink()


def _stack_parameters(fake: dict[str, type], params_file: str) -> dict[str, Any]:
    actions = _gazebo_actions(fake, params_file=params_file)
    handler = next(a for a in actions if isinstance(a, fake["RegisterEventHandler"]))
    stack = handler.args[0].kwargs["on_exit"](types.SimpleNamespace(returncode=0), {})[0]
    cmd = stack.kwargs["arguments"]
    path = Path(cmd[cmd.index("--params-file") + 1])
    try:
        params: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    finally:
        path.unlink()
    return params


def test_gazebo_launch_takes_the_users_parameter_file(fake_launch: dict[str, type],
                                                      tmp_path: Path) -> None:
    """Like sim.launch.py and robot.launch.py: the staff password hash, speeds and the rest
    come from the user's file (without it the staff page stayed disabled under Gazebo)."""
    own = tmp_path / "museum.yaml"
    own.write_text("/**/telepresence:\n  ros__parameters:\n    staff_password_hash: 'scrypt$x'\n",
                   encoding="utf-8")
    params = _stack_parameters(fake_launch, str(own))
    assert params["/**/telepresence"]["ros__parameters"]["staff_password_hash"] == "scrypt$x"
    assert params["/**"]["ros__parameters"]["use_sim_time"] is True
    assert "odom_origin" in params["/**/navigator"]["ros__parameters"]
    from passeur.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot read the parameter file"):
        _gazebo_actions(fake_launch, params_file=str(tmp_path / "missing.yaml"))
