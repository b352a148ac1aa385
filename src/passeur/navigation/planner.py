"""Cost-aware global planning on a Costmap.

The search itself is scikit-image's compiled Dijkstra on a grid (`MCP_Geometric`, 8-connected,
each step costs its length times the mean of the two cells' costs), so it returns the
least-cost path under that metric. A cell's cost is `1 + cost_weight * cost / 252`: paths
prefer the middle of corridors when there is room; inscribed and lethal cells are impassable.

Before searching, the goal is checked (outside the map, in a wall, in a keep-out zone, too
close to an obstacle) and so is connectivity (start and goal in the same free-space component,
from scipy's labelling): impossible goals fail in milliseconds with a reason, instead of after
a search of the whole building.

Large maps: above `max_planning_cells` cells the search runs on a grid coarsened by an integer
factor (each coarse cell takes the WORST cost of its fine cells, so a coarse path is free at
full resolution). Every segment of the result is then checked on the full-resolution costmap;
a segment that fails is re-planned at full resolution in a window around it, and if that
fails the whole search is repeated at full resolution. `Plan.downsample` reports the factor
used. Smoothing then shortcuts the path where a straight segment costs no more than the
stretch it replaces (so it never cuts close to walls to save length), and rounds the corners.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from skimage.graph import MCP_Geometric

from passeur.errors import ConfigError
from passeur.navigation.costmap import INSCRIBED, LETHAL, MAX_NON_LETHAL, Costmap
from passeur.navigation.exceptions import PlanningError

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class PlannerConfig:
    #: Planning cost of a cell = 1 + cost_weight * cost / 252.
    cost_weight: float = 3.0
    #: Above this many cells, plan on a coarser grid (see module docstring); 0 = never.
    max_planning_cells: int = 150_000
    #: Never coarsen by more than this (at 5 cm: 20 cm coarse cells keep 1 m doorways open).
    max_downsample: int = 4
    smooth: bool = True
    #: Corner rounding passes after shortcutting.
    smoothing_iterations: int = 4
    #: Spacing of the returned path's points.
    point_spacing_m: float = 0.1
    #: A robot starting inside the inflated zone (next to a wall) may plan out of it within
    #: this distance.
    start_escape_radius_m: float = 0.4

    def validate(self) -> None:
        if self.cost_weight < 0:
            raise ConfigError(f"cost_weight must be >= 0 (got {self.cost_weight})")
        if self.max_planning_cells < 0:
            raise ConfigError("max_planning_cells must be >= 0")
        if self.max_downsample < 1:
            raise ConfigError("max_downsample must be >= 1")
        if self.point_spacing_m <= 0:
            raise ConfigError("point_spacing_m must be > 0")


@dataclass
class Plan:
    points: npt.NDArray[np.float64]  # (N, 2) world metres, start first
    length_m: float
    downsample: int
    planning_time_s: float
    #: How the plan was obtained: "direct", "coarse", "coarse+repair", "coarse->full".
    method: str
    raw_cells: int = 0
    notes: list[str] = field(default_factory=list)


def polyline_length(points: npt.NDArray[np.float64]) -> float:
    if len(points) < 2:
        return 0.0
    return float(np.hypot(*np.diff(points, axis=0).T).sum())


class _Prepared:
    """Per-costmap-version arrays, computed once and reused by every plan on that version.

    Planning costs come from the uint8 costmap through a 256-entry table, and the coarse grid
    max-pools the uint8 costs before the table (the table is monotonic, so this equals pooling
    the float costs, at a fraction of the memory traffic)."""

    def __init__(self, costmap: Costmap, weight: float) -> None:
        self.cost_u8 = costmap.cost
        self.lut = 1.0 + weight * np.arange(256, dtype=np.float64) / MAX_NON_LETHAL
        self.lut[INSCRIBED:] = np.inf
        self.passable = self.cost_u8 < INSCRIBED
        self._costs: npt.NDArray[np.float64] | None = None
        self._labels: npt.NDArray[np.int32] | None = None
        self._coarse: dict[int, npt.NDArray[np.float64]] = {}

    @property
    def costs(self) -> npt.NDArray[np.float64]:
        """Full-resolution planning costs (only built when a full-resolution search runs)."""
        if self._costs is None:
            self._costs = self.lut[self.cost_u8]
        return self._costs

    def window(self, r0: int, r1: int, c0: int, c1: int) -> npt.NDArray[np.float64]:
        return self.lut[self.cost_u8[r0:r1, c0:c1]]

    def at(self, cell: tuple[int, int]) -> float:
        return float(self.lut[self.cost_u8[cell]])

    @property
    def labels(self) -> npt.NDArray[np.int32]:
        if self._labels is None:
            labels, _n = ndimage.label(self.passable, structure=_EIGHT)
            self._labels = np.asarray(labels, dtype=np.int32)
        return self._labels

    def coarse(self, factor: int) -> npt.NDArray[np.float64]:
        if factor not in self._coarse:
            h, w = self.cost_u8.shape
            hp, wp = -(-h // factor) * factor, -(-w // factor) * factor
            padded = np.full((hp, wp), LETHAL, dtype=np.uint8)
            padded[:h, :w] = self.cost_u8
            pooled = padded[0::factor, 0::factor].copy()
            for i in range(factor):
                for j in range(factor):
                    np.maximum(pooled, padded[i::factor, j::factor], out=pooled)
            self._coarse[factor] = self.lut[pooled]
        return self._coarse[factor]


class GlobalPlanner:
    def __init__(self, config: PlannerConfig | None = None) -> None:
        self.config = config or PlannerConfig()
        self.config.validate()
        self._cache_key: tuple[int, int] | None = None
        self._prepared: _Prepared | None = None

    # -- public --------------------------------------------------------------------------
    def prepare(self, costmap: Costmap) -> None:
        """Compute the per-version arrays now (optional; plan() does it lazily)."""
        self._prep(costmap)

    def plan(self, costmap: Costmap, start_xy: tuple[float, float],
             goal_xy: tuple[float, float]) -> Plan:
        t0 = time.perf_counter()
        prep = self._prep(costmap)
        res = costmap.resolution_m
        why = costmap.explain_cell(*goal_xy)
        if why is not None:
            code = {"outside the map": "goal_outside_map",
                    "inside a keep-out zone": "goal_in_keep_out"}.get(why, "goal_in_obstacle")
            if why.startswith("too close"):
                code = "goal_too_close"
            raise PlanningError(code, f"goal ({goal_xy[0]:.2f}, {goal_xy[1]:.2f}) is {why}")
        if not costmap.in_bounds(*start_xy):
            raise PlanningError("start_blocked",
                                f"the robot ({start_xy[0]:.2f}, {start_xy[1]:.2f}) is outside the map")
        goal_cell = costmap.world_to_cell(*goal_xy)
        start_cell = costmap.world_to_cell(*start_xy)
        notes: list[str] = []
        if not prep.passable[start_cell]:
            escaped = self._escape(prep, costmap, start_cell, goal_cell)
            notes.append("start inside inflated zone: planning from the nearest free cell")
            start_cell = escaped
        if prep.labels[start_cell] != prep.labels[goal_cell]:
            raise PlanningError(
                "unreachable",
                f"goal ({goal_xy[0]:.2f}, {goal_xy[1]:.2f}) cannot be reached: no free path "
                "leads there (closed room, blocked doorway or obstacle in the way)")
        cells = prep.cost_u8.size
        limit = self.config.max_planning_cells
        factor = 1 if limit == 0 or cells <= limit else int(math.ceil(math.sqrt(cells / limit)))
        factor = min(factor, max(self.config.max_downsample, 1))
        method = "direct"
        vertices: npt.NDArray[np.int64] | None = None
        if factor > 1:
            vertices = self._coarse_search(prep, costmap, start_cell, goal_cell, factor)
            method = "coarse"
            if vertices is None:
                notes.append("coarse grid closed a narrow passage: full-resolution search")
                method = "coarse->full"
                factor = 1
            else:
                vertices, repaired, ok = self._repair(prep, costmap, vertices)
                if repaired:
                    method = "coarse+repair"
                if not ok:
                    method = "coarse->full"
                    factor = 1
        if factor == 1 or vertices is None:
            path = self._search(prep.costs, start_cell, goal_cell)
            if path is None:  # labels said connected: should not happen
                raise PlanningError("unreachable", "no path found to the goal")
            vertices = np.asarray(path, dtype=np.int64)
        raw_cells = len(vertices)
        pts = self._cells_to_world(costmap, vertices)
        pts[-1] = goal_xy
        if self.config.smooth and len(pts) > 2:
            pts = self._shortcut(prep, costmap, pts)
            pts = self._densify(pts, self.config.point_spacing_m)
            pts = self._round_corners(costmap, pts)
        else:
            pts = self._densify(pts, self.config.point_spacing_m)
        # The robot's real position first (it may have started inside the inflated zone).
        if math.hypot(pts[0][0] - start_xy[0], pts[0][1] - start_xy[1]) > res * 0.5:
            pts = np.vstack([np.asarray(start_xy, dtype=np.float64)[None, :], pts])
        else:
            pts[0] = start_xy
        return Plan(points=pts, length_m=polyline_length(pts), downsample=factor,
                    planning_time_s=time.perf_counter() - t0, method=method,
                    raw_cells=raw_cells, notes=notes)

    # -- internals -----------------------------------------------------------------------
    def _prep(self, costmap: Costmap) -> _Prepared:
        key = (costmap.uid, costmap.current_version())
        if self._cache_key != key or self._prepared is None:
            self._prepared = _Prepared(costmap, self.config.cost_weight)
            self._cache_key = key
        return self._prepared

    def _escape(self, prep: _Prepared, costmap: Costmap, start: tuple[int, int],
                goal: tuple[int, int]) -> tuple[int, int]:
        """Nearest passable cell to `start` within the escape radius, reachable through
        cells that are not lethal (the robot may cross inflated cells, never a wall)."""
        r = int(math.ceil(self.config.start_escape_radius_m / costmap.resolution_m))
        h, w = prep.cost_u8.shape
        r0, r1 = max(start[0] - r, 0), min(start[0] + r + 1, h)
        c0, c1 = max(start[1] - r, 0), min(start[1] + r + 1, w)
        window_cost = costmap.cost[r0:r1, c0:c1]
        if window_cost[start[0] - r0, start[1] - c0] >= LETHAL:
            raise PlanningError("start_blocked",
                                "the robot is inside an obstacle on the costmap (localisation?)")
        crossable = np.where(window_cost < LETHAL, 1.0, np.inf)
        mcp = MCP_Geometric(crossable, fully_connected=True)
        cum, _tb = mcp.find_costs([(start[0] - r0, start[1] - c0)])
        candidates = np.isfinite(cum) & prep.passable[r0:r1, c0:c1]
        if not candidates.any():
            raise PlanningError(
                "start_blocked",
                f"the robot is boxed in: no free cell within {self.config.start_escape_radius_m} m")
        # Prefer cells in the goal's free-space component.
        same = candidates & (prep.labels[r0:r1, c0:c1] == prep.labels[goal])
        pick = same if same.any() else candidates
        masked = np.where(pick, cum, np.inf)
        rr, cc = np.unravel_index(int(np.argmin(masked)), masked.shape)
        return (int(rr) + r0, int(cc) + c0)

    @staticmethod
    def _search(costs: npt.NDArray[np.float64], start: tuple[int, int],
                goal: tuple[int, int]) -> list[tuple[int, int]] | None:
        found = grid_shortest_path(costs, start, goal)
        return None if found is None else found[0]

    def _coarse_search(self, prep: _Prepared, costmap: Costmap, start: tuple[int, int],
                       goal: tuple[int, int], factor: int) -> npt.NDArray[np.int64] | None:
        coarse = prep.coarse(factor).copy()
        cs = (start[0] // factor, start[1] // factor)
        cg = (goal[0] // factor, goal[1] // factor)
        # The start and goal cells are free at full resolution; let the coarse search use them.
        coarse[cs] = prep.at(start)
        coarse[cg] = prep.at(goal)
        path = self._search(coarse, cs, cg)
        if path is None:
            return None
        cells = np.asarray(path, dtype=np.int64) * factor + factor // 2
        cells[:, 0] = np.minimum(cells[:, 0], prep.cost_u8.shape[0] - 1)
        cells[:, 1] = np.minimum(cells[:, 1], prep.cost_u8.shape[1] - 1)
        cells[0] = start
        cells[-1] = goal
        return cells

    def _segments_ok(self, prep: _Prepared, costmap: Costmap,
                     pts: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """For each segment pts[i] -> pts[i+1]: free at full resolution (vectorised)."""
        a, b = pts[:-1], pts[1:]
        longest = float(np.hypot(*(b - a).T).max(initial=0.0))
        k = int(math.ceil(longest / (costmap.resolution_m * 0.5))) + 2
        t = np.linspace(0.0, 1.0, k)
        samples = (a[:, None, :] + (b - a)[:, None, :] * t[None, :, None]).reshape(-1, 2)
        rows, cols, ok = costmap._cells(samples)
        free = np.zeros(len(samples), dtype=bool)
        free[ok] = prep.passable[rows[ok], cols[ok]]
        return np.asarray(free.reshape(len(a), k).all(axis=1), dtype=bool)

    def _repair(self, prep: _Prepared, costmap: Costmap, cells: npt.NDArray[np.int64]
                ) -> tuple[npt.NDArray[np.int64], bool, bool]:
        """Check each coarse segment at full resolution; re-plan failing ones locally."""
        pts = self._cells_to_world(costmap, cells)
        seg_ok = self._segments_ok(prep, costmap, pts)
        if seg_ok.all():
            return cells, False, True
        out: list[npt.NDArray[np.int64]] = [cells[:1]]
        margin = int(math.ceil(1.0 / costmap.resolution_m))
        h, w = prep.cost_u8.shape
        for i in range(1, len(cells)):
            if seg_ok[i - 1]:
                out.append(cells[i:i + 1])
                continue
            a, b = cells[i - 1], cells[i]
            r0, r1 = max(int(min(a[0], b[0])) - margin, 0), min(int(max(a[0], b[0])) + margin + 1, h)
            c0, c1 = max(int(min(a[1], b[1])) - margin, 0), min(int(max(a[1], b[1])) + margin + 1, w)
            local = self._search(prep.window(r0, r1, c0, c1), (int(a[0]) - r0, int(a[1]) - c0),
                                 (int(b[0]) - r0, int(b[1]) - c0))
            if local is None:
                return cells, True, False
            seg = np.asarray(local[1:], dtype=np.int64) + np.array([r0, c0])
            out.append(seg)
        return np.vstack(out), True, True

    @staticmethod
    def _cells_to_world(costmap: Costmap, cells: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        g = costmap.grid
        pts = np.empty((len(cells), 2))
        pts[:, 0] = g.origin_x_m + (cells[:, 1] + 0.5) * g.resolution_m
        pts[:, 1] = g.origin_y_m + (cells[:, 0] + 0.5) * g.resolution_m
        return pts

    def _costs_at(self, prep: _Prepared, costmap: Costmap, pts: npt.NDArray[np.float64]
                  ) -> npt.NDArray[np.float64]:
        rows, cols, ok = costmap._cells(pts)
        out = np.full(len(pts), np.inf)
        out[ok] = prep.lut[prep.cost_u8[rows[ok], cols[ok]]]
        return out

    def _shortcut(self, prep: _Prepared, costmap: Costmap,
                  pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Greedy line-of-sight shortcuts that never raise the path's integrated cost."""
        n = len(pts)
        c = self._costs_at(prep, costmap, pts)
        c[0] = c[1] if not np.isfinite(c[0]) and n > 1 else c[0]  # escaped start
        seg_len = np.hypot(*np.diff(pts, axis=0).T)
        seg_cost = 0.5 * (c[:-1] + c[1:]) * seg_len
        cum = np.concatenate([[0.0], np.cumsum(seg_cost)])
        step = costmap.resolution_m * 0.5

        def ok(a: int, b: int) -> bool:
            if b == a + 1:
                return True
            if b - a == 0:
                return True
            sample = costmap.sample_segment(pts[a][0], pts[a][1], pts[b][0], pts[b][1])
            sc = self._costs_at(prep, costmap, sample)
            if a == 0:
                sc = sc[1:]  # the start may be inside the inflated zone
            if not np.isfinite(sc).all():
                return False
            length = math.hypot(pts[b][0] - pts[a][0], pts[b][1] - pts[a][1])
            direct = float(sc.mean()) * length if len(sc) else 0.0
            return direct <= (cum[b] - cum[a]) * (1.0 + 1e-9) + step * 1e-6

        # Candidate vertices: where the grid path turns (straight runs add nothing).
        d = np.diff(pts, axis=0)
        turns = np.nonzero(np.abs(d[1:] - d[:-1]).max(axis=1) > 1e-9)[0] + 1
        cand = np.concatenate([[0], turns, [n - 1]]).astype(np.int64)
        m = len(cand)
        keep = [0]
        a = 0  # index into cand
        while a < m - 1:
            best, stride, bad = a + 1, 2, None
            while True:
                j = min(a + stride, m - 1)
                if ok(int(cand[a]), int(cand[j])):
                    best = j
                    if j == m - 1:
                        break
                    stride *= 2
                else:
                    bad = j
                    break
            if bad is not None:
                while bad - best > 1:
                    mid = (best + bad) // 2
                    if ok(int(cand[a]), int(cand[mid])):
                        best = mid
                    else:
                        bad = mid
            keep.append(int(cand[best]))
            a = best
        return pts[keep]

    @staticmethod
    def _densify(pts: npt.NDArray[np.float64], spacing: float) -> npt.NDArray[np.float64]:
        out = [pts[:1]]
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            n = max(int(math.ceil(math.hypot(*(b - a)) / spacing)), 1)
            t = np.arange(1, n + 1)[:, None] / n
            out.append(a + (b - a) * t)
        return np.vstack(out)

    def _round_corners(self, costmap: Costmap, pts: npt.NDArray[np.float64]
                       ) -> npt.NDArray[np.float64]:
        """A few Laplacian passes; a point only moves where its cost stays low."""
        if len(pts) < 3:
            return pts
        cur = pts.copy()
        base = costmap.costs_along(cur)
        for _ in range(self.config.smoothing_iterations):
            cand = cur.copy()
            cand[1:-1] = cur[1:-1] + 0.5 * (0.5 * (cur[:-2] + cur[2:]) - cur[1:-1])
            cost = costmap.costs_along(cand)
            accept = (cost < INSCRIBED) & (cost <= base + 16)
            accept[0] = accept[-1] = False
            cur[accept] = cand[accept]
        return cur


