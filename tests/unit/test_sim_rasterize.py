"""Rasterising worlds into occupancy maps; the committed maps match their worlds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from passeur.navigation.map_io import FREE, OCCUPIED, UNKNOWN, load_map
from passeur.paths import share_path
from passeur.sim.rasterize import rasterize
from passeur.sim.sdf_world import available_worlds, load_world, parse_world_string

ROOM = """<sdf version='1.9'><world name='room'>
<frame name='robot_start'><pose>2 2 0 0 0 0</pose></frame>
<model name='walls'><static>true</static>
 <link name='south'><pose>2 0 1 0 0 0</pose><collision name='c'><geometry><box><size>4.2 0.2 2</size></box></geometry></collision></link>
 <link name='north'><pose>2 4 1 0 0 0</pose><collision name='c'><geometry><box><size>4.2 0.2 2</size></box></geometry></collision></link>
 <link name='west'><pose>0 2 1 0 0 0</pose><collision name='c'><geometry><box><size>0.2 4.2 2</size></box></geometry></collision></link>
 <link name='east'><pose>4 2 1 0 0 0</pose><collision name='c'><geometry><box><size>0.2 4.2 2</size></box></geometry></collision></link>
 <link name='post'><pose>3 3 0.5 0 0 0</pose><collision name='c'><geometry><cylinder><radius>0.25</radius><length>1</length></cylinder></geometry></collision></link>
 <link name='lintel'><pose>1 1 2.3 0 0 0</pose><collision name='c'><geometry><box><size>0.5 0.5 0.2</size></box></geometry></collision></link>
 <link name='mat'><pose>1 3 0.005 0 0 0</pose><collision name='c'><geometry><box><size>0.5 0.5 0.01</size></box></geometry></collision></link>
 <link name='diag'><pose>1 2 0.5 0 0 0.7853981634</pose><collision name='c'><geometry><box><size>0.6 0.1 1</size></box></geometry></collision></link>
