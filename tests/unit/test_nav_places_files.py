"""The shipped places and patrol files load, and every place is free and reachable on its
world's map from the robot's start pose, outside every keep-out zone."""

from __future__ import annotations

import pytest

from passeur.navigation.costmap import Costmap
from passeur.navigation.map_io import load_map
from passeur.navigation.patrols import load_patrols, patrols_path
from passeur.navigation.places import load_places, places_path
from passeur.navigation.planner import GlobalPlanner
from passeur.paths import share_path

START = {"library": (10.0, 2.0), "chateau": (1.5, 1.5)}


@pytest.mark.parametrize("world", ["library", "chateau"])
def test_places_are_free_and_reachable(world: str) -> None:
    places = load_places(places_path(world), world)
    assert 6 <= len(places.places) <= 10
    patrols = load_patrols(patrols_path(world), places)
    assert {"opening_check", "closing_round"} <= set(patrols.routes)
    closing = patrols.route("closing_round")
    assert any(w.announce for w in closing.waypoints), "closing round speaks"
    grid = load_map(share_path("sim", "maps", f"{world}.yaml"))
    costmap = Costmap(grid, keep_out=[z.polygon for z in places.keep_out],
                      slow_zones=[(z.polygon, z.speed_limit_mps or 1.0) for z in places.slow_zones])
    planner = GlobalPlanner()
    for place in places.places.values():
        assert costmap.explain_cell(place.x_m, place.y_m) is None, place.id
        plan = planner.plan(costmap, START[world], (place.x_m, place.y_m))
        assert plan.length_m > 0 or place.id == "entrance"
        for x, y in plan.points:
            assert not costmap.in_keep_out(x, y), place.id
