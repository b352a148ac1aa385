"""Two clocks on one ROS domain: noticing another publisher of `/clock`.

Every node on sim time follows whatever arrives on `/clock`. With a second simulator on the
same ROS domain (`passeur sim` started twice, Gazebo's bridge, `ros2 bag play --clock`), two
clocks interleave and those nodes see time jump back and forth: timers fire at random,
transforms and odometry look stale or from the future. The simulator cannot tell which clock
is the right one, so it does not stop: it says loudly what is wrong and how to fix it.

Pure helpers (no rclpy): the simulator node feeds them the ROS graph.
"""

from __future__ import annotations

from collections.abc import Iterable

#: What the ROS graph says for an endpoint whose node is not known (yet): its participant was
#: discovered before the node's name, or it is not a ROS node (plain DDS).
UNKNOWN_NAMES = ("_NODE_NAME_UNKNOWN_", "_NODE_NAMESPACE_UNKNOWN_")
UNNAMED = "a publisher whose node is not known yet"


def full_name(namespace: str, name: str) -> str:
    """`/ns/node` from a node's namespace and name, as `ros2 node list` shows it."""
    if name in UNKNOWN_NAMES or namespace in UNKNOWN_NAMES:
        return UNNAMED
    return f"{namespace.rstrip('/')}/{name}"


def other_publishers(publishers: Iterable[str], own: str) -> list[str]:
    """The publishers (full node names) once our own publisher is taken out.

    Ours is one entry named `own`. Another simulator started the same way has the same name
    (`/sim` twice): only one entry of that name is ours, the rest are others.
    """
    others = sorted(publishers)
    if own in others:
        others.remove(own)
    return others


def conflict_message(topic: str, others: list[str], domain_id: int) -> str:
    """What an engineer reads in the simulator's log when another clock is on the domain."""
    return (f"another publisher of {topic} on ROS_DOMAIN_ID {domain_id}: "
            f"{', '.join(others)} (a second simulator such as `passeur sim` or Gazebo's "
            f"bridge, or `ros2 bag play --clock`); every node on sim time now sees time jump "
            f"back and forth. Stop the other one, or give each simulator its own domain: "
            f"export ROS_DOMAIN_ID=<another number, 0-101> before starting it, the same for "
            f"every program of that robot")
