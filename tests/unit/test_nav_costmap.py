"""Costmap: inflation, keep-out and slow zones, scan marking / clearing / decay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from passeur.errors import ConfigError
from passeur.navigation.costmap import (
    INSCRIBED,
    LETHAL,
    Costmap,
    CostmapConfig,
    point_in_polygon,
    scan_endpoints,
)
from passeur.navigation.map_io import FREE, OCCUPIED, UNKNOWN, OccupancyMap


def empty_map(size_m: float = 6.0) -> OccupancyMap:
    n = int(size_m / 0.05)
    return OccupancyMap(np.full((n, n), FREE, dtype=np.int8), 0.05, 0.0, 0.0)


def test_inflation_profile_around_one_obstacle() -> None:
    grid = empty_map()
    grid.data[60, 60] = OCCUPIED  # centre at (3.025, 3.025)
    cfg = CostmapConfig(robot_radius_m=0.25, inflation_radius_m=0.9)
    cm = Costmap(grid, cfg)
    cx, cy = grid.cell_to_world(60, 60)
    assert cm.cost_at(cx, cy) == LETHAL
    assert cm.cost_at(cx + 0.2, cy) == INSCRIBED
    assert cm.cost_at(cx + 0.25, cy) == INSCRIBED
    costs = [cm.cost_at(cx + d, cy) for d in (0.3, 0.4, 0.6, 0.85)]
    assert all(0 < c < INSCRIBED for c in costs)
    assert costs == sorted(costs, reverse=True), "cost decreases with distance"
    assert cm.cost_at(cx + 1.0, cy) == 0
    assert cm.distance_at(cx + 0.5, cy) == pytest.approx(0.5, abs=0.03)


def test_unknown_cells_are_lethal_by_default() -> None:
    grid = empty_map()
    grid.data[:, :10] = UNKNOWN
    assert Costmap(grid).cost_at(0.2, 3.0) == LETHAL
    assert Costmap(grid, CostmapConfig(unknown_is_lethal=False)).cost_at(0.2, 3.0) == 0


def test_keep_out_zone_is_lethal_and_inflated() -> None:
    zone = [(2.0, 2.0), (3.0, 2.0), (3.0, 3.0), (2.0, 3.0)]
    cm = Costmap(empty_map(), keep_out=[zone])
    assert cm.cost_at(2.5, 2.5) == LETHAL
    # Conservative rasterisation: the zone's edge cells are lethal too.
    assert cm.cost_at(2.01, 2.5) == LETHAL
    assert cm.cost_at(1.85, 2.5) == INSCRIBED
    assert cm.in_keep_out(2.5, 2.5) and not cm.in_keep_out(1.5, 2.5)
    assert cm.explain_cell(2.5, 2.5) == "inside a keep-out zone"


def test_slow_zone_sets_speed_limit_only() -> None:
    zone = [(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 2.0)]
    cm = Costmap(empty_map(), slow_zones=[(zone, 0.2)])
    assert cm.speed_limit_at(1.5, 1.5) == pytest.approx(0.2)
    assert math.isinf(cm.speed_limit_at(4.0, 4.0))
    assert cm.cost_at(1.5, 1.5) == 0
    with pytest.raises(ConfigError):
        Costmap(empty_map(), slow_zones=[(zone, 0.0)])


def test_point_in_polygon() -> None:
    tri = [(0.0, 0.0), (4.0, 0.0), (0.0, 4.0)]
    assert point_in_polygon(1.0, 1.0, tri)
    assert not point_in_polygon(3.0, 3.0, tri)


def scan_at(cm: Costmap, ranges: list[float], stamp: float, x: float = 1.0, y: float = 3.0) -> None:
    n = len(ranges)
    rays = scan_endpoints(x, y, 0.0, ranges, -math.pi, 2 * math.pi / n, 0.12, 12.0)
    cm.update_scan((x, y), rays, stamp)


def test_scan_marks_clears_and_decays() -> None:
    cm = Costmap(empty_map(), CostmapConfig(obstacle_decay_s=2.0))
    n = 360
    ranges = [math.inf] * n
    ranges[180] = 2.0  # straight ahead (angle 0): obstacle at (3.0, 3.0)
    scan_at(cm, ranges, stamp=0.0)
    assert cm.cost_at(3.02, 3.0) == LETHAL
    assert cm.cost_at(2.85, 3.0) == INSCRIBED
    # The obstacle moves away: the next scan's ray passes through its cell and clears it.
    ranges[180] = 4.0
    scan_at(cm, ranges, stamp=0.1)
    assert cm.cost_at(3.02, 3.0) < INSCRIBED
    assert cm.cost_at(5.02, 3.0) == LETHAL
    # Out of sight (no more scans there): forgotten after the decay time.
    cm.decay(5.0)
    assert cm.cost_at(5.02, 3.0) == 0


def test_walls_on_the_map_are_not_duplicated_as_obstacles() -> None:
    grid = empty_map()
    grid.data[:, 100:] = OCCUPIED  # wall from x = 5.0
    cm = Costmap(grid)
    ranges = [math.inf] * 360
    ranges[180] = 4.0  # hits the wall face at x = 5.0
    scan_at(cm, ranges, stamp=0.0)
    assert not cm.obstacle_mask.any()


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="inflation_radius_m"):
        CostmapConfig(robot_radius_m=0.5, inflation_radius_m=0.3).validate()


@pytest.mark.parametrize("reading", [math.nan, 0.0, 0.05, -math.inf])
def test_invalid_readings_neither_mark_nor_clear(reading: float) -> None:
    """NaN, 0 and readings below range_min (what many lidars report for "too close" or "no
    measurement") must not erase an obstacle standing on the beam."""
    cm = Costmap(empty_map(), CostmapConfig(obstacle_decay_s=10.0))
    ranges = [math.inf] * 360
    ranges[180] = 2.0  # obstacle at (3.0, 3.0)
    scan_at(cm, ranges, stamp=0.0)
    assert cm.cost_at(3.02, 3.0) == LETHAL
    ranges[180] = reading
    ranges[179] = ranges[181] = reading
    scan_at(cm, ranges, stamp=0.1)
    assert cm.cost_at(3.02, 3.0) == LETHAL
    assert cm.obstacle_mask.sum() == 1


def test_no_return_beams_clear_up_to_range_max_only() -> None:
    grid = empty_map(20.0)
    cm = Costmap(grid, CostmapConfig(raytrace_max_range_m=15.0, obstacle_max_range_m=15.0,
                                     obstacle_decay_s=10.0))
    ranges = [math.inf] * 360
    ranges[180] = 3.0   # at x = 4.0 (sensor at x = 1.0)
    ranges[181] = 10.0  # beyond range_max (5 m) after the next scan
    for stamp, rng_max in ((0.0, 12.0), (0.1, 12.0)):
        rays = scan_endpoints(1.0, 3.0, 0.0, ranges, -math.pi, 2 * math.pi / 360, 0.12, rng_max)
        cm.update_scan((1.0, 3.0), rays, stamp)
    assert cm.obstacle_mask.sum() == 2
    # Both beams now report nothing within range_max = 5 m: the mark at 3 m is cleared (the
    # beam saw free space past it), the one at 10 m is not (nothing is known beyond 5 m).
    ranges[180] = ranges[181] = math.inf
    rays = scan_endpoints(1.0, 3.0, 0.0, ranges, -math.pi, 2 * math.pi / 360, 0.12, 5.0)
    assert not rays.hit[180] and rays.free_m[180] == pytest.approx(5.0)
    cm.update_scan((1.0, 3.0), rays, 0.2)
    assert cm.obstacle_mask.sum() == 1
    row, col = np.argwhere(cm.obstacle_mask)[0]
    assert grid.cell_to_world(int(row), int(col))[0] == pytest.approx(11.0, abs=0.2)


def test_scan_endpoints_classifies_readings() -> None:
    rays = scan_endpoints(0.0, 0.0, 0.0, [1.0, math.inf, 20.0, math.nan, 0.0, 0.01],
                          0.0, 0.1, 0.12, 12.0)
    assert rays.hit.tolist() == [True, False, False, False, False, False]
    assert rays.free_m.tolist() == [1.0, 12.0, 12.0, 0.0, 0.0, 0.0]


def test_rotated_map_origin_is_refused_clearly() -> None:
    grid = empty_map()
    grid.origin_yaw_rad = 0.3
    with pytest.raises(ConfigError, match="origin yaw 0.3000 rad is not supported"):
        Costmap(grid)


def test_returns_from_the_robots_own_mast_neither_mark_nor_clear() -> None:
    """A real lidar (or Gazebo's) sees the mast behind it: it is the robot, not an obstacle."""
    robot_x, robot_y = 3.0, 3.0
    sensor_x = robot_x + 0.10
    ranges = np.full(360, np.inf)
    ranges[0] = 0.2  # angle -pi from the sensor: the mast, 0.1 m behind the robot's centre
    ranges[180] = 1.0  # straight ahead: a real obstacle
    rays = scan_endpoints(sensor_x, robot_y, 0.0, ranges, -math.pi, 2 * math.pi / 360, 0.12,
                          12.0, body_xy=(robot_x, robot_y), self_filter_radius_m=0.18)
    assert not rays.hit[0] and rays.free_m[0] == 0.0
    assert rays.hit[180] and rays.free_m[180] == pytest.approx(1.0)
    unfiltered = scan_endpoints(sensor_x, robot_y, 0.0, ranges, -math.pi, 2 * math.pi / 360,
                                0.12, 12.0)
    assert unfiltered.hit[0]
    cm = Costmap(empty_map(), CostmapConfig(robot_radius_m=0.25, inflation_radius_m=0.5))
    cm.update_scan((sensor_x, robot_y), rays, 1.0)
    assert cm.cost_at(sensor_x + 1.0, robot_y) == LETHAL
    assert cm.cost_at(robot_x - 0.1, robot_y) < INSCRIBED  # the robot's own cell stays free
