"""World description -> occupancy map (map_server format) for navigation.

A cell is occupied when any collision shape that the robot could bump into (between the floor
clearance and the top of the robot) covers part of it; free cells the robot cannot reach from
its start pose (behind walls, outside the building) are marked unknown, as a SLAM map would.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from passeur.errors import ConfigError
from passeur.navigation.map_io import FREE, OCCUPIED, UNKNOWN, OccupancyMap
from passeur.sim.sdf_world import Shape, World

RESOLUTION_M = 0.05
MARGIN_M = 0.5
#: Shapes entirely below this height (rugs, thresholds) do not block the robot.
MIN_OBSTACLE_TOP_M = 0.03
#: Shapes entirely above this height (door lintels) pass over the robot (mast top 1.36 m).
ROBOT_HEIGHT_M = 1.45
_SUBSAMPLES = (-1.0 / 3.0, 0.0, 1.0 / 3.0)  # 3x3 points per cell: thin shapes are not missed
#: Largest map made (the library at 5 cm is 0.14 million cells): past it numpy would run out of
#: memory, or the planner take minutes, on a world or resolution that is surely a mistake.
MAX_MAP_CELLS = 100_000_000


def blocking_shapes(world: World) -> list[Shape]:
    out = []
    for shape in world.obstacles():
        z = shape.world_points()[:, 2]
        if z.max() < MIN_OBSTACLE_TOP_M or z.min() > ROBOT_HEIGHT_M:
            continue
        out.append(shape)
    return out


def _convex_hull(points: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Counter-clockwise hull of 2D points (monotone chain)."""
    pts = sorted({(round(float(x), 9), round(float(y), 9)) for x, y in points})
    if len(pts) <= 2:
        return np.array(pts, dtype=np.float64)

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def footprint(shape: Shape) -> npt.NDArray[np.float64]:
    """The shape's outline seen from above, as a counter-clockwise convex polygon (N x 2)."""
    return _convex_hull(shape.world_points(segments=48)[:, :2])


def _fill_polygon(occupied: npt.NDArray[np.bool_], poly: npt.NDArray[np.float64],
                  origin_x: float, origin_y: float, res: float) -> None:
    if len(poly) < 3:
        return
    rows, cols = occupied.shape
    c0 = max(math.floor((poly[:, 0].min() - origin_x) / res) - 1, 0)
    c1 = min(math.ceil((poly[:, 0].max() - origin_x) / res) + 1, cols)
    r0 = max(math.floor((poly[:, 1].min() - origin_y) / res) - 1, 0)
    r1 = min(math.ceil((poly[:, 1].max() - origin_y) / res) + 1, rows)
    if c0 >= c1 or r0 >= r1:
        return
    cc, rr = np.meshgrid(np.arange(c0, c1), np.arange(r0, r1))
    hit = np.zeros(cc.shape, dtype=bool)
    edges = np.roll(poly, -1, axis=0) - poly
    for dx in _SUBSAMPLES:
        for dy in _SUBSAMPLES:
            px = origin_x + (cc + 0.5 + dx) * res
            py = origin_y + (rr + 0.5 + dy) * res
            inside = np.ones(cc.shape, dtype=bool)
            for (x0, y0), (ex, ey) in zip(poly, edges, strict=True):
                inside &= ex * (py - y0) - ey * (px - x0) >= -1e-12
            hit |= inside
    occupied[r0:r1, c0:c1] |= hit


def _reachable(free: npt.NDArray[np.bool_], seed: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Free cells 4-connected to `seed`."""
    from scipy import ndimage

    labels, _count = ndimage.label(free)
    label = labels[seed]
    if label == 0:
        return np.zeros_like(free)
    out: npt.NDArray[np.bool_] = labels == label
    return out


def _check_map_size(world: World, width_m: float, height_m: float, resolution_m: float) -> None:
    cells = (width_m / resolution_m) * (height_m / resolution_m)  # float: inf if absurd
    if math.isfinite(cells) and cells <= MAX_MAP_CELLS:
        return

    def extent_m(shape: Shape) -> float:
        return float(np.ptp(shape.world_points()[:, :2], axis=0).max())

    if (width_m / RESOLUTION_M) * (height_m / RESOLUTION_M) <= MAX_MAP_CELLS:
        fix = f"use a coarser --resolution (the maps are {RESOLUTION_M:g} m)"
    else:
        widest = max(world.obstacles(), key=extent_m)
        fix = (f"check the sizes and poses in the world (widest shape: model "
               f"'{widest.model}' link '{widest.link}' collision '{widest.name}', "
               f"{extent_m(widest):.4g} m)")
    raise ConfigError(
        f"world '{world.name}': its map would be {width_m:.4g} m x {height_m:.4g} m at "
        f"{resolution_m:g} m per cell, {cells:.3g} cells (at most {MAX_MAP_CELLS:.3g}); {fix}",
        world.path)


def rasterize(world: World, resolution_m: float = RESOLUTION_M,
              margin_m: float = MARGIN_M) -> OccupancyMap:
    min_x, min_y, max_x, max_y = world.bounds()
    _check_map_size(world, max_x - min_x + 2 * margin_m, max_y - min_y + 2 * margin_m,
                    resolution_m)
    origin_x = math.floor(round((min_x - margin_m) / resolution_m, 6)) * resolution_m
    origin_y = math.floor(round((min_y - margin_m) / resolution_m, 6)) * resolution_m
    cols = math.ceil(round((max_x + margin_m - origin_x) / resolution_m, 6))
    rows = math.ceil(round((max_y + margin_m - origin_y) / resolution_m, 6))
    occupied = np.zeros((rows, cols), dtype=bool)
    for shape in blocking_shapes(world):
        _fill_polygon(occupied, footprint(shape), origin_x, origin_y, resolution_m)
    data = np.full((rows, cols), UNKNOWN, dtype=np.int8)
    data[occupied] = OCCUPIED
    grid = OccupancyMap(data, resolution_m, round(origin_x, 6), round(origin_y, 6), 0.0)
    start = world.start_pose
    seed = grid.world_to_cell(start.x_m, start.y_m)
    if grid.in_bounds(*seed) and not occupied[seed]:
        data[_reachable(~occupied, seed)] = FREE
    else:
        data[~occupied] = FREE  # no usable start pose: keep every free cell
    return grid
