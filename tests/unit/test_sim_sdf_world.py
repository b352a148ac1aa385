"""SDF import: the worlds' walls are where the files say, bad files get clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from passeur.errors import ConfigError
from passeur.sim.sdf_world import Shape, World, available_worlds, load_world, parse_world_string


def covering(world: World, x: float, y: float, z: float = 0.3) -> list[Shape]:
    """Collision shapes containing the point (boxes and upright cylinders only)."""
    out = []
    for s in world.obstacles():
        m = s.matrix
        local = m[:3, :3].T @ (np.array([x, y, z]) - m[:3, 3])
        if s.kind == "box" and np.all(np.abs(local) <= np.array(s.size) / 2 + 1e-9):
            out.append(s)
        elif s.kind == "cylinder" and math.hypot(local[0], local[1]) <= s.size[0] \
                and abs(local[2]) <= s.size[1] / 2:
            out.append(s)
    return out


def test_both_worlds_are_installed() -> None:
    assert {"library", "chateau"} <= set(available_worlds())


def test_library_walls_doors_and_furniture_are_where_the_file_says() -> None:
    world = load_world("library")
    assert world.name == "library"
    assert [s.link for s in covering(world, 0.0, 7.5)] == ["west"]
    assert [s.link for s in covering(world, 20.0, 10.0)] == ["east_north"]
    assert [s.link for s in covering(world, 5.0, 15.0)] == ["north"]
    # The closed glass doors fill the gap in the south wall.
    assert [s.model for s in covering(world, 9.5, 0.0)] == ["main_doors"]
    # Doorway of the activity room (x 4.0-5.2 at y 5) is open; the wall beside it is not.
    assert covering(world, 4.6, 5.0) == []
    assert [s.link for s in covering(world, 3.0, 5.0)] == ["north_west"]
    # Stacks: row 3 at y 9.6, aisles free.
    assert [s.link for s in covering(world, 14.5, 9.6, 1.0)] == ["row_3"]
    assert covering(world, 14.5, 10.5) == []
    # Cylinder pillar.
    assert [s.link for s in covering(world, 10.1, 5.0)] == ["pillar_south"]
    # The start pose is free and the rug does not count as an obstacle.
    start = world.start_pose
    assert (start.x_m, start.y_m) == (10.0, 2.0) and start.yaw_rad == pytest.approx(math.pi / 2)
    assert covering(world, start.x_m, start.y_m) == []
    rug = [s for s in world.shapes if s.link == "rug"]
    assert rug and not any(s.collision for s in rug)


def test_chateau_rooms_doorways_and_relative_poses() -> None:
    world = load_world("chateau")
    assert world.start_pose.x_m == 1.5 and world.start_pose.y_m == 1.5
    for x in (3.0, 9.0, 15.0, 21.0):  # gallery doorways
        assert covering(world, x, 3.0) == []
        assert covering(world, x - 1.0, 3.0) != []
    for x in (6.0, 12.0, 18.0):  # enfilade doorways
        assert covering(world, x, 7.7) == []
        assert covering(world, x, 6.0) != []
    # The bust sits on its plinth through <pose relative_to="plinth">.
    bust = [s for s in world.collisions() if s.model == "bust_voltaire" and s.link == "artwork"]
    assert len(bust) == 1 and bust[0].kind == "sphere"
    assert bust[0].position == pytest.approx((3.0, 7.7, 1.2))


def test_visual_colours_are_read() -> None:
    world = load_world("library")
    floor = [s for s in world.visuals() if s.model == "ground"][0]
    assert floor.kind == "plane"
    assert floor.rgba == pytest.approx((0.55, 0.42, 0.30, 1.0))


SDF_HEAD = "<sdf version='1.9'><world name='t'>"
SDF_TAIL = "</world></sdf>"


def model(body: str, name: str = "m", static: str = "true", pose: str = "") -> str:
    return (f"<model name='{name}'><static>{static}</static>{pose}<link name='l'>{body}"
            "</link></model>")


BOX = "<collision name='c'><geometry><box><size>1 2 3</size></box></geometry></collision>"


def test_poses_compose_with_degrees_quaternions_and_relative_frames() -> None:
    text = (SDF_HEAD
            + "<frame name='corner'><pose>10 0 0 0 0 1.5707963267948966</pose></frame>"
            + model(BOX, "a", pose="<pose relative_to='corner'>1 0 0 0 0 0</pose>")
            + model(BOX, "b", pose="<pose degrees='true'>0 0 0 0 0 90</pose>")
            + model(BOX, "c", pose="<pose rotation_format='quat_xyzw'>0 0 0 0 0 0.7071068 "
                                   "0.7071068</pose>")
            + "<frame name='robot_start'><pose relative_to='a'>0 1 0 0 0 0</pose></frame>"
            + SDF_TAIL)
    world = parse_world_string(text, "inline.sdf")
    a, b, c = world.shapes
    assert a.position == pytest.approx((10.0, 1.0, 0.0))
    for shape in (a, b, c):
        assert shape.quaternion_wxyz == pytest.approx((math.sqrt(0.5), 0, 0, math.sqrt(0.5)),
                                                      abs=1e-6)
    assert world.start_pose.x_m == pytest.approx(9.0)
    assert world.start_pose.y_m == pytest.approx(1.0)
    assert world.start_pose.yaw_rad == pytest.approx(math.pi / 2)


@pytest.mark.parametrize(("text", "expected"), [
    ("<sdf version='1.9'><world name='t'>", "not well-formed XML"),
    ("<robot name='r'/>", "expected <sdf>"),
    (SDF_HEAD + model(BOX.replace("1 2 3", "1 2")) + SDF_TAIL, "model 'm' link 'l' collision 'c'"),
    (SDF_HEAD + model(BOX.replace("1 2 3", "1 x 3")) + SDF_TAIL, "not numeric"),
    (SDF_HEAD + model(BOX.replace("1 2 3", "1 -2 3")) + SDF_TAIL, "must be > 0"),
    (SDF_HEAD + model(BOX, static="false") + SDF_TAIL, "not <static>true</static>"),
    (SDF_HEAD + model(BOX.replace("<box><size>1 2 3</size></box>",
                                  "<cylinder><radius>0.2</radius></cylinder>")) + SDF_TAIL,
     "model 'm' link 'l' collision 'c': <cylinder> needs <length>"),
    (SDF_HEAD + model(BOX.replace("<box><size>1 2 3</size></box>",
                                  "<cylinder><length>1</length></cylinder>")) + SDF_TAIL,
     "model 'm' link 'l' collision 'c': <cylinder> needs <radius>"),
    (SDF_HEAD + model(BOX.replace("<size>1 2 3</size>", "")) + SDF_TAIL,
     "model 'm' link 'l' collision 'c': <box> needs <size>"),
    (SDF_HEAD + model(BOX.replace("<box><size>1 2 3</size></box>", "<sphere/>")) + SDF_TAIL,
     "model 'm' link 'l' collision 'c': <sphere> needs <radius>"),
    (SDF_HEAD + model(BOX.replace("1 2 3", " ")) + SDF_TAIL,
     "model 'm' link 'l' collision 'c': <size> is empty; expected 3 number(s)"),
    (SDF_HEAD + model("<visual name='v'><geometry><mesh><uri>x.dae</uri></mesh></geometry>"
                      "</visual>") + SDF_TAIL, "unsupported geometry <mesh>"),
    (SDF_HEAD + model(BOX, pose="<pose>1 2 3</pose>") + SDF_TAIL, "has 3 value(s)"),
    (SDF_HEAD + model(BOX, pose="<pose relative_to='nowhere'>0 0 0 0 0 0</pose>") + SDF_TAIL,
     "relative_to 'nowhere'"),
    (SDF_HEAD + model(BOX) + model(BOX) + SDF_TAIL, "duplicate name 'm'"),
    (SDF_HEAD + "<include><uri>model://x</uri></include>" + SDF_TAIL, "<include> is not supported"),
    (SDF_HEAD + SDF_TAIL, "no models with geometry"),
])
def test_malformed_worlds_name_the_file_and_the_problem(tmp_path: Path, text: str,
                                                         expected: str) -> None:
    path = tmp_path / "bad_world.sdf"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_world(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_unknown_world_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown world 'moon' \(available: .*library"):
        load_world("moon")
    with pytest.raises(ConfigError, match="world file not found"):
        load_world("/nonexistent/place.sdf")
