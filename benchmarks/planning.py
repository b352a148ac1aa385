"""Planning benchmark: the navigator's planner against reference planners, in one process.

Maps: synthetic floors of 5 m rooms with 1 m doorways (benchmarks/synthetic_maps.py), 20 x 20,
40 x 40 and 80 x 80 m at 5 cm (160k, 640k, 2.56M cells). For each, the longest path the map
allows (start and goal found by a double sweep of the free-space distance field) is planned by:

- passeur: GlobalPlanner.plan() (checks, compiled search, coarse grid above 200k cells with a
  full-resolution check/repair, smoothing). "cold" = first plan on a new costmap version
  (includes the per-version arrays: cell costs, connected components); "warm" = next plans.
- skimage MCP: MCP_Geometric at full resolution on the same cell costs (init + search +
  traceback), i.e. route_through_array without its wrapper.
- scipy Dijkstra: scipy.sparse.csgraph.dijkstra on the same 8-connected graph (graph building
  timed separately), full resolution.
- heapq A*: a textbook pure-Python A* (octile heuristic) on the same costs, full resolution.

Also: path quality (cost and length of each path under the same cost metric, relative to the
full-resolution optimum), the costmap's scan update per 360-beam scan, the safety collision
monitor's check per scan (if passeur.safety is present), and the controller's loop time.
Prints figures, then one JSON line (the last line).

    python benchmarks/planning.py [--quick]
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from skimage.graph import MCP_Geometric

sys.path.insert(0, str(Path(__file__).resolve().parent))
from passeur.navigation.controller import PurePursuit
from passeur.navigation.costmap import Costmap, scan_endpoints
from passeur.navigation.planner import GlobalPlanner, PlannerConfig, _Prepared
from passeur.ros.geometry import Pose2D
from synthetic_maps import building_map

NAV2_NAVFN_MS = 146.0  # Nav2's published NavFn time on a ~75 m path (C++)
NAV2_SMAC2D_MS = 243.0  # Nav2's published Smac 2D A* time on a ~75 m path (C++)
NAV2_COLLISION_MONITOR_MS = 4.5


def median_ms(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def longest_pair(costs: np.ndarray, seed_cell: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Double sweep: farthest cell from the seed, then farthest cell from that one."""
    free = np.where(np.isfinite(costs), 1.0, np.inf)

    def farthest(src: tuple[int, int]) -> tuple[int, int]:
        cum, _tb = MCP_Geometric(free, fully_connected=True).find_costs([src])
        cum = np.where(np.isfinite(cum), cum, -1.0)
        r, c = np.unravel_index(int(np.argmax(cum)), cum.shape)
        return int(r), int(c)

    a = farthest(seed_cell)
    return a, farthest(a)


def path_cost(costs: np.ndarray, cells: np.ndarray) -> float:
    d = np.hypot(*np.diff(cells, axis=0).T)
    c = costs[cells[:, 0], cells[:, 1]]
    return float((d * 0.5 * (c[:-1] + c[1:])).sum())


def polyline_cost(costmap: Costmap, costs: np.ndarray, pts: np.ndarray) -> float:
    """Integrated cost of a world polyline, in cell units (comparable to path_cost)."""
    total = 0.0
    res = costmap.resolution_m
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        s = costmap.sample_segment(a[0], a[1], b[0], b[1])
        rows, cols, _ok = costmap._cells(s)
        c = costs[rows, cols]
        total += float(c.mean()) * math.hypot(*(b - a)) / res
    return total


def astar(costs: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> tuple[list[tuple[int, int]], float]:
    """Textbook A*: 8-connected, step = length x mean cell cost, octile heuristic (costs >= 1)."""
    h, w = costs.shape
    sq2 = math.sqrt(2.0)
    gr, gc = goal

    def heuristic(r: int, c: int) -> float:
        dr, dc = abs(r - gr), abs(c - gc)
        return (dr + dc) + (sq2 - 2.0) * min(dr, dc)

    g = {start: 0.0}
    parent: dict[tuple[int, int], tuple[int, int]] = {}
    open_heap = [(heuristic(*start), 0.0, start)]
    closed: set[tuple[int, int]] = set()
    steps = [(-1, -1, sq2), (-1, 0, 1.0), (-1, 1, sq2), (0, -1, 1.0), (0, 1, 1.0),
             (1, -1, sq2), (1, 0, 1.0), (1, 1, sq2)]
    while open_heap:
        _f, gcost, node = heapq.heappop(open_heap)
        if node in closed:
            continue
        if node == goal:
            path = [node]
            while node in parent:
                node = parent[node]
                path.append(node)
            return path[::-1], gcost
        closed.add(node)
        r, c = node
        cc = costs[r, c]
        for dr, dc, length in steps:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w:
                nc_cost = costs[nr, nc]
                if nc_cost == math.inf:
                    continue
                ng = gcost + length * 0.5 * (cc + nc_cost)
                nxt = (nr, nc)
                if ng < g.get(nxt, math.inf):
                    g[nxt] = ng
                    parent[nxt] = node
                    heapq.heappush(open_heap, (ng + heuristic(nr, nc), ng, nxt))
    return [], math.inf


def scipy_graph(costs: np.ndarray) -> sparse.csr_matrix:
    h, w = costs.shape
    idx = np.arange(h * w).reshape(h, w)
    free = np.isfinite(costs)
    rows, cols, vals = [], [], []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = (slice(0, h - dr), slice(max(0, -dc), w - max(0, dc)))
        b = (slice(dr, h), slice(max(0, -dc) + dc, w - max(0, dc) + dc))
        ok = free[a] & free[b]
        wgt = math.hypot(dr, dc) * 0.5 * (costs[a] + costs[b])
        ia, ib, ww = idx[a][ok], idx[b][ok], wgt[ok]
        rows += [ia, ib]
        cols += [ib, ia]
        vals += [ww, ww]
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(h * w, h * w))


