"""Planning benchmark: the navigator's planner against reference planners, in one process.

Maps: synthetic floors of corridors and rooms (benchmarks/synthetic_maps.py: a corridor grid
around blocks of 2 x 2 rooms, 1 m doors), 20 x 20, 40 x 40 and 80 x 80 m at 5 cm (160k, 640k,
2.56M cells). For each, the longest path the map allows (start and goal found by a double
sweep of the free-space distance field; ~75 m on the 40 x 40 m map, checked) is planned by:

- passeur, default: GlobalPlanner.plan() as the navigator runs it: checks, compiled search -
  on a coarser grid above `max_planning_cells` (150k cells by default: all three maps are
  searched at 10-20 cm) with a full-resolution check/repair - and smoothing.
- passeur, full resolution: the same planner with coarsening off (5 cm search).
  "cold" = first plan on a new costmap version (includes the per-version arrays: cell costs,
  connected components); "warm" = next plans (those arrays cached).
- skimage MCP: MCP_Geometric at full resolution on the same cell costs (init + search +
  traceback), i.e. route_through_array without its wrapper.
- scipy Dijkstra: scipy.sparse.csgraph.dijkstra on the same 8-connected graph (graph building
  timed separately), full resolution.
- heapq A*: a textbook pure-Python A* (octile heuristic) on the same costs, full resolution.

Apples to apples: the references search at full resolution on cell costs already computed,
so the same-resolution ratios divide them by passeur full-resolution WARM times (same inputs,
same grid); ratios against passeur default say "coarse" in their names. The JSON labels every
figure with its grid resolution.

Also: path quality (cost of each path under the same cost metric, relative to the
full-resolution optimum), the costmap's scan update per 360-beam scan, the safety collision
monitor's check per scan (if passeur.safety is present), and the controller tick (regulated
pure pursuit on poses along a 75 m path with varied headings and offsets, plus the
navigator's blocked-path check). Prints figures, then one JSON line (the last line).

    python benchmarks/planning.py [--quick] [--sizes 20 40 80]
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
from passeur.navigation.planner import (
    GlobalPlanner,
    PlannerConfig,
    _Prepared,
    first_blocked_index,
)
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


#: The 40 x 40 m floor must offer a path of about the length of Nav2's published figures.
LONGEST_40M_RANGE_M = (65.0, 85.0)


def bench_map(size_m: int, repeat: int, run_astar: bool) -> dict[str, Any]:
    grid = building_map(size_m)
    costmap = Costmap(grid)
    planner = GlobalPlanner(PlannerConfig())
    full_planner = GlobalPlanner(PlannerConfig(max_planning_cells=0))
    prep = _Prepared(costmap, planner.config.cost_weight)
    costs = prep.costs
    res = costmap.resolution_m
    start_cell, goal_cell = longest_pair(costs, costmap.world_to_cell(1.0, 1.0))
    start = costmap.cell_to_world(*start_cell)
    goal = costmap.cell_to_world(*goal_cell)

    def cold(p: GlobalPlanner) -> Any:
        # A fresh costmap version each time (obstacle layer touched), as after a scan.
        costmap.mark_points(np.array([[0.01, 0.01]]), stamp_s=time.perf_counter())
        costmap.clear_obstacles()
        return p.plan(costmap, start, goal)

    cold_ms = median_ms(lambda: cold(planner), max(2, repeat // 2))
    plan = planner.plan(costmap, start, goal)
    warm_ms = median_ms(lambda: planner.plan(costmap, start, goal), repeat)
    full_cold_ms = median_ms(lambda: cold(full_planner), max(2, repeat // 3))
    full_plan = full_planner.plan(costmap, start, goal)
    full_warm_ms = median_ms(lambda: full_planner.plan(costmap, start, goal), max(2, repeat // 3))

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

    mcp_len = float(np.hypot(*np.diff(mcp_cells, axis=0).T).sum()) * res
    if size_m == 40:
        lo, hi = LONGEST_40M_RANGE_M
        assert lo <= mcp_len <= hi, f"40 x 40 m map: longest path {mcp_len:.1f} m, want ~75 m"

    def ratio(ref_ms: float | None, ours_ms: float) -> float | None:
        return None if ref_ms is None else round(ref_ms / ours_ms, 1)

    return {
        "map_m": size_m, "cells": int(costs.size), "map_resolution_m": res,
        "longest_path_m": round(mcp_len, 1),
        "passeur_default": {
            "search_resolution_m": round(res * plan.downsample, 3),
            "downsample": plan.downsample, "method": plan.method,
            "coarsen_above_cells": planner.config.max_planning_cells,
            "cold_ms": round(cold_ms, 1), "warm_ms": round(warm_ms, 1),
            "path_m": round(plan.length_m, 1),
            "cost_ratio_vs_optimum": round(polyline_cost(costmap, costs, plan.points) / optimum, 3),
        },
        "passeur_full_res": {
            "search_resolution_m": res, "method": full_plan.method,
            "cold_ms": round(full_cold_ms, 1), "warm_ms": round(full_warm_ms, 1),
            "path_m": round(full_plan.length_m, 1),
            "cost_ratio_vs_optimum": round(polyline_cost(costmap, costs, full_plan.points)
                                           / optimum, 3),
        },
        "references_full_res": {
            "search_resolution_m": res,
            "skimage_mcp_ms": round(mcp_ms, 1), "scipy_dijkstra_ms": round(scipy_ms, 1),
            "scipy_graph_build_ms": round(graph_ms, 1),
            "heapq_astar_ms": None if astar_ms is None else round(astar_ms, 1),
            "scipy_cost_ratio": round(scipy_cost / optimum, 6),
            "astar_cost_ratio": None if astar_cost is None else round(astar_cost / optimum, 6),
        },
        # reference time / passeur time, both at 5 cm on the same precomputed costs.
        "speedup_same_resolution": {
            "vs_skimage_mcp": ratio(mcp_ms, full_warm_ms),
            "vs_scipy_dijkstra": ratio(scipy_ms, full_warm_ms),
            "vs_heapq_astar": ratio(astar_ms, full_warm_ms),
        },
        # reference time (5 cm) / passeur default time (coarse search above the threshold):
        # what the navigator gains in practice, not a like-for-like comparison.
        "speedup_default_coarse_vs_full_res_refs": {
            "vs_skimage_mcp_cold": ratio(mcp_ms, cold_ms),
            "vs_skimage_mcp_warm": ratio(mcp_ms, warm_ms),
            "vs_scipy_dijkstra_warm": ratio(scipy_ms, warm_ms),
            "vs_heapq_astar_warm": ratio(astar_ms, warm_ms),
        },
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


def bench_controller(repeat: int) -> dict[str, Any]:
    """One control tick as the navigator runs it while driving: the blocked-path check ahead
    and PurePursuit.compute with the costmap (clearance, slow zones), on poses along a long
    path with varied headings (within the driving cone) and lateral offsets, so that the
    pursuit branch runs, not only the cheap rotate-in-place one."""
    grid = building_map(40)
    costmap = Costmap(grid)
    prep = _Prepared(costmap, 3.0)
    a, b = longest_pair(prep.costs, costmap.world_to_cell(1.0, 1.0))
    plan = GlobalPlanner().plan(costmap, costmap.cell_to_world(*a), costmap.cell_to_world(*b))
    pts = plan.points
    rng = np.random.default_rng(3)
    tangent = np.arctan2(*np.diff(pts, axis=0).T[::-1])
    idx = np.arange(0, len(pts) - 1, 2)
    offsets = rng.uniform(-0.1, 0.1, len(idx))
    poses = [Pose2D(float(pts[i][0] - off * math.sin(tangent[i])),
                    float(pts[i][1] + off * math.cos(tangent[i])),
                    float(tangent[i] + rng.uniform(-0.5, 0.5))) for i, off in zip(idx, offsets, strict=True)]
    ctl = PurePursuit()
    skip_m = 1.2 * ctl.config.robot_radius_m
    ctl_times: list[float] = []
    check_times: list[float] = []
    phases: dict[str, int] = {}
    k = 0
    while len(ctl_times) < repeat:
        if k % len(poses) == 0:
            ctl.set_path(pts, 0.0, k * 0.05)  # untimed: done once per plan, not per tick
        pose = poses[k % len(poses)]
        t0 = time.perf_counter()
        first_blocked_index(costmap, ctl.path, ctl.index, 3.0, skip_m=skip_m)
        t1 = time.perf_counter()
        cmd = ctl.compute(pose, k * 0.05, costmap)
        t2 = time.perf_counter()
        check_times.append((t1 - t0) * 1e3)
        ctl_times.append((t2 - t1) * 1e3)
        phases[cmd.phase] = phases.get(cmd.phase, 0) + 1
        k += 1
    total = [c + p for c, p in zip(check_times, ctl_times, strict=True)]
    return {
        "pure_pursuit_ms": round(statistics.median(ctl_times), 4),
        "blocked_path_check_ms": round(statistics.median(check_times), 4),
        "tick_total_ms": round(statistics.median(total), 4),
        "tick_total_p99_ms": round(float(np.percentile(total, 99)), 4),
        "phases": phases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats, heapq A* on the 20 x 20 m map only")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 40, 80],
                        help="map sides in metres (default 20 40 80)")
    args = parser.parse_args()
    repeat = 3 if args.quick else 15
    maps = []
    for size in args.sizes:
        row = bench_map(size, repeat, run_astar=not args.quick or size <= 20)
        maps.append(row)
        d, f, r = row["passeur_default"], row["passeur_full_res"], row["references_full_res"]
        same, coarse = row["speedup_same_resolution"], row["speedup_default_coarse_vs_full_res_refs"]
        print(f"{size}x{size} m ({row['cells']} cells), longest path {row['longest_path_m']} m:\n"
              f"  passeur default ({d['search_resolution_m']} m search, {d['method']}): "
              f"{d['cold_ms']} ms cold / {d['warm_ms']} ms warm, cost/optimum "
              f"{d['cost_ratio_vs_optimum']}\n"
              f"  passeur full resolution ({f['search_resolution_m']} m): {f['cold_ms']} ms cold / "
              f"{f['warm_ms']} ms warm, cost/optimum {f['cost_ratio_vs_optimum']}\n"
              f"  references at {r['search_resolution_m']} m: skimage MCP {r['skimage_mcp_ms']} ms, "
              f"scipy Dijkstra {r['scipy_dijkstra_ms']} ms (+{r['scipy_graph_build_ms']} ms "
              f"graph), heapq A* {r['heapq_astar_ms']} ms\n"
              f"  speed-up, same resolution (ref / passeur full-res warm): MCP x{same['vs_skimage_mcp']}, "
              f"scipy x{same['vs_scipy_dijkstra']}, A* x{same['vs_heapq_astar']}\n"
              f"  speed-up, passeur default (coarse) vs full-res refs: MCP x"
              f"{coarse['vs_skimage_mcp_cold']} cold / x{coarse['vs_skimage_mcp_warm']} warm",
              flush=True)
    scan = bench_scan(repeat * 20)
    print(f"per 360-beam scan: costmap update {scan['costmap_scan_update_ms']} ms, with "
          f"inflation {scan['costmap_update_and_inflate_ms']} ms; safety collision monitor "
          f"{scan['collision_monitor_ms']} ms (Nav2 collision monitor ~{NAV2_COLLISION_MONITOR_MS} ms)")
    ctl = bench_controller(repeat * 100)
    print(f"controller tick: pure pursuit {ctl['pure_pursuit_ms']} ms + blocked-path check "
          f"{ctl['blocked_path_check_ms']} ms = {ctl['tick_total_ms']} ms median "
          f"(p99 {ctl['tick_total_p99_ms']} ms); phases {ctl['phases']}")
    summary: dict[str, Any] = {"maps": maps, "scan": scan,
                               "nav2_collision_monitor_ms": NAV2_COLLISION_MONITOR_MS,
                               "controller": ctl}
    m40 = next((m for m in maps if m["map_m"] == 40), None)
    if m40 is not None:
        d, f = m40["passeur_default"], m40["passeur_full_res"]
        summary.update({
            "goal_40m_ms": 50.0,
            # The navigator's figure: default planner (coarse search), cold.
            "goal_40m_met": d["cold_ms"] < 50.0,
            "goal_40m_met_full_res": f["cold_ms"] < 50.0,
            "nav2_navfn_ms": NAV2_NAVFN_MS, "nav2_smac2d_ms": NAV2_SMAC2D_MS,
            "ratio_nav2_navfn_over_default_cold": round(NAV2_NAVFN_MS / d["cold_ms"], 2),
            "ratio_nav2_navfn_over_full_res_cold": round(NAV2_NAVFN_MS / f["cold_ms"], 2),
            "ratio_nav2_smac2d_over_default_cold": round(NAV2_SMAC2D_MS / d["cold_ms"], 2),
            "ratio_nav2_smac2d_over_full_res_cold": round(NAV2_SMAC2D_MS / f["cold_ms"], 2),
        })
        print(f"40 x 40 m, {m40['longest_path_m']} m path: default {d['cold_ms']} ms cold "
              f"(goal < 50 ms), full resolution {f['cold_ms']} ms cold; Nav2 NavFn "
              f"{NAV2_NAVFN_MS} ms, Smac 2D {NAV2_SMAC2D_MS} ms (C++, published)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
