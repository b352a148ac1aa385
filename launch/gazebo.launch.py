"""Gazebo (gz sim) instead of the embedded simulator, for machines with ROS 2 + Gazebo.

    ros2 launch passeur gazebo.launch.py world:=library headless:=true
        [params_file:=/path/to/params.yaml] [nodes:=safety,reading,telepresence]

Starts gz sim with sim/worlds/<world>.sdf, publishes the robot description (xacro), spawns
the robot at the world's `robot_start` frame, bridges the simulator topics listed in
config/gz_bridge.yaml (the same as the embedded simulator's), then, once the spawner has
exited successfully (the robot and its sensors exist), runs the rest of the stack with
`passeur_stack --profile external` on Gazebo's clock: the same graph as robot.launch.py and
`passeur robot`. So this file alone is the whole robot; do not also start robot.launch.py or
`passeur robot` (two stacks: two `cmd_vel` publishers, a clash on the web port).

Gazebo's DiffDrive odometry starts at zero at the spawn pose; the embedded simulator's (with
its default odom_origin 'map') starts at the spawn pose. So the navigator is told where odom
starts (its `odom_origin` = the spawn pose) and a static map -> odom transform equal to the
spawn pose is published for ROS tools.
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import tempfile
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    ExecuteProcess,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from passeur.launch_support import gazebo_stack_parameters

PACKAGE = "passeur"
ROBOT_XACRO = "urdf/passeur.urdf.xacro"
BRIDGE_CONFIG = "config/gz_bridge.yaml"
PARAMS_FILE = "config/passeur.yaml"
WORLDS_DIR = "sim/worlds"
STACK_EXECUTABLE = "passeur_stack"
ROBOT_NAME = "passeur"


def _world_file(share: Path, world: str) -> Path:
    if world.endswith(".sdf"):
        return Path(world)
    return share / WORLDS_DIR / f"{world}.sdf"


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _stack_params_file(source: Path, start_xyyaw: tuple[float, float, float]) -> str:
    """The parameter file `source` plus use_sim_time and the navigator's odom origin, in a
    temporary file removed when the launch process exits."""
    import yaml

    from passeur.errors import ConfigError

    try:
        params = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the parameter file (params_file:=): {exc}",
                          source) from exc
    if not isinstance(params, dict):
        raise ConfigError("expected a mapping of node names to `ros__parameters`", source)
    params = gazebo_stack_parameters(params, start_xyyaw)
    fd, name = tempfile.mkstemp(prefix="passeur_gazebo_", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        yaml.safe_dump(params, out)
    atexit.register(_remove_quietly, name)
    return name


def _launch_setup(context, *args, **kwargs):  # type: ignore[no-untyped-def]
    import xacro

    from passeur.sim.sdf_world import load_world

    share = Path(get_package_share_directory(PACKAGE))
    world = LaunchConfiguration("world").perform(context)
    headless = LaunchConfiguration("headless").perform(context).lower() in ("1", "true", "yes")
    nodes = LaunchConfiguration("nodes").perform(context).strip()
    params_file = LaunchConfiguration("params_file").perform(context).strip()
    params_source = Path(params_file) if params_file else share / PARAMS_FILE
    world_file = _world_file(share, world)
    description = load_world(world_file)
    start = description.start_pose
    robot_description = xacro.process_file(str(share / ROBOT_XACRO)).toxml()

    gz_cmd = ["gz", "sim", "-r", "-v", "2"]
    if headless:
        gz_cmd.append("-s")
    gz_cmd.append(str(world_file))
    half = start.yaw_rad / 2.0
    spawn = Node(package="ros_gz_sim", executable="create", output="screen",
                 arguments=["-world", description.name, "-name", ROBOT_NAME,
                            "-topic", "robot_description",
                            "-x", f"{start.x_m}", "-y", f"{start.y_m}", "-z", "0.0",
                            "-Y", f"{start.yaw_rad}"])
    # launch_ros' Node finds the executable in lib/passeur (colcon puts console scripts there,
    # not on PATH). No name/namespace: they would rename every node of the process.
    stack = Node(
        package=PACKAGE, executable=STACK_EXECUTABLE, output="screen",
        arguments=["--profile", "external", "--world", world,
                   "--params-file",
                   _stack_params_file(params_source, (start.x_m, start.y_m, start.yaw_rad)),
                   *(["--nodes", nodes] if nodes else [])])

    def after_spawn(event, _context):  # type: ignore[no-untyped-def]
        # The stack needs the robot's sensor topics: start it once the robot exists.
        if event.returncode == 0:
            return [stack]
        return [LogInfo(msg=f"spawning the robot failed (exit code {event.returncode}); "
                            "not starting the stack"),
                Shutdown(reason="robot spawn failed")]

    return [
        ExecuteProcess(cmd=gz_cmd, output="screen", name="gz_sim"),
        Node(package="robot_state_publisher", executable="robot_state_publisher",
             parameters=[{"robot_description": robot_description, "use_sim_time": True}],
             output="screen"),
        spawn,
        Node(package="ros_gz_bridge", executable="parameter_bridge", output="screen",
             parameters=[{"config_file": str(share / BRIDGE_CONFIG), "use_sim_time": True}]),
        Node(package="tf2_ros", executable="static_transform_publisher", output="screen",
             arguments=["--x", f"{start.x_m}", "--y", f"{start.y_m}",
                        "--qz", f"{math.sin(half)}", "--qw", f"{math.cos(half)}",
                        "--frame-id", "map", "--child-frame-id", "odom"]),
        RegisterEventHandler(OnProcessExit(target_action=spawn, on_exit=after_spawn)),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("world", default_value="library",
                              description="world name in sim/worlds/ (library, chateau) or an "
                                          ".sdf path"),
        DeclareLaunchArgument("headless", default_value="true",
                              description="run the Gazebo server only (no GUI)"),
        DeclareLaunchArgument("params_file", default_value="",
                              description="ROS 2 parameter file for the stack (your staff "
                                          "password hash, speeds, ...); empty: the package's "
                                          "config/passeur.yaml. use_sim_time and the "
                                          "navigator's odom_origin are set on top of it"),
        DeclareLaunchArgument("nodes", default_value="",
                              description="comma-separated subset of the stack's nodes (e.g. "
                                          "safety,reading,telepresence to use Nav2 instead of "
                                          "the navigator); empty: every node of the "
                                          "'external' profile"),
        OpaqueFunction(function=_launch_setup),
    ])