</model></world></sdf>"""


def cell(grid, x: float, y: float) -> int:  # type: ignore[no-untyped-def]
    row, col = grid.world_to_cell(x, y)
    return int(grid.data[row, col])


def test_walls_posts_and_rotated_boxes_are_occupied_exactly() -> None:
    grid = rasterize(parse_world_string(ROOM))
    assert grid.resolution_m == 0.05
    assert (grid.origin_x_m, grid.origin_y_m) == (-0.6, -0.6)
    assert cell(grid, 0.0, 2.0) == OCCUPIED and cell(grid, 4.05, 2.0) == OCCUPIED
    assert cell(grid, 0.2, 2.0) == FREE  # wall inner face at x = 0.1
    assert cell(grid, 3.0, 3.0) == OCCUPIED and cell(grid, 3.2, 3.0) == OCCUPIED
    assert cell(grid, 3.33, 3.0) == FREE
    # Above the robot (lintel) and flat on the floor (mat): not obstacles.
    assert cell(grid, 1.0, 1.0) == FREE and cell(grid, 1.0, 3.0) == FREE
    # The box rotated 45 degrees covers its diagonal, not its axis-aligned bounds' corners.
    assert cell(grid, 1.15, 2.15) == OCCUPIED
    assert cell(grid, 1.2, 1.8) == FREE
    # Outside the room cannot be reached from the start: unknown.
    assert cell(grid, -0.4, 2.0) == UNKNOWN and cell(grid, 4.4, 4.4) == UNKNOWN
    post_cells = np.count_nonzero(grid.data[grid.world_to_cell(2.6, 2.6)[0]:
                                            grid.world_to_cell(3.4, 3.4)[0] + 1,
                                            grid.world_to_cell(2.6, 2.6)[1]:
                                            grid.world_to_cell(3.4, 3.4)[1] + 1] == OCCUPIED)
    assert post_cells * 0.05 ** 2 == pytest.approx(math.pi * 0.25 ** 2, rel=0.35)


@pytest.mark.parametrize("world", ["library", "chateau"])
def test_committed_maps_match_their_worlds(world: str) -> None:
    committed = load_map(share_path("sim", "maps", f"{world}.yaml"))
    fresh = rasterize(load_world(world))
    assert (committed.origin_x_m, committed.origin_y_m) == pytest.approx(
        (fresh.origin_x_m, fresh.origin_y_m))
    assert committed.resolution_m == fresh.resolution_m
    assert committed.data.shape == fresh.data.shape
    differing = int(np.count_nonzero(committed.data != fresh.data))
    assert differing == 0, f"sim/maps/{world} is stale: run `passeur map build --world {world}`"


def test_every_world_has_a_committed_map() -> None:
    for world in available_worlds():
        assert share_path("sim", "maps", f"{world}.yaml").is_file(), world


# Places the README lists: a 0.45 m robot must reach each of them from the start pose.
PLACES = {
    "library": [(10.0, 2.0), (13.5, 2.4), (7.6, 2.0), (2.5, 4.2), (4.6, 5.0), (9.0, 8.4),
                (14.5, 6.9), (14.5, 8.7), (14.5, 10.5), (14.5, 12.3), (14.5, 14.2), (4.6, 11.0),
                (8.5, 12.4), (19.0, 2.5)],
    "chateau": [(1.5, 1.5), (6.0, 1.6), (12.0, 1.6), (18.0, 1.6), (22.5, 1.6), (3.0, 5.5),
                (9.0, 8.0), (15.0, 8.0), (20.0, 5.0), (6.0, 7.7), (12.0, 7.7), (18.0, 7.7)],
}


@pytest.mark.parametrize("world", sorted(PLACES))
def test_a_045_m_robot_reaches_every_listed_place(world: str) -> None:
    grid = rasterize(load_world(world))
    radius_cells = math.ceil(0.25 / grid.resolution_m)  # robot radius 0.225 m + margin
    yy, xx = np.mgrid[-radius_cells:radius_cells + 1, -radius_cells:radius_cells + 1]
    disk = xx ** 2 + yy ** 2 <= radius_cells ** 2
    room = ndimage.binary_erosion(grid.data == FREE, structure=disk)
    labels, _ = ndimage.label(room)
    start = load_world(world).start_pose
    home = labels[grid.world_to_cell(start.x_m, start.y_m)]
    assert home != 0, "the robot does not fit at its start pose"
    for x, y in PLACES[world]:
        assert labels[grid.world_to_cell(x, y)] == home, f"({x}, {y}) unreachable in {world}"


def test_map_build_into_an_unwritable_place_is_one_clear_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from passeur.cli import main

    not_a_folder = tmp_path / "maps"
    not_a_folder.write_text("a file where the folder should be", encoding="utf-8")
    assert main(["map", "build", "--world", "library", "--output-dir", str(not_a_folder)]) == 2
    err = capsys.readouterr().err
    assert "cannot write the map" in err and str(not_a_folder) in err and "Traceback" not in err


@pytest.mark.parametrize("args, expected", [
    (["--resolution", "0.0001"], ["world 'library'", "at 0.0001 m per cell",
                                  "coarser --resolution"]),
    (["--resolution", "inf"], ["--resolution must be a number > 0, got inf"]),
    (["--resolution", "nan"], ["--resolution must be a number > 0, got nan"]),
])
def test_map_build_with_an_unusable_resolution_is_one_clear_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        expected: list[str]) -> None:
    """0.1 mm cells over the library would be 10^11 cells: refused before numpy runs out of
    memory, saying what to change; nothing written."""
    from passeur.cli import main

    assert main(["map", "build", "--world", "library", "--output-dir", str(tmp_path),
                 *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in expected:
        assert fragment in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("size", ["1e300 1 1", "1e308 1e308 1"])
def test_a_huge_shape_is_refused_naming_the_world_and_the_shape(size: str) -> None:
    from passeur.errors import ConfigError

    huge = ROOM.replace("<size>0.5 0.5 0.01</size>", f"<size>{size}</size>").replace(
        "<pose>1 3 0.005 0 0 0</pose>", "<pose>1 3 0.5 0 0 0</pose>")
    with pytest.raises(ConfigError) as info:
        rasterize(parse_world_string(huge))
    text = str(info.value)
    assert "world 'room'" in text and "m per cell" in text and "at 0.05 m" in text, text
    assert "model 'walls' link 'mat'" in text, "the shape that makes the world so large"