def bench_map(size_m: int, repeat: int, run_astar: bool) -> dict[str, Any]:
    grid = building_map(size_m)
    costmap = Costmap(grid)
    planner = GlobalPlanner(PlannerConfig())
    prep = _Prepared(costmap, planner.config.cost_weight)
    costs = prep.costs
    start_cell, goal_cell = longest_pair(costs, costmap.world_to_cell(2.5, 2.5))
    start = costmap.cell_to_world(*start_cell)
    goal = costmap.cell_to_world(*goal_cell)

    # passeur, cold: a fresh costmap version each time (obstacle layer touched).
    def cold() -> Any:
        costmap.mark_points(np.array([[0.01, 0.01]]), stamp_s=time.perf_counter())
        costmap.clear_obstacles()
        return planner.plan(costmap, start, goal)

    cold_ms = median_ms(cold, max(2, repeat // 2))
    plan = planner.plan(costmap, start, goal)
    warm_ms = median_ms(lambda: planner.plan(costmap, start, goal), repeat)
    # The same planner forced to full resolution (no coarse grid): what downsampling buys.
    full_planner = GlobalPlanner(PlannerConfig(max_planning_cells=0))
    full_plan = full_planner.plan(costmap, start, goal)
    full_ms = median_ms(lambda: full_planner.plan(costmap, start, goal), max(2, repeat // 3))

    # skimage MCP at full resolution on the same costs.
    def mcp() -> tuple[np.ndarray, float]:
        m = MCP_Geometric(costs, fully_connected=True)
        cum, _tb = m.find_costs([start_cell], [goal_cell], find_all_ends=False)
        return np.asarray(m.traceback(goal_cell)), float(cum[goal_cell])

    mcp_ms = median_ms(mcp, max(2, repeat // 2))
    mcp_cells, optimum = mcp()

    t0 = time.perf_counter()
    graph = scipy_graph(costs)
    graph_ms = (time.perf_counter() - t0) * 1e3
    s_idx = start_cell[0] * costs.shape[1] + start_cell[1]
    g_idx = goal_cell[0] * costs.shape[1] + goal_cell[1]

    def sp() -> float:
        dist = dijkstra(graph, directed=False, indices=s_idx, min_only=True)
        return float(dist[g_idx])

    scipy_ms = median_ms(sp, 2)
    scipy_cost = sp()

    astar_ms = astar_cost = None
    if run_astar:
        t0 = time.perf_counter()
        _path, astar_cost = astar(costs, start_cell, goal_cell)
        astar_ms = (time.perf_counter() - t0) * 1e3

    ours_cost = polyline_cost(costmap, costs, plan.points)
    res = costmap.resolution_m
    mcp_len = float(np.hypot(*np.diff(mcp_cells, axis=0).T).sum()) * res
    return {
        "map_m": size_m, "cells": int(costs.size), "path_m": round(plan.length_m, 1),
        "optimal_path_m": round(mcp_len, 1),
        "passeur_warm_ms": round(warm_ms, 1), "passeur_cold_ms": round(cold_ms, 1),
        "downsample": plan.downsample, "method": plan.method,
        "passeur_full_res_warm_ms": round(full_ms, 1),
        "full_res_cost_ratio_vs_optimum": round(polyline_cost(costmap, costs, full_plan.points)
                                                / optimum, 3),
        "skimage_mcp_ms": round(mcp_ms, 1), "scipy_dijkstra_ms": round(scipy_ms, 1),
        "scipy_graph_build_ms": round(graph_ms, 1),
        "heapq_astar_ms": None if astar_ms is None else round(astar_ms, 1),
        "cost_ratio_vs_optimum": round(ours_cost / optimum, 3),
        "scipy_cost_ratio": round(scipy_cost / optimum, 6),
        "astar_cost_ratio": None if astar_cost is None else round(astar_cost / optimum, 6),
        "speedup_vs_mcp_warm": round(mcp_ms / warm_ms, 1),
        "speedup_vs_mcp_cold": round(mcp_ms / cold_ms, 1),
        "speedup_vs_scipy_warm": round(scipy_ms / warm_ms, 1),
        "speedup_vs_astar_warm": None if astar_ms is None else round(astar_ms / warm_ms, 1),
    }


def bench_scan(repeat: int) -> dict[str, Any]:
    grid = building_map(20)
    costmap = Costmap(grid)
    rng = np.random.default_rng(1)
    angle_min, inc = -math.pi, 2 * math.pi / 360
    ranges = rng.uniform(0.3, 6.0, 360)
    ranges[::9] = np.inf
    out: dict[str, Any] = {}

    def update() -> None:
        rays = scan_endpoints(7.5, 7.5, 0.3, ranges, angle_min, inc, 0.12, 12.0)
        costmap.update_scan((7.5, 7.5), rays, time.perf_counter())

    out["costmap_scan_update_ms"] = round(median_ms(update, repeat), 3)

    def refresh() -> None:
        update()
        costmap.current_version()

    out["costmap_update_and_inflate_ms"] = round(median_ms(refresh, repeat), 3)
    try:
        from passeur.safety.collision_monitor import CollisionConfig, CollisionMonitor
        from passeur.safety.limits import Velocity
    except ImportError:
        out["collision_monitor_ms"] = None
        return out
    monitor = CollisionMonitor(CollisionConfig())

    def check() -> None:
        pts = monitor.points_from_scan(ranges, angle_min, inc, 0.12, 12.0)
        monitor.check(Velocity(0.5, 0.3), pts)

    out["collision_monitor_ms"] = round(median_ms(check, repeat), 4)
    return out


def bench_controller(repeat: int) -> float:
    grid = building_map(40)
    costmap = Costmap(grid)
    plan = GlobalPlanner().plan(costmap, (2.5, 2.5), (37.5, 37.5))
    ctl = PurePursuit()
    ctl.set_path(plan.points, 0.0, 0.0)
    poses = [Pose2D(float(x), float(y), 0.3) for x, y in plan.points[:: max(len(plan.points) // 200, 1)]]
    k = [0]

    def step() -> None:
        ctl.compute(poses[k[0] % len(poses)], k[0] * 0.05, costmap)
        k[0] += 1

    return median_ms(step, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no A* on 80 x 80 m")
    args = parser.parse_args()
    repeat = 5 if args.quick else 15
    maps = []
    for size in (20, 40, 80):
        row = bench_map(size, repeat, run_astar=not (args.quick and size == 80))
        maps.append(row)
        print(f"{size}x{size} m ({row['cells']} cells): path {row['path_m']} m "
              f"(optimum {row['optimal_path_m']} m), passeur {row['passeur_warm_ms']} ms warm / "
              f"{row['passeur_cold_ms']} ms cold (downsample {row['downsample']}, {row['method']}; "
              f"full resolution {row['passeur_full_res_warm_ms']} ms, cost ratio "
              f"{row['full_res_cost_ratio_vs_optimum']}); "
              f"skimage MCP {row['skimage_mcp_ms']} ms (x{row['speedup_vs_mcp_warm']}), "
              f"scipy Dijkstra {row['scipy_dijkstra_ms']} ms (+{row['scipy_graph_build_ms']} ms "
              f"graph) (x{row['speedup_vs_scipy_warm']}), heapq A* {row['heapq_astar_ms']} ms "
              f"(x{row['speedup_vs_astar_warm']}); path cost / optimum "
              f"{row['cost_ratio_vs_optimum']}", flush=True)
    scan = bench_scan(repeat * 20)
    print(f"per 360-beam scan: costmap update {scan['costmap_scan_update_ms']} ms, with "
          f"inflation {scan['costmap_update_and_inflate_ms']} ms; safety collision monitor "
          f"{scan['collision_monitor_ms']} ms (Nav2 collision monitor ~{NAV2_COLLISION_MONITOR_MS} ms)")
    ctl_ms = bench_controller(repeat * 40)
    print(f"controller loop (regulated pure pursuit, one tick): {ctl_ms:.3f} ms")
    m40 = next(m for m in maps if m["map_m"] == 40)
    summary = {
        "maps": maps,
        "goal_40m_ms": 50.0,
        "goal_40m_met": m40["passeur_cold_ms"] < 50.0,
        "nav2_navfn_ms": NAV2_NAVFN_MS, "ratio_vs_nav2_navfn": round(NAV2_NAVFN_MS / m40["passeur_cold_ms"], 2),
        "nav2_smac2d_ms": NAV2_SMAC2D_MS, "ratio_vs_nav2_smac2d": round(NAV2_SMAC2D_MS / m40["passeur_cold_ms"], 2),
        "scan": scan,
        "nav2_collision_monitor_ms": NAV2_COLLISION_MONITOR_MS,
        "controller_tick_ms": round(ctl_ms, 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
