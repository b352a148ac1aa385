"""Launch descriptions for `ros2 launch passeur sim.launch.py` / `robot.launch.py`.

Both files build the node graph from `passeur.bringup.NODES` (the one list): by default a
single `passeur_stack` process runs every node of the profile (one executor thread per node),
exactly like `passeur sim` / `passeur robot`; with `split_processes:=true` each node of the list gets its
own `passeur_stack --nodes NAME` process (easier to restart or profile one node).

`launch` and `launch_ros` exist only in a full ROS install, so they are imported inside
`stack_launch_description()`, never at module level.
"""

from __future__ import annotations

import copy
from typing import Any

from passeur.bringup import EXTERNAL, SIM, specs_for

PACKAGE = "passeur"
EXECUTABLE = "passeur_stack"
#: The default parameter file, relative to the package's share directory.
DEFAULT_PARAMS = ("config", "passeur.yaml")


def launch_arguments(profile: str) -> list[tuple[str, str, str]]:
    """(name, default, description) of every launch argument for `profile`."""
    args = [
        ("world", "", "world to load: sim/worlds/<world>.sdf, sim/maps/<world>.yaml, "
                      "config/places/<world>.yaml (library, chateau); empty: the parameter "
                      "file's `world`"),
        ("namespace", "", "ROS namespace for every node (e.g. robot1); empty for none"),
        ("params_file", "<share>/config/passeur.yaml",
         "ROS 2 parameter file (default: the package's config/passeur.yaml)"),
        ("nodes", "", "comma-separated subset of nodes to run (default: every node of the "
                      f"'{profile}' profile)"),
        ("split_processes", "false", "true: one passeur_stack process per node instead of "
                                     "one process for the whole graph"),
    ]
    return args


def node_names(profile: str) -> list[str]:
    """The nodes a launch file of this profile starts: bringup's list, filtered by profile."""
    return [spec.name for spec in specs_for(profile)]


def stack_launch_description(profile: str) -> Any:
    if profile not in (SIM, EXTERNAL):
        raise ValueError(f"unknown profile '{profile}'")
    from launch import LaunchDescription  # type: ignore[attr-defined]
    from launch.actions import DeclareLaunchArgument
    from launch.conditions import IfCondition, UnlessCondition
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.substitutions import FindPackageShare

    actions: list[Any] = []
    for name, default, description in launch_arguments(profile):
        if name == "params_file":
            actions.append(DeclareLaunchArgument(
                name, default_value=PathJoinSubstitution(
                    [FindPackageShare(PACKAGE), *DEFAULT_PARAMS]),
                description=description))
        else:
            actions.append(DeclareLaunchArgument(name, default_value=default,
                                                 description=description))

    def stack_args(nodes: Any) -> list[Any]:
        # Namespace and parameters go through passeur_stack's own options, not launch_ros'
        # `namespace=`/`name=`: those would apply to every node in the process at once.
        return ["--profile", profile,
                "--params-file", LaunchConfiguration("params_file"),
                "--world", LaunchConfiguration("world"),
                "--namespace", LaunchConfiguration("namespace"),
                "--nodes", nodes]

    split = LaunchConfiguration("split_processes")
    actions.append(Node(package=PACKAGE, executable=EXECUTABLE, output="screen",
                        arguments=stack_args(LaunchConfiguration("nodes")),
                        condition=UnlessCondition(split)))
    for name in node_names(profile):
        actions.append(Node(package=PACKAGE, executable=EXECUTABLE, output="screen",
                            arguments=stack_args(name), condition=IfCondition(split)))
    return LaunchDescription(actions)


#: The navigator's parameter for the map pose [x, y, yaw] of the odom frame.
NAVIGATOR_ODOM_ORIGIN = "odom_origin"


def gazebo_stack_parameters(params: dict[str, Any],
                            start_xyyaw: tuple[float, float, float]) -> dict[str, Any]:
    """The parameter file's content for the stack running beside Gazebo (a copy).

    Every node on sim time (Gazebo owns `/clock`), and the navigator told that odom starts at
    the spawn pose: Gazebo's DiffDrive odometry is zero there, unlike the embedded simulator's.
    """
    out = copy.deepcopy(params)

    def section(key: str) -> dict[str, Any]:
        node = out.get(key) or {}
        out[key] = node
        values = node.get("ros__parameters") or {}
        node["ros__parameters"] = values
        return values  # type: ignore[no-any-return]

    section("/**")["use_sim_time"] = True
    section("/**/navigator")[NAVIGATOR_ODOM_ORIGIN] = [float(v) for v in start_xyyaw]
    return out
