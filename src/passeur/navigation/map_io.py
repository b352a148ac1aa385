"""Occupancy maps in map_server's format (YAML + PGM), as plain numpy arrays.

`OccupancyMap.data` is int8, row 0 = the map's BOTTOM row (y = origin_y), like
nav_msgs/OccupancyGrid: 0 free, 100 occupied, -1 unknown. The PGM on disk is top row first,
as map_server writes it (mode `trinary`, negate 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml

from passeur.errors import ConfigError

FREE = 0
OCCUPIED = 100
UNKNOWN = -1


@dataclass
class OccupancyMap:
    data: npt.NDArray[np.int8]  # (rows, cols), row 0 at y = origin_y
    resolution_m: float
    origin_x_m: float
    origin_y_m: float
    origin_yaw_rad: float = 0.0

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def world_to_cell(self, x_m: float, y_m: float) -> tuple[int, int]:
        """(row, col) of the cell containing the point; may be outside the grid."""
        col = math.floor((x_m - self.origin_x_m) / self.resolution_m)
        row = math.floor((y_m - self.origin_y_m) / self.resolution_m)
        return row, col

    def cell_to_world(self, row: int, col: int) -> tuple[float, float]:
        """Centre of a cell."""
        return (
            self.origin_x_m + (col + 0.5) * self.resolution_m,
            self.origin_y_m + (row + 0.5) * self.resolution_m,
        )

    def in_bounds(self, row: int, col: int) -> bool:
        return 0 <= row < self.height and 0 <= col < self.width


def load_map(yaml_path: Path) -> OccupancyMap:
    """Read a map_server YAML (+ its image). Raises ConfigError naming the file and problem."""
    try:
        meta = yaml.safe_load(yaml_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError("map file not found (build it with `passeur map build`)", yaml_path) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8",
                          yaml_path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the map file ({exc.strerror})", yaml_path) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", yaml_path) from exc
    if not isinstance(meta, dict):
        raise ConfigError("expected a mapping with image, resolution, origin", yaml_path)
    for key in ("image", "resolution", "origin"):
        if key not in meta:
            raise ConfigError(f"missing key '{key}'", yaml_path)
    try:
        resolution = float(meta["resolution"])
        origin = [float(v) for v in meta["origin"]]
        occupied_thresh = float(meta.get("occupied_thresh", 0.65))
        free_thresh = float(meta.get("free_thresh", 0.25))
        negate = int(meta.get("negate", 0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad number in map metadata: {exc}", yaml_path) from exc
    if resolution <= 0 or len(origin) != 3:
        raise ConfigError("resolution must be > 0 and origin must be [x, y, yaw]", yaml_path)
    image_path = (yaml_path.parent / str(meta["image"])).resolve()
    import cv2

    pixels = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
    if pixels is None:
        raise ConfigError(f"cannot read map image '{image_path}'", yaml_path)
    value = pixels.astype(np.float32) / 255.0
    occ = value if negate else 1.0 - value
    data = np.full(pixels.shape, UNKNOWN, dtype=np.int8)
    data[occ > occupied_thresh] = OCCUPIED
    data[occ < free_thresh] = FREE
    return OccupancyMap(np.flipud(data).copy(), resolution, origin[0], origin[1], origin[2])


def save_map(grid: OccupancyMap, yaml_path: Path) -> None:
    """Write `<name>.yaml` + `<name>.pgm` in map_server's trinary format."""
    import cv2

    image = np.full(grid.data.shape, 205, dtype=np.uint8)
    image[grid.data == FREE] = 254
    image[grid.data == OCCUPIED] = 0
    pgm = yaml_path.with_suffix(".pgm")
    try:
        yaml_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file where the folder should be, no permission
        raise ConfigError(f"cannot write the map here ({exc.strerror}); choose another "
                          "folder", yaml_path.parent) from exc
    if not cv2.imwrite(str(pgm), np.flipud(image)):
        raise ConfigError("cannot write map image", pgm)
    meta = {
        "image": pgm.name,
        "mode": "trinary",
        "resolution": grid.resolution_m,
        "origin": [grid.origin_x_m, grid.origin_y_m, grid.origin_yaw_rad],
        "negate": 0,
        "occupied_thresh": 0.65,
        "free_thresh": 0.196,  # as ROS map_saver: unknown (205) stays unknown on load
    }
    try:
        yaml_path.write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the map ({exc.strerror})", yaml_path) from exc
