"""Launch descriptions for `ros2 launch passeur sim.launch.py` / `robot.launch.py`.

Both files build the node graph from `passeur.bringup.NODES` (the one list): by default a
single `passeur_stack` process runs every node of the profile (one executor thread per node),
exactly like `passeur sim` / `passeur robot`; with `split_processes:=true` each node of the
profile that `nodes:=` names (all when empty) gets its own `passeur_stack --nodes NAME`
process (easier to restart or profile one node).

`launch` and `launch_ros` exist only in a full ROS install, so they are imported inside
`stack_launch_description()`, never at module level.
"""

from __future__ import annotations

import copy
from typing import Any

from passeur.bringup import EXTERNAL, SIM, node_list, specs_for
from passeur.errors import ConfigError

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


def launch_bool(name: str, text: str) -> bool:
    """A boolean launch argument, read as launch's IfCondition reads it."""
    value = text.strip().lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ConfigError(f"launch argument {name}:={text!r}: expected true or false")


def split_process_wanted(profile: str, name: str, split_processes: str, nodes: str) -> bool:
    """Whether node `name` gets a process of its own: `split_processes` is true and `nodes`
    names it (empty: every node of the profile). An unknown name in `nodes` is refused as
    `passeur_stack --nodes` refuses it."""
    if not launch_bool("split_processes", split_processes):
        return False
    return name in {spec.name for spec in specs_for(profile, node_list(nodes))}


def stack_launch_description(profile: str) -> Any:
    if profile not in (SIM, EXTERNAL):
        raise ValueError(f"unknown profile '{profile}'")
    from launch import Condition, LaunchDescription  # type: ignore[attr-defined]
    from launch.actions import DeclareLaunchArgument
    from launch.conditions import UnlessCondition
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
    def wanted(name: str) -> Any:
        def predicate(context: Any) -> bool:
            return split_process_wanted(profile, name, split.perform(context),
                                        LaunchConfiguration("nodes").perform(context))

        return Condition(predicate=predicate)

    for name in node_names(profile):
        actions.append(Node(package=PACKAGE, executable=EXECUTABLE, output="screen",
                            arguments=stack_args(name), condition=wanted(name)))
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