def grid_shortest_path(costs: npt.NDArray[np.float64], start: tuple[int, int],
                       goal: tuple[int, int]) -> tuple[list[tuple[int, int]], float] | None:
    """Least-cost 8-connected path (cells, cost) or None. A step between neighbours costs
    its length in cells times the mean of the two cells' costs; inf cells are walls."""
    mcp = MCP_Geometric(costs, fully_connected=True)
    cum, _tb = mcp.find_costs([start], [goal], find_all_ends=False)
    if not np.isfinite(cum[goal]):
        return None
    return [(int(r), int(c)) for r, c in mcp.traceback(goal)], float(cum[goal])


def first_blocked_index(costmap: Costmap, points: npt.NDArray[np.float64], start_index: int,
                        horizon_m: float, skip_m: float = 0.0) -> int | None:
    """Index of the first path point (from start_index, within horizon_m of path length, after
    skipping the first skip_m) whose segment crosses an inscribed or lethal cell."""
    travelled = 0.0
    for i in range(max(start_index, 0), len(points) - 1):
        a, b = points[i], points[i + 1]
        seg = math.hypot(b[0] - a[0], b[1] - a[1])
        if travelled >= skip_m and costmap.segment_max_cost(a[0], a[1], b[0], b[1]) >= INSCRIBED:
            return i + 1
        travelled += seg
        if travelled > horizon_m:
            break
    return None
