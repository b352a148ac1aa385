"""Places and patrol files: valid files load; each mistake gives a clear error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from passeur.navigation.exceptions import NavConfigError
from passeur.navigation.patrols import load_patrols
from passeur.navigation.places import load_places

PLACES = {
    "world": "test",
    "places": [
        {"id": "hall", "name": {"fr": "Hall", "en": "Hall"}, "pose": {"x": 1.0, "y": 1.0, "yaw": 0.0}},
        {"id": "desk", "name": {"fr": "Accueil", "en": "Desk"}, "pose": {"x": 3.0, "y": 1.0},
         "description": {"fr": "L'accueil.", "en": "The desk."}},
    ],
    "keep_out": [{"id": "stairs", "polygon": [[5, 5], [6, 5], [6, 6], [5, 6]]}],
    "slow_zones": [{"id": "kids", "speed_limit_mps": 0.2, "polygon": [[0, 3], [2, 3], [2, 5]]}],
}

ROUTES = {
    "world": "test",
    "routes": [{
        "id": "closing", "name": {"fr": "Fermeture", "en": "Closing"}, "repeat": 1,
        "on_failure": {"policy": "retry_then_skip", "retries": 2},
        "schedule": {"daily": "17:45"},
        "waypoints": [
            {"place": "hall", "dwell_s": 2, "announce": {"fr": "Nous fermons.", "en": "We close."}},
            {"place": "desk", "dwell_s": 0},
        ],
    }],
}


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_valid_files_load(tmp_path: Path) -> None:
    places = load_places(write(tmp_path, "test.yaml", PLACES), "test")
    assert places.place("desk").description["en"] == "The desk."
    assert places.keep_out[0].polygon[0] == (5.0, 5.0)
    assert places.slow_zones[0].speed_limit_mps == 0.2
    routes = load_patrols(write(tmp_path, "routes.yaml", ROUTES), places)
    route = routes.route("closing")
    assert route.daily_at == "17:45" and route.retries == 2
    assert [w.place for w in route.waypoints] == ["hall", "desk"]


def mutate(data: dict, path: list, value: object) -> dict:
    import copy

    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(("change", "message"), [
    ((["routes", 0, "waypoints", 1, "place"], "cellar"), "unknown place 'cellar'"),
    ((["routes", 0, "waypoints", 0, "dwell_s"], -5), "dwell_s must be between 0"),
    ((["routes", 0, "waypoints", 0, "dwell_s"], "long"), "dwell_s must be a number"),
    ((["routes", 0, "on_failure"], {"policy": "panic"}), "on_failure.policy must be one of"),
    ((["routes", 0, "on_failure"], {"policy": "retry_then_skip", "retries": -1}), "retries"),
    ((["routes", 0, "repeat"], 0), "repeat must be a whole number"),
    ((["routes", 0, "schedule"], {"daily": "25:00"}), "schedule.daily"),
    ((["routes", 0, "name"], {"fr": "Fermeture"}), "needs a non-empty 'en' text"),
    ((["routes", 0, "waypoints"], []), "waypoints must be a non-empty list"),
])
def test_patrol_mistakes_are_named(tmp_path: Path, change: tuple, message: str) -> None:
    places = load_places(write(tmp_path, "test.yaml", PLACES), "test")
    path = write(tmp_path, "routes.yaml", mutate(ROUTES, *change))
    with pytest.raises(NavConfigError) as info:
        load_patrols(path, places)
    text = str(info.value)
    assert str(path) in text
    assert message in text
    assert "route 'closing'" in text


def test_an_unquoted_schedule_time_says_to_quote_it(tmp_path: Path) -> None:
    """`daily: 17:45` without quotes is the number 1065 to YAML (base 60)."""
    places = load_places(write(tmp_path, "test.yaml", PLACES), "test")
    text = yaml.safe_dump(ROUTES, allow_unicode=True)
    assert "daily: '17:45'" in text
    path = tmp_path / "routes.yaml"
    path.write_text(text.replace("daily: '17:45'", "daily: 17:45"), encoding="utf-8")
    with pytest.raises(NavConfigError) as info:
        load_patrols(path, places)
    assert str(info.value) == (
        f"{path}: route 'closing': schedule.daily must be a time \"HH:MM\" (got 1065); YAML "
        "reads 17:45 without quotes as the number 1065: write it in quotes, daily: \"17:45\"")


@pytest.mark.parametrize(("change", "message"), [
    ((["places", 0, "pose"], {"y": 1.0}), "needs pose"),
    ((["places", 1, "id"], "hall"), "defined twice"),
    ((["places", 0, "name"], {"fr": "Hall", "en": ""}), "non-empty 'en'"),
    ((["places", 0, "pose", "x"], "left"), "pose.x must be a number"),
    # degrees where radians belong: the robot would face 90 rad (about 116 degrees)
    ((["places", 0, "pose", "yaw"], 90), "pose.yaw is in radians, from -3.1416 to 3.1416 (got "
                                         "90; 90 degrees would be 1.5708)"),
    ((["keep_out", 0, "polygon"], [[0, 0], [1, 1]]), "at least 3"),
    ((["slow_zones", 0, "speed_limit_mps"], -1), "speed_limit_mps must be > 0"),
    ((["keep_out", 0, "polygon"], [[0, 0], [2, 0], [2, 2], [0, 2]]), "inside keep-out zone"),
])
def test_places_mistakes_are_named(tmp_path: Path, change: tuple, message: str) -> None:
    path = write(tmp_path, "test.yaml", mutate(PLACES, *change))
    with pytest.raises(NavConfigError) as info:
        load_places(path, "test")
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(NavConfigError, match="not found"):
        load_places(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("places: [\n  - id: a\n  bad", encoding="utf-8")
    with pytest.raises(NavConfigError, match="not valid YAML at line"):
        load_places(bad)
    latin1 = tmp_path / "latin1.yaml"  # French names saved in Latin-1 by an editor
    latin1.write_bytes("places:\n  - id: hall\n    name: {fr: \"Entr\u00e9e\"}\n".encode("latin-1"))
    with pytest.raises(NavConfigError, match="latin1.yaml: not UTF-8 text"):
        load_places(latin1)


def test_unreadable_map_file_is_a_clear_error(tmp_path: Path) -> None:
    from passeur.errors import ConfigError
    from passeur.navigation.map_io import load_map

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("image: carte-\u00e9t\u00e9.pgm\nresolution: 0.05\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin1.yaml: not UTF-8 text"):
        load_map(latin1)
    with pytest.raises(ConfigError, match="cannot read the map file"):
        load_map(tmp_path)  # a folder given for the file
