"""Gazebo (gz sim) instead of the embedded simulator, for machines with ROS 2 + Gazebo.

    ros2 launch passeur gazebo.launch.py world:=library headless:=true

Starts gz sim with sim/worlds/<world>.sdf, publishes the robot description (xacro), spawns
the robot at the world's `robot_start` frame, bridges the simulator topics listed in
config/gz_bridge.yaml (the same as the embedded simulator's), then runs the rest of the stack
with `passeur_stack --profile external` on Gazebo's clock.

Gazebo's DiffDrive odometry starts at zero at the spawn pose; the embedded simulator's (with
its default odom_origin 'map') starts at the spawn pose. A static map -> odom transform equal
to the start pose is therefore published here for ROS tools.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction, TimerAction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

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


def _sim_time_params(share: Path) -> str:
    """config/passeur.yaml plus use_sim_time for every node (Gazebo owns the clock)."""
    import yaml

    params = yaml.safe_load((share / PARAMS_FILE).read_text(encoding="utf-8")) or {}
    params.setdefault("/**", {}).setdefault("ros__parameters", {})["use_sim_time"] = True
    out = Path(tempfile.mkstemp(prefix="passeur_gazebo_", suffix=".yaml")[1])
    out.write_text(yaml.safe_dump(params), encoding="utf-8")
    return str(out)


def _launch_setup(context, *args, **kwargs):  # type: ignore[no-untyped-def]
    import math

    import xacro

    from passeur.sim.sdf_world import load_world

    share = Path(get_package_share_directory(PACKAGE))
    world = LaunchConfiguration("world").perform(context)
    headless = LaunchConfiguration("headless").perform(context).lower() in ("1", "true", "yes")
    world_file = _world_file(share, world)
    description = load_world(world_file)
    start = description.start_pose
    robot_description = xacro.process_file(str(share / ROBOT_XACRO)).toxml()

    gz_cmd = ["gz", "sim", "-r", "-v", "2"]
    if headless:
        gz_cmd.append("-s")
    gz_cmd.append(str(world_file))
    half = start.yaw_rad / 2.0
    return [
        ExecuteProcess(cmd=gz_cmd, output="screen", name="gz_sim"),
        Node(package="robot_state_publisher", executable="robot_state_publisher",
             parameters=[{"robot_description": robot_description, "use_sim_time": True}],
             output="screen"),
        Node(package="ros_gz_sim", executable="create", output="screen",
             arguments=["-world", description.name, "-name", ROBOT_NAME,
                        "-topic", "robot_description",
                        "-x", f"{start.x_m}", "-y", f"{start.y_m}", "-z", "0.0",
                        "-Y", f"{start.yaw_rad}"]),
        Node(package="ros_gz_bridge", executable="parameter_bridge", output="screen",
             parameters=[{"config_file": str(share / BRIDGE_CONFIG), "use_sim_time": True}]),
        Node(package="tf2_ros", executable="static_transform_publisher", output="screen",
             arguments=["--x", f"{start.x_m}", "--y", f"{start.y_m}",
                        "--qz", f"{math.sin(half)}", "--qw", f"{math.cos(half)}",
                        "--frame-id", "map", "--child-frame-id", "odom"]),
        # The stack once the robot exists (the bridge needs the sensors' topics).
        TimerAction(period=3.0, actions=[
            ExecuteProcess(cmd=[STACK_EXECUTABLE, "--profile", "external", "--world", world,
                                "--params-file", _sim_time_params(share)],
                           output="screen", name="passeur_stack"),
        ]),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("world", default_value="library",
                              description="world name in sim/worlds/ (library, chateau) or an "
                                          ".sdf path"),
        DeclareLaunchArgument("headless", default_value="true",
                              description="run the Gazebo server only (no GUI)"),
        OpaqueFunction(function=_launch_setup),
    ])
