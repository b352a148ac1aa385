"""Named places, keep-out zones and slow zones of a world: `config/places/<world>.yaml`.

    world: library
    places:
      - id: entrance
        name: {fr: "Entrée", en: "Entrance"}
        pose: {x: 1.5, y: 7.0, yaw: 0.0}          # metres, radians, frame `map`
        description: {fr: "...", en: "..."}       # optional, spoken on arrival
    keep_out:                                      # the robot's centre never enters these
      - id: stairs
        name: {fr: "Escalier", en: "Stairs"}      # optional
        polygon: [[x, y], [x, y], [x, y], ...]
    slow_zones:
      - id: children_corner
        speed_limit_mps: 0.2
        polygon: [[x, y], ...]

Every problem raises NavConfigError naming the file and the entry.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from passeur.navigation.exceptions import NavConfigError, NavConfigFileNotFoundError
from passeur.paths import share_path

LANGS = ("fr", "en")
_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


@dataclass(frozen=True)
class Place:
    id: str
    names: dict[str, str]
    x_m: float
    y_m: float
    yaw_rad: float
    description: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "names": dict(self.names),
                "pose": {"x": self.x_m, "y": self.y_m, "yaw": self.yaw_rad},
                "description": dict(self.description)}


@dataclass(frozen=True)
class Zone:
    id: str
    kind: str  # "keep_out" or "slow"
    polygon: tuple[tuple[float, float], ...]
    names: dict[str, str] = field(default_factory=dict)
    speed_limit_mps: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "names": dict(self.names),
                               "polygon": [list(p) for p in self.polygon]}
        if self.speed_limit_mps is not None:
            out["speed_limit_mps"] = self.speed_limit_mps
        return out


@dataclass(frozen=True)
class PlacesConfig:
    world: str
    places: dict[str, Place]
    keep_out: tuple[Zone, ...]
    slow_zones: tuple[Zone, ...]
    path: Path | None = None

    def place(self, place_id: str) -> Place:
        try:
            return self.places[place_id]
        except KeyError:
            known = ", ".join(sorted(self.places)) or "none"
            raise NavConfigError(f"unknown place '{place_id}' (known places: {known})",
                                 self.path) from None

    def to_json(self) -> dict[str, Any]:
        return {"world": self.world, "places": [p.to_json() for p in self.places.values()],
                "keep_out": [z.to_json() for z in self.keep_out],
                "slow_zones": [z.to_json() for z in self.slow_zones]}


def places_path(world: str) -> Path:
    return share_path("config", "places", f"{world}.yaml")


def _read_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NavConfigFileNotFoundError(f"{what} file not found", path) from None
    except UnicodeDecodeError as exc:
        raise NavConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
                             "UTF-8", path) from None
    except OSError as exc:
        raise NavConfigError(f"cannot read {what} file: {exc.strerror}", path) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise NavConfigError(f"not valid YAML{where}; fix the syntax", path) from None


def _number(value: Any, what: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NavConfigError(f"{what} must be a number (got {value!r})", path)
    return float(value)


#: A yaw beyond a full turn (and a little rounding) is degrees written where radians belong.
MAX_ABS_YAW_RAD = 6.3


def _yaw(value: Any, what: str, path: Path) -> float:
    yaw = _number(value, what, path)
    if abs(yaw) > MAX_ABS_YAW_RAD:
        raise NavConfigError(f"{what} is in radians, from -3.1416 to 3.1416 (got {value!r}; "
                             f"{value!r} degrees would be {math.radians(yaw):.4f})", path)
    return yaw


def _text_map(value: Any, what: str, path: Path, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise NavConfigError(f"{what} must be a mapping with 'fr' and 'en' texts", path)
    out: dict[str, str] = {}
    for lang in LANGS:
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            raise NavConfigError(f"{what} needs a non-empty '{lang}' text", path)
        out[lang] = text.strip()
    extra = set(value) - set(LANGS)
    if extra:
        raise NavConfigError(f"{what} has unknown language(s) {sorted(extra)} (use fr, en)", path)
    return out


def _id(value: Any, what: str, path: Path) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise NavConfigError(
            f"{what} id must be lower-case letters, digits, '_' or '-' (got {value!r})", path)
    return value


def _polygon(value: Any, what: str, path: Path) -> tuple[tuple[float, float], ...]:
    if not isinstance(value, list) or len(value) < 3:
        raise NavConfigError(f"{what} polygon needs at least 3 [x, y] points", path)
    pts = []
    for i, p in enumerate(value):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise NavConfigError(f"{what} polygon point {i + 1} must be [x, y] (got {p!r})", path)
        pts.append((_number(p[0], f"{what} point {i + 1} x", path),
                    _number(p[1], f"{what} point {i + 1} y", path)))
    area = 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True))
    if abs(area) < 1e-6:
        raise NavConfigError(f"{what} polygon has no area", path)
    return tuple(pts)


def parse_places(data: Any, path: Path, world: str | None = None) -> PlacesConfig:
    if not isinstance(data, dict):
        raise NavConfigError("expected a mapping with 'places' (and optional keep_out, slow_zones)",
                             path)
    unknown = set(data) - {"world", "places", "keep_out", "slow_zones"}
    if unknown:
        raise NavConfigError(f"unknown key(s) {sorted(unknown)}; expected world, places, "
                             "keep_out, slow_zones", path)
    file_world = data.get("world", world or path.stem)
    if world is not None and file_world != world:
        raise NavConfigError(f"file is for world '{file_world}', not '{world}'", path)
    raw_places = data.get("places")
    if not isinstance(raw_places, list) or not raw_places:
        raise NavConfigError("'places' must be a non-empty list", path)
    places: dict[str, Place] = {}
    for i, entry in enumerate(raw_places):
        where = f"place {i + 1}"
        if not isinstance(entry, dict):
            raise NavConfigError(f"{where} must be a mapping", path)
        pid = _id(entry.get("id"), where, path)
        where = f"place '{pid}'"
        if pid in places:
            raise NavConfigError(f"{where} is defined twice", path)
        extra = set(entry) - {"id", "name", "pose", "description"}
        if extra:
            raise NavConfigError(f"{where} has unknown key(s) {sorted(extra)}", path)
        pose = entry.get("pose")
        if not isinstance(pose, dict) or "x" not in pose or "y" not in pose:
            raise NavConfigError(f"{where} needs pose: {{x: .., y: .., yaw: ..}}", path)
        places[pid] = Place(
            id=pid,
            names=_text_map(entry.get("name"), f"{where} name", path, required=True),
            x_m=_number(pose["x"], f"{where} pose.x", path),
            y_m=_number(pose["y"], f"{where} pose.y", path),
            yaw_rad=_yaw(pose.get("yaw", 0.0), f"{where} pose.yaw", path),
            description=_text_map(entry.get("description"), f"{where} description", path,
                                  required=False),
        )
    zones: dict[str, list[Zone]] = {"keep_out": [], "slow_zones": []}
    seen: set[str] = set()
    for key in ("keep_out", "slow_zones"):
        raw = data.get(key) or []
        if not isinstance(raw, list):
            raise NavConfigError(f"'{key}' must be a list", path)
        for i, entry in enumerate(raw):
            where = f"{key} entry {i + 1}"
            if not isinstance(entry, dict):
                raise NavConfigError(f"{where} must be a mapping", path)
            zid = _id(entry.get("id"), where, path)
            where = f"{key} '{zid}'"
            if zid in seen:
                raise NavConfigError(f"{where}: zone id used twice", path)
            seen.add(zid)
            allowed = {"id", "name", "polygon"} | ({"speed_limit_mps"} if key == "slow_zones" else set())
            extra = set(entry) - allowed
            if extra:
                raise NavConfigError(f"{where} has unknown key(s) {sorted(extra)}", path)
            limit = None
            if key == "slow_zones":
                limit = _number(entry.get("speed_limit_mps"), f"{where} speed_limit_mps", path)
                if limit <= 0:
                    raise NavConfigError(f"{where} speed_limit_mps must be > 0 (got {limit})", path)
            zones[key].append(Zone(
                id=zid, kind="keep_out" if key == "keep_out" else "slow",
                polygon=_polygon(entry.get("polygon"), where, path),
                names=_text_map(entry.get("name"), f"{where} name", path, required=False),
                speed_limit_mps=limit))
    from passeur.navigation.costmap import point_in_polygon

    for place in places.values():
        for zone in zones["keep_out"]:
            if point_in_polygon(place.x_m, place.y_m, zone.polygon):
                raise NavConfigError(f"place '{place.id}' is inside keep-out zone '{zone.id}'", path)
    return PlacesConfig(world=str(file_world), places=places, keep_out=tuple(zones["keep_out"]),
                        slow_zones=tuple(zones["slow_zones"]), path=path)


def load_places(path: Path, world: str | None = None) -> PlacesConfig:
    return parse_places(_read_yaml(path, "places"), path, world)
