"""`map_server`: publishes the world's occupancy map on `map`, latched, once at start."""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any

import numpy as np
from nav_msgs.msg import OccupancyGrid
from rclpy.node import Node

from passeur.errors import ConfigError
from passeur.navigation.map_io import OccupancyMap, load_map
from passeur.ros import qos
from passeur.ros.geometry import yaw_to_quaternion
from passeur.ros.params import declare

MAP_FRAME = "map"


def map_path_for_world(world: str) -> Path:
    """sim/maps/<world>.yaml for a world name, or <file>.yaml next to a world .sdf path."""
    from passeur.paths import share_path

    text = world.strip()
    if not text:
        raise ConfigError("map_server: parameter 'world' is empty; give a world name or map_file")
    if text.endswith(".sdf") or "/" in text:
        sdf = Path(text)
        beside = sdf.with_suffix(".yaml")
        if beside.is_file():
            return beside
        return share_path("sim", "maps", f"{sdf.stem}.yaml")
    return share_path("sim", "maps", f"{text}.yaml")


def to_message(grid: OccupancyMap, frame_id: str = MAP_FRAME) -> OccupancyGrid:
    msg = OccupancyGrid()
    msg.header.frame_id = frame_id
    msg.info.resolution = float(grid.resolution_m)
    msg.info.width = grid.width
    msg.info.height = grid.height
    msg.info.origin.position.x = grid.origin_x_m
    msg.info.origin.position.y = grid.origin_y_m
    x, y, z, w = yaw_to_quaternion(grid.origin_yaw_rad)
    msg.info.origin.orientation.x, msg.info.origin.orientation.y = x, y
    msg.info.origin.orientation.z, msg.info.origin.orientation.w = z, w
    msg.data = array.array("b", np.ascontiguousarray(grid.data, dtype=np.int8).tobytes())
    return msg


class MapNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("map_server", **kwargs)
        world = declare(self, "world", "library", "world whose map (sim/maps/<world>.yaml) to serve")
        map_file = declare(self, "map_file", "",
                           "map_server YAML to serve instead of the world's map")
        path = Path(map_file) if map_file else map_path_for_world(world)
        if not map_file and not path.is_file():
            # load_map's own hint (`passeur map build`) would build the library's map.
            from passeur.sim.sdf_world import available_worlds

            named = not (world.endswith(".sdf") or "/" in world)
            if named and world not in available_worlds():
                raise ConfigError(f"unknown world '{world}' (worlds: "
                                  f"{', '.join(available_worlds())}); for a building of your "
                                  "own, set map_server's map_file to its map (map_server "
                                  "YAML)", path)
            raise ConfigError(f"no occupancy map for world '{world}': build it with "
                              f"`passeur map build --world {world}`, or set map_server's "
                              "map_file", path)
        self.grid = load_map(path)
        self.map_path = path
        self._pub = self.create_publisher(OccupancyGrid, "map", qos.LATCHED)
        self._msg = to_message(self.grid)
        self._msg.header.stamp = self.get_clock().now().to_msg()
        self._pub.publish(self._msg)
        self.get_logger().info(f"serving {path} ({self.grid.width} x {self.grid.height} cells, "
                               f"{self.grid.resolution_m} m)")
