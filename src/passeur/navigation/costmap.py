"""A layered 2D costmap: static map + keep-out zones + live obstacles, inflated.

Layers (all on the map's grid, row 0 at y = origin_y, like nav_msgs/OccupancyGrid):
- static: occupied cells of the map (and unknown cells, by default) are lethal;
- keep-out: polygons from the places file (artworks, stairs), lethal;
- obstacles: cells where the lidar saw something the map does not have. Each marked cell
  keeps the time it was last seen; rays that pass through a cell clear it (a person walked
  away), and marks older than `obstacle_decay_s` vanish;
- slow zones: polygons with a speed limit (not an obstacle, read by the controller).

Inflation uses the Euclidean distance to the nearest lethal cell (scipy's
distance_transform_edt): cells closer than the robot radius are INSCRIBED (the robot's centre
must never be there), and a cost that decays exponentially with distance up to
`inflation_radius_m` keeps paths away from walls when there is room. The static distance
field is computed once; live obstacles only re-run the transform in a window around them.

Costs follow costmap_2d's convention: 0 free .. 252 near an obstacle, 253 inscribed,
254 lethal.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.ndimage import distance_transform_edt
from skimage.draw import polygon as draw_polygon

from passeur.errors import ConfigError
from passeur.navigation.map_io import OCCUPIED, UNKNOWN, OccupancyMap

FREE_COST = 0
MAX_NON_LETHAL = 252
INSCRIBED = 253
LETHAL = 254

Polygon = Sequence[tuple[float, float]]


@dataclass(frozen=True)
class CostmapConfig:
    robot_radius_m: float = 0.25
    #: The cost gradient reaches zero at this distance from an obstacle.
    inflation_radius_m: float = 0.9
    #: Exponential decay rate of the cost beyond the robot radius (1/m).
    cost_scaling_per_m: float = 4.0
    unknown_is_lethal: bool = True
    #: A live obstacle not seen again for this long is forgotten.
    obstacle_decay_s: float = 5.0
    #: Lidar hits farther than this are not marked (far hits are noisy and irrelevant).
    obstacle_max_range_m: float = 5.0
    #: Rays clear the cells they cross up to this range.
    raytrace_max_range_m: float = 8.0
    #: Hits this close to a wall already on the map are the wall itself, not a new obstacle.
    static_match_m: float = 0.15

    def validate(self) -> None:
        if not self.robot_radius_m > 0:
            raise ConfigError(f"robot_radius_m must be > 0 (got {self.robot_radius_m})")
        if self.inflation_radius_m < self.robot_radius_m:
            raise ConfigError(
                f"inflation_radius_m ({self.inflation_radius_m}) must be >= robot_radius_m "
                f"({self.robot_radius_m})")
        if self.cost_scaling_per_m <= 0 or self.obstacle_decay_s <= 0:
            raise ConfigError("cost_scaling_per_m and obstacle_decay_s must be > 0")
        if self.obstacle_max_range_m <= 0 or self.raytrace_max_range_m <= 0:
            raise ConfigError("obstacle and raytrace ranges must be > 0")


def rasterise_polygon(grid: OccupancyMap, polygon: Polygon) -> npt.NDArray[np.bool_]:
    """Cells covered by a polygon (world metres), conservatively: a cell any part of which
    is inside counts, so a rasterised keep-out zone never under-covers the real one."""
    mask = np.zeros(grid.data.shape, dtype=bool)
    pts = np.asarray(polygon, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 3 or pts.shape[1] != 2:
        raise ConfigError("a polygon needs at least 3 [x, y] points")
    cols = (pts[:, 0] - grid.origin_x_m) / grid.resolution_m - 0.5
    rows = (pts[:, 1] - grid.origin_y_m) / grid.resolution_m - 0.5
    rr, cc = draw_polygon(rows, cols, shape=mask.shape)
    mask[rr, cc] = True
    # Cells whose centre is outside but whose area overlaps: grow by the polygon outline.
    n = len(pts)
    for i in range(n):
        (r0, c0), (r1, c1) = (rows[i], cols[i]), (rows[(i + 1) % n], cols[(i + 1) % n])
        steps = int(max(abs(r1 - r0), abs(c1 - c0)) * 2) + 2
        t = np.linspace(0.0, 1.0, steps)
        r = np.rint(r0 + (r1 - r0) * t).astype(np.int64)
        c = np.rint(c0 + (c1 - c0) * t).astype(np.int64)
        h, w = grid.height, grid.width
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        mask[r[ok], c[ok]] = True
    return mask


def point_in_polygon(x_m: float, y_m: float, polygon: Polygon) -> bool:
    """Even-odd rule."""
    inside = False
    n = len(polygon)
    for i in range(n):
        x0, y0 = polygon[i]
        x1, y1 = polygon[(i + 1) % n]
        if (y0 > y_m) != (y1 > y_m):
            x_cross = x0 + (y_m - y0) * (x1 - x0) / (y1 - y0)
            if x_m < x_cross:
                inside = not inside
    return inside


@dataclass(frozen=True)
class ScanRays:
    """A planar scan in world coordinates, as the costmap uses it (from `scan_endpoints`)."""

    #: (N, 2) where each beam ended: its hit, else the point at range_max along it.
    points: npt.NDArray[np.float64]
    #: Beams that hit something (range_min <= r < range_max): these mark obstacles.
    hit: npt.NDArray[np.bool_]
    #: How far along each beam space is known to be free: the hit distance; range_max for
    #: beams with no return (r >= range_max or +inf); 0 for invalid readings (NaN, -inf,
    #: r < range_min: many lidars report 0 for "too close" or "no measurement"), which
    #: therefore neither mark nor clear.
    free_m: npt.NDArray[np.float64]
    #: World angle of beam 0 and the angle between beams (evenly spaced, as in a LaserScan).
    angle0_rad: float
    increment_rad: float


def scan_endpoints(
    sensor_x_m: float,
    sensor_y_m: float,
    sensor_yaw_rad: float,
    ranges: npt.ArrayLike,
    angle_min_rad: float,
    angle_increment_rad: float,
    range_min_m: float,
    range_max_m: float,
    *,
    body_xy: tuple[float, float] | None = None,
    self_filter_radius_m: float = 0.0,
) -> ScanRays:
    """World endpoints of a planar scan, which are real hits, and how far each proves free
    space (see ScanRays).

    With `body_xy` (the robot's centre) and `self_filter_radius_m`, a return closer than that
    to the centre is the robot's own body (the mast crossing the scan plane, seen by a real
    lidar or Gazebo's): neither a hit nor proof of free space beyond it."""
    r = np.asarray(ranges, dtype=np.float64).reshape(-1)
    angles = sensor_yaw_rad + angle_min_rad + angle_increment_rad * np.arange(r.size)
    with np.errstate(invalid="ignore"):
        hit = np.isfinite(r) & (r >= range_min_m) & (r < range_max_m)
        no_return = ~hit & (r >= range_max_m)  # False for NaN; True for +inf
    reach = max(float(range_max_m), 0.0)
    dist = np.where(hit, r, reach)
    pts = np.empty((r.size, 2))
    pts[:, 0] = sensor_x_m + dist * np.cos(angles)
    pts[:, 1] = sensor_y_m + dist * np.sin(angles)
    if body_xy is not None and self_filter_radius_m > 0.0:
        own = hit & (np.hypot(pts[:, 0] - body_xy[0], pts[:, 1] - body_xy[1])
                     < self_filter_radius_m)
        hit = hit & ~own
        r = np.where(own, np.nan, r)
    free = np.where(hit, r, np.where(no_return, reach, 0.0))
    return ScanRays(points=pts, hit=hit, free_m=free,
                    angle0_rad=float(sensor_yaw_rad + angle_min_rad),
                    increment_rad=float(angle_increment_rad))


class Costmap:
    """See module docstring. Not thread-safe: the owner serialises updates and reads."""

    def __init__(
        self,
        grid: OccupancyMap,
        config: CostmapConfig | None = None,
        keep_out: Sequence[Polygon] = (),
        slow_zones: Sequence[tuple[Polygon, float]] = (),
    ) -> None:
        self.config = config or CostmapConfig()
        self.config.validate()
        if abs(grid.origin_yaw_rad) > 1e-9:
            # Every cell lookup here assumes the grid's axes are the map frame's; a rotated
            # grid would put obstacles, keep-out zones and places in the wrong cells.
            raise ConfigError(
                f"map origin yaw {grid.origin_yaw_rad:.4f} rad is not supported: the map's "
                "grid must be aligned with the map frame (origin [x, y, 0.0]); re-save the map "
                "unrotated")
        self.grid = grid
        self.resolution_m = grid.resolution_m
        shape = grid.data.shape
        static = grid.data == OCCUPIED
        if self.config.unknown_is_lethal:
            static |= grid.data == UNKNOWN
        self.static_lethal = static
        self.keep_out_mask = np.zeros(shape, dtype=bool)
        for poly in keep_out:
            self.keep_out_mask |= rasterise_polygon(grid, poly)
        self.keep_out_polygons = [list(p) for p in keep_out]
        self.speed_limit_mps = np.full(shape, np.inf, dtype=np.float32)
        for poly, limit in slow_zones:
            if not limit > 0:
                raise ConfigError(f"slow zone speed limit must be > 0 (got {limit})")
            zone = rasterise_polygon(grid, poly)
            self.speed_limit_mps[zone] = np.minimum(self.speed_limit_mps[zone], limit)
        base_lethal = self.static_lethal | self.keep_out_mask
        self._base_lethal = base_lethal
        self._base_distance = self._edt(~base_lethal)
        self._base_cost = self._cost_from_distance(self._base_distance)
        self._obstacle_stamp = np.full(shape, -np.inf, dtype=np.float64)
        self._now_s = -np.inf
        self._distance = self._base_distance
        self._cost = self._base_cost
        self._dirty = False
        #: Bumped every time the cost array changes (planners cache on (uid, version)).
        self.version = 0
        self.uid = id(self)
        self._radius_cells = int(math.ceil(self.config.inflation_radius_m / self.resolution_m)) + 2

    # -- construction helpers ------------------------------------------------------------
    def _edt(self, free: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
        if free.all():
            return np.full(free.shape, np.inf, dtype=np.float32)
        out = distance_transform_edt(free)
        return (np.asarray(out, dtype=np.float32) * np.float32(self.resolution_m))

    def _cost_from_distance(self, dist: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        cfg = self.config
        cost = np.zeros(dist.shape, dtype=np.uint8)
        band = (dist > cfg.robot_radius_m) & (dist <= cfg.inflation_radius_m)
        grad = MAX_NON_LETHAL * np.exp(-cfg.cost_scaling_per_m * (dist[band] - cfg.robot_radius_m))
        cost[band] = np.clip(np.rint(grad), 1, MAX_NON_LETHAL).astype(np.uint8)
        cost[dist <= cfg.robot_radius_m] = INSCRIBED
        cost[dist <= 0.0] = LETHAL
        return cost

    # -- geometry ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.grid.data.shape[0]), int(self.grid.data.shape[1]))

    def world_to_cell(self, x_m: float, y_m: float) -> tuple[int, int]:
        return self.grid.world_to_cell(x_m, y_m)

    def cell_to_world(self, row: int, col: int) -> tuple[float, float]:
        return self.grid.cell_to_world(row, col)

    def in_bounds(self, x_m: float, y_m: float) -> bool:
        return self.grid.in_bounds(*self.world_to_cell(x_m, y_m))

    def _cells(self, xy: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        cols = np.floor((xy[:, 0] - self.grid.origin_x_m) / self.resolution_m).astype(np.int64)
        rows = np.floor((xy[:, 1] - self.grid.origin_y_m) / self.resolution_m).astype(np.int64)
        ok = (rows >= 0) & (rows < self.shape[0]) & (cols >= 0) & (cols < self.shape[1])
        return rows, cols, ok

    # -- live obstacles ------------------------------------------------------------------
    def update_scan(self, sensor_xy: tuple[float, float], rays: ScanRays, stamp_s: float) -> None:
        """Clear marked cells that rays now pass through, then mark the cells where rays hit.

        Clearing works in polar form: each marked cell within range is looked up in the beam
        pointing at it; if that beam proved free space beyond the cell (`rays.free_m`), the
        cell is free now. This costs O(marked cells), not O(beams x range). Invalid readings
        (free_m = 0) clear nothing.
        """
        cfg = self.config
        res = self.resolution_m
        sx, sy = sensor_xy
        n = len(rays.hit)
        inc = rays.increment_rad
        marked = np.isfinite(self._obstacle_stamp)
        if n >= 1 and abs(inc) > 1e-9 and marked.any():
            rows, cols = np.nonzero(marked)
            wx = self.grid.origin_x_m + (cols + 0.5) * res
            wy = self.grid.origin_y_m + (rows + 0.5) * res
            dist = np.hypot(wx - sx, wy - sy)
            rel = np.angle(np.exp(1j * (np.arctan2(wy - sy, wx - sx) - rays.angle0_rad)))
            idx = np.rint(np.mod(rel / inc, 2 * np.pi / abs(inc))).astype(np.int64)
            ok = (idx >= 0) & (idx < n) & (dist <= cfg.raytrace_max_range_m)
            beam_free = rays.free_m[np.clip(idx, 0, n - 1)]
            clear = ok & (beam_free > dist + res)
            if clear.any():
                self._obstacle_stamp[rows[clear], cols[clear]] = -np.inf
                self._dirty = True
        d = rays.points - np.array([sx, sy])
        length = np.hypot(d[:, 0], d[:, 1])
        marks = rays.hit & (length <= cfg.obstacle_max_range_m)
        if marks.any():
            rows, cols, ok = self._cells(rays.points[marks])
            rows, cols = rows[ok], cols[ok]
            new = self._base_distance[rows, cols] > cfg.static_match_m
            if new.any():
                rows, cols = rows[new], cols[new]
                if not np.isfinite(self._obstacle_stamp[rows, cols]).all():
                    self._dirty = True  # a cell that was free is now an obstacle
                self._obstacle_stamp[rows, cols] = stamp_s
        self.decay(stamp_s)

    def mark_points(self, points_xy: npt.NDArray[np.float64], stamp_s: float) -> None:
        """Mark obstacles directly (tests, other sensors)."""
        rows, cols, ok = self._cells(np.asarray(points_xy, dtype=np.float64).reshape(-1, 2))
        self._obstacle_stamp[rows[ok], cols[ok]] = stamp_s
        self._dirty = True
        self.decay(stamp_s)

    def decay(self, now_s: float) -> None:
        self._now_s = max(self._now_s, now_s)
        old = self._obstacle_stamp < (self._now_s - self.config.obstacle_decay_s)
        old &= np.isfinite(self._obstacle_stamp)
        if old.any():
            self._obstacle_stamp[old] = -np.inf
            self._dirty = True

    def clear_obstacles(self) -> None:
        self._obstacle_stamp.fill(-np.inf)
        self._dirty = True

    @property
    def obstacle_mask(self) -> npt.NDArray[np.bool_]:
        return np.isfinite(self._obstacle_stamp)

    def _refresh(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.version += 1
        obstacles = self.obstacle_mask
        if not obstacles.any():
            self._distance = self._base_distance
            self._cost = self._base_cost
            return
        rows, cols = np.nonzero(obstacles)
        m = self._radius_cells
        r0, r1 = max(int(rows.min()) - m, 0), min(int(rows.max()) + m + 1, self.shape[0])
        c0, c1 = max(int(cols.min()) - m, 0), min(int(cols.max()) + m + 1, self.shape[1])
        window = (slice(r0, r1), slice(c0, c1))
        local = self._edt(~obstacles[window])
        dist = self._base_distance.copy()
        dist[window] = np.minimum(dist[window], local)
        cost = self._base_cost.copy()
        cost[window] = self._cost_from_distance(dist[window])
        self._distance = dist
        self._cost = cost

    def snapshot(self) -> Costmap:
        """A read-only view of the current costs for another thread (the planner): it shares
        the arrays, which are replaced, never modified, when the live costmap changes."""
        self._refresh()
        snap = copy.copy(self)
        snap._dirty = False
        snap._obstacle_stamp = self._obstacle_stamp.copy()
        return snap

    # -- reading -------------------------------------------------------------------------
    @property
    def cost(self) -> npt.NDArray[np.uint8]:
        """(rows, cols) uint8 costs; do not modify."""
        self._refresh()
        return self._cost

    @property
    def distance_m(self) -> npt.NDArray[np.float32]:
        """Distance from each cell centre to the nearest lethal cell centre (metres)."""
        self._refresh()
        return self._distance

    def current_version(self) -> int:
        self._refresh()
        return self.version

    def cost_at(self, x_m: float, y_m: float) -> int:
        row, col = self.world_to_cell(x_m, y_m)
        if not self.grid.in_bounds(row, col):
            return LETHAL
        return int(self.cost[row, col])

    def distance_at(self, x_m: float, y_m: float) -> float:
        row, col = self.world_to_cell(x_m, y_m)
        if not self.grid.in_bounds(row, col):
            return 0.0
        return float(self.distance_m[row, col])

    def speed_limit_at(self, x_m: float, y_m: float) -> float:
        """Speed limit of the slow zone containing the point (inf outside any)."""
        row, col = self.world_to_cell(x_m, y_m)
        if not self.grid.in_bounds(row, col):
            return math.inf
        return float(self.speed_limit_mps[row, col])

    def in_keep_out(self, x_m: float, y_m: float) -> bool:
        return any(point_in_polygon(x_m, y_m, p) for p in self.keep_out_polygons)

    def explain_cell(self, x_m: float, y_m: float) -> str | None:
        """Why a robot centre cannot be at this point (None if it can)."""
        row, col = self.world_to_cell(x_m, y_m)
        if not self.grid.in_bounds(row, col):
            return "outside the map"
        if self.in_keep_out(x_m, y_m) or self.keep_out_mask[row, col]:
            return "inside a keep-out zone"
        if self.static_lethal[row, col]:
            if self.grid.data[row, col] == UNKNOWN:
                return "in an unknown (unmapped) area"
            return "inside a wall or obstacle on the map"
        c = int(self.cost[row, col])
        if c >= LETHAL:
            return "inside an obstacle seen by the lidar"
        if c >= INSCRIBED:
            return (f"too close to an obstacle ({self.distance_at(x_m, y_m):.2f} m; the robot "
                    f"needs {self.config.robot_radius_m:.2f} m)")
        return None

    def sample_segment(self, x0: float, y0: float, x1: float, y1: float) -> npt.NDArray[np.float64]:
        """Points every half cell along a segment, both ends included."""
        length = math.hypot(x1 - x0, y1 - y0)
        n = max(int(math.ceil(length / (self.resolution_m * 0.5))), 1)
        t = np.arange(n + 1) * (1.0 / n)
        out = np.empty((n + 1, 2))
        out[:, 0] = x0 + (x1 - x0) * t
        out[:, 1] = y0 + (y1 - y0) * t
        return out

    def costs_along(self, points_xy: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        rows, cols, ok = self._cells(points_xy)
        out = np.full(points_xy.shape[0], LETHAL, dtype=np.int64)
        out[ok] = self.cost[rows[ok], cols[ok]]
        return out

    def segment_max_cost(self, x0: float, y0: float, x1: float, y1: float) -> int:
        return int(self.costs_along(self.sample_segment(x0, y0, x1, y1)).max())
