"""Patrol routes of a world: `config/patrols/<world>.yaml`.

    world: library
    routes:
      - id: closing_round
        name: {fr: "Ronde de fermeture", en: "Closing round"}
        repeat: 1                                   # times through the waypoint list (>= 1)
        on_failure: {policy: retry_then_skip, retries: 2}   # or {policy: abort}
        schedule: {daily: "17:45"}                  # optional, local time
        waypoints:
          - place: entrance                         # a place id from config/places/<world>.yaml
            dwell_s: 5                              # wait there (seconds, >= 0)
            announce: {fr: "...", en: "..."}        # optional, spoken in both languages

Every problem raises NavConfigError naming the file, the route and the waypoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passeur.navigation.exceptions import NavConfigError
from passeur.navigation.places import PlacesConfig, _id, _read_yaml, _text_map
from passeur.paths import share_path

POLICIES = ("retry_then_skip", "abort")
MAX_DWELL_S = 3600.0
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _unquoted_time_hint(value: object) -> str:
    """YAML 1.1 (PyYAML) reads an unquoted 17:45 as the base-60 number 1065 (08:45 stays
    text): say so, or the error would show a number the user never wrote."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 24 * 60:
        return ""
    hours, minutes = divmod(value, 60)
    return (f"; YAML reads {hours}:{minutes:02d} without quotes as the number {value}: "
            f"write it in quotes, daily: \"{hours:02d}:{minutes:02d}\"")


@dataclass(frozen=True)
class Waypoint:
    place: str
    dwell_s: float
    announce: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    id: str
    names: dict[str, str]
    waypoints: tuple[Waypoint, ...]
    repeat: int = 1
    policy: str = "retry_then_skip"
    retries: int = 2
    daily_at: str | None = None  # "HH:MM"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "names": dict(self.names), "repeat": self.repeat,
            "on_failure": {"policy": self.policy, "retries": self.retries},
            "schedule": {"daily": self.daily_at} if self.daily_at else None,
            "waypoints": [{"place": w.place, "dwell_s": w.dwell_s, "announce": dict(w.announce)}
                          for w in self.waypoints],
        }


@dataclass(frozen=True)
class PatrolsConfig:
    world: str
    routes: dict[str, Route]
    path: Path | None = None

    def route(self, route_id: str) -> Route:
        try:
            return self.routes[route_id]
        except KeyError:
            known = ", ".join(sorted(self.routes)) or "none"
            raise NavConfigError(f"unknown route '{route_id}' (known routes: {known})",
                                 self.path) from None


def patrols_path(world: str) -> Path:
    return share_path("config", "patrols", f"{world}.yaml")


def _dwell(value: Any, where: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NavConfigError(f"{where}: dwell_s must be a number of seconds (got {value!r})", path)
    if not 0 <= value <= MAX_DWELL_S:
        raise NavConfigError(
            f"{where}: dwell_s must be between 0 and {MAX_DWELL_S:.0f} s (got {value})", path)
    return float(value)


def parse_patrols(data: Any, path: Path, places: PlacesConfig) -> PatrolsConfig:
    if not isinstance(data, dict):
        raise NavConfigError("expected a mapping with 'routes'", path)
    unknown = set(data) - {"world", "routes"}
    if unknown:
        raise NavConfigError(f"unknown key(s) {sorted(unknown)}; expected world, routes", path)
    world = data.get("world", places.world)
    if world != places.world:
        raise NavConfigError(f"file is for world '{world}' but the places are for "
                             f"'{places.world}'", path)
    raw_routes = data.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise NavConfigError("'routes' must be a non-empty list", path)
    routes: dict[str, Route] = {}
    known = ", ".join(sorted(places.places))
    for i, entry in enumerate(raw_routes):
        where = f"route {i + 1}"
        if not isinstance(entry, dict):
            raise NavConfigError(f"{where} must be a mapping", path)
        rid = _id(entry.get("id"), where, path)
        where = f"route '{rid}'"
        if rid in routes:
            raise NavConfigError(f"{where} is defined twice", path)
        extra = set(entry) - {"id", "name", "repeat", "on_failure", "schedule", "waypoints"}
        if extra:
            raise NavConfigError(f"{where} has unknown key(s) {sorted(extra)}", path)
        repeat = entry.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= 100:
            raise NavConfigError(f"{where}: repeat must be a whole number from 1 to 100 "
                                 f"(got {repeat!r})", path)
        failure = entry.get("on_failure", {"policy": "retry_then_skip", "retries": 2})
        if isinstance(failure, str):
            failure = {"policy": failure}
        if not isinstance(failure, dict):
            raise NavConfigError(f"{where}: on_failure must be a mapping "
                                 "{policy: retry_then_skip|abort, retries: N}", path)
        policy = failure.get("policy")
        if policy not in POLICIES:
            raise NavConfigError(f"{where}: on_failure.policy must be one of "
                                 f"{', '.join(POLICIES)} (got {policy!r})", path)
        retries = failure.get("retries", 2 if policy == "retry_then_skip" else 0)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            raise NavConfigError(f"{where}: on_failure.retries must be a whole number from 0 "
                                 f"to 10 (got {retries!r})", path)
        daily = None
        schedule = entry.get("schedule")
        if schedule is not None:
            if not isinstance(schedule, dict) or set(schedule) != {"daily"}:
                raise NavConfigError(f"{where}: schedule must be {{daily: \"HH:MM\"}}", path)
            raw = schedule["daily"]
            daily = str(raw)
            if not _HHMM.match(daily):
                raise NavConfigError(f"{where}: schedule.daily must be a time \"HH:MM\" "
                                     f"(got {raw!r}){_unquoted_time_hint(raw)}", path)
        raw_wps = entry.get("waypoints")
        if not isinstance(raw_wps, list) or not raw_wps:
            raise NavConfigError(f"{where}: waypoints must be a non-empty list", path)
        wps = []
        for k, wp in enumerate(raw_wps):
            wwhere = f"{where} waypoint {k + 1}"
            if isinstance(wp, str):
                wp = {"place": wp}
            if not isinstance(wp, dict):
                raise NavConfigError(f"{wwhere} must be a mapping with place, dwell_s", path)
            extra = set(wp) - {"place", "dwell_s", "announce"}
            if extra:
                raise NavConfigError(f"{wwhere} has unknown key(s) {sorted(extra)}", path)
            place = wp.get("place")
            if place not in places.places:
                raise NavConfigError(f"{wwhere}: unknown place {place!r} (known places: {known})",
                                     path)
            wps.append(Waypoint(place=str(place), dwell_s=_dwell(wp.get("dwell_s", 0), wwhere, path),
                                announce=_text_map(wp.get("announce"), f"{wwhere} announce",
                                                   path, required=False)))
        routes[rid] = Route(id=rid, names=_text_map(entry.get("name"), f"{where} name", path,
                                                    required=True),
                            waypoints=tuple(wps), repeat=repeat, policy=str(policy),
                            retries=retries, daily_at=daily)
    return PatrolsConfig(world=str(world), routes=routes, path=path)


def load_patrols(path: Path, places: PlacesConfig) -> PatrolsConfig:
    return parse_patrols(_read_yaml(path, "patrols"), path, places)
