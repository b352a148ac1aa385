"""Data-channel messages from the browser: parse, validate, bound.

Every message is one JSON object of at most MAX_MESSAGE_BYTES with a known "type":

    {"type": "drive", "linear": 0.3, "angular": 0.0}            m/s, rad/s (clamped)
    {"type": "drive", "direction": "forward", "speed_level": 2}  level 1..N from config
    {"type": "stop"}                                             also cancels navigation
    {"type": "look", "direction": "left"|"right"}                rotate in place one step
    {"type": "goto_place", "id": "reading_corner"}
    {"type": "goto_point", "x": 3.2, "y": -1.0}                  map frame, metres
    {"type": "goto_pixel", "u": 320, "v": 400}                   video pixel (camera size)
    {"type": "mute", "target": "robot_mic"|"robot_speaker", "on": true}   pilot only: shared
    {"type": "extend"}                                           extend this session (bounded)
    {"type": "ping", "t": 12345.6}                               echoed back as pong

A drive that moves takes over from navigation under way (it is cancelled); a zero drive is a
let-go (the end of a press, or the page re-arming driving after an e-stop's release) and
cancels nothing.

Optional "seq" (integer) on any message is echoed in replies. Anything else (not JSON, not an
object, too big, unknown type, missing/extra/ill-typed fields, NaN, infinities) raises
MessageError. Speeds are clamped to the server's limits, whatever the browser says.

The server sends back (JSON objects on the same channel, label "control"):

    {"type": "hello", "role": "pilot"|"spectator"|"staff", "expires_in_s": N,
     "extensions_left": N, "extend_s": N}
    {"type": "status", "robot": {pose (with "frame": "map"|"odom"), speed, estop,
     navigation (+ "reason_code"), patrol (+ "reason_code", "cause_code"), safety,
     pilot_goal (null, or the pilot's latest goal: {"request_id", "state": "sent"|"planning"|
     "driving"|"reached"|"failed"|"cancelled", "goal_id", "reason_code", "reason"}), ...},
     "expires_in_s": N}                                        every 0.5 s
    Pages show text in their own language from these codes (never the robot's English).
    {"type": "ack", "action": "stop"|"look"|"goto_place"|"goto_point", ...}
     (a goto's ack has "request_id": the pilot's goal in status.robot.pilot_goal)
    {"type": "error", "code": "bad_json"|"too_big"|"unknown_type"|"bad_field"|"forbidden"|
     "session_ended"|"not_driving"|"not_floor"|"no_camera"|"max_extensions"|...,
     "message": "..." (English, for logs and tools; pages translate "code")}
    {"type": "pong", "t": <echo>, "server_time": <epoch s>}
    {"type": "session", "expires_in_s": N, ...}                 after "extend"
    {"type": "muted", "target": ..., "on": bool}
    {"type": "session_ended", "reason": "ended_by_staff"|"taken_over"|"expired"|"left"}
    {"type": "replaced"}                                        another tab took the session
More than MAX_MESSAGES_PER_S (server.py) messages in a second are dropped without replies.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from passeur.telepresence.exceptions import MessageError

MAX_MESSAGE_BYTES = 1024
MAX_COORD_M = 10_000.0
MAX_PIXEL = 16_384
PLACE_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")

#: (linear sign, angular sign) for each hold-to-drive direction.
DIRECTIONS: dict[str, tuple[float, float]] = {
    "forward": (1.0, 0.0),
    "backward": (-1.0, 0.0),
    "left": (0.0, 1.0),
    "right": (0.0, -1.0),
    "forward_left": (1.0, 0.5),
    "forward_right": (1.0, -0.5),
    "backward_left": (-1.0, -0.5),
    "backward_right": (-1.0, 0.5),
}


@dataclass(frozen=True)
class SpeedLevel:
    linear_mps: float
    angular_rps: float


@dataclass(frozen=True)
class SpeedLimits:
    """Server-side bounds on what a pilot may ask for."""

    max_linear_mps: float = 0.5
    max_reverse_mps: float = 0.2
    max_angular_rps: float = 1.0
    levels: tuple[SpeedLevel, ...] = (
        SpeedLevel(0.15, 0.35), SpeedLevel(0.3, 0.6), SpeedLevel(0.5, 0.9))

    def clamp(self, linear: float, angular: float) -> tuple[float, float]:
        lin = min(max(linear, -self.max_reverse_mps), self.max_linear_mps)
        ang = min(max(angular, -self.max_angular_rps), self.max_angular_rps)
        return lin, ang


@dataclass(frozen=True)
class Drive:
    linear_mps: float
    angular_rps: float


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Look:
    direction: str  # "left" | "right"


@dataclass(frozen=True)
class GotoPlace:
    place_id: str


@dataclass(frozen=True)
class GotoPoint:
    x_m: float
    y_m: float


@dataclass(frozen=True)
class GotoPixel:
    u: float
    v: float


@dataclass(frozen=True)
class Mute:
    target: str  # "robot_mic" | "robot_speaker"
    on: bool


@dataclass(frozen=True)
class Extend:
    pass


@dataclass(frozen=True)
class Ping:
    t: float | None


Command = Drive | Stop | Look | GotoPlace | GotoPoint | GotoPixel | Mute | Extend | Ping

#: Message types that move the robot (refused for spectators).
DRIVING = (Drive, Stop, Look, GotoPlace, GotoPoint, GotoPixel)


@dataclass(frozen=True)
class Parsed:
    command: Command
    seq: int | None


_FIELDS: dict[str, set[str]] = {
    "drive": {"linear", "angular", "direction", "speed_level"},
    "stop": set(),
    "look": {"direction"},
    "goto_place": {"id"},
    "goto_point": {"x", "y"},
    "goto_pixel": {"u", "v"},
    "mute": {"target", "on"},
    "extend": set(),
    "ping": {"t"},
}


def _number(obj: dict[str, Any], key: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MessageError("bad_field", f"'{key}' must be a number")
    number = float(value)  # a huge int raises OverflowError
    if not math.isfinite(number):
        raise MessageError("bad_field", f"'{key}' must be finite")
    return number


def _reject_nonfinite(token: str) -> float:
    raise MessageError("bad_json", f"{token} is not allowed")


def parse_message(raw: str | bytes, limits: SpeedLimits) -> Parsed:
    """Validate one message; raise MessageError(code, text) for anything not allowed."""
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > MAX_MESSAGE_BYTES:
        raise MessageError("too_big", f"messages are limited to {MAX_MESSAGE_BYTES} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        obj = json.loads(text, parse_constant=_reject_nonfinite)
    except MessageError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MessageError("bad_json", "not valid JSON") from exc
    if not isinstance(obj, dict):
        raise MessageError("bad_json", "a message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise MessageError("unknown_type", "unknown message type")
    extra = set(obj) - _FIELDS[kind] - {"type", "seq"}
    if extra:
        raise MessageError("bad_field", f"unexpected field(s) for {kind}")
    seq_value = obj.get("seq")
    seq: int | None = None
    if seq_value is not None:
        if isinstance(seq_value, bool) or not isinstance(seq_value, int) \
                or not (0 <= seq_value < 2**53):
            raise MessageError("bad_field", "'seq' must be a non-negative integer")
        seq = seq_value
    return Parsed(_command(kind, obj, limits), seq)


def _command(kind: str, obj: dict[str, Any], limits: SpeedLimits) -> Command:
    if kind == "drive":
        if "direction" in obj or "speed_level" in obj:
            if "linear" in obj or "angular" in obj:
                raise MessageError("bad_field", "give linear/angular or direction/speed_level")
            direction = obj.get("direction")
            if not isinstance(direction, str) or direction not in DIRECTIONS:
                raise MessageError("bad_field", "unknown direction")
            level = obj.get("speed_level", 1)
            if isinstance(level, bool) or not isinstance(level, int):
                raise MessageError("bad_field", "'speed_level' must be an integer")
            level = min(max(level, 1), len(limits.levels))
            speed = limits.levels[level - 1]
            sign_lin, sign_ang = DIRECTIONS[direction]
            lin, ang = limits.clamp(sign_lin * speed.linear_mps, sign_ang * speed.angular_rps)
            return Drive(lin, ang)
        try:
            linear = _number(obj, "linear") if "linear" in obj else 0.0
            angular = _number(obj, "angular") if "angular" in obj else 0.0
        except OverflowError as exc:
            raise MessageError("bad_field", "number out of range") from exc
        lin, ang = limits.clamp(linear, angular)
        return Drive(lin, ang)
    if kind == "stop":
        return Stop()
    if kind == "look":
        direction = obj.get("direction")
        if direction not in ("left", "right"):
            raise MessageError("bad_field", "look direction must be 'left' or 'right'")
        return Look(str(direction))
    if kind == "goto_place":
        place = obj.get("id")
        if not isinstance(place, str) or not PLACE_ID.match(place):
            raise MessageError("bad_field", "'id' must be a place identifier")
        return GotoPlace(place)
    if kind in ("goto_point", "goto_pixel"):
        keys = ("x", "y") if kind == "goto_point" else ("u", "v")
        bound = MAX_COORD_M if kind == "goto_point" else float(MAX_PIXEL)
        lo = -bound if kind == "goto_point" else 0.0
        try:
            a, b = (_number(obj, k) for k in keys)
        except OverflowError as exc:
            raise MessageError("bad_field", "number out of range") from exc
        if not (lo <= a <= bound and lo <= b <= bound):
            raise MessageError("bad_field", f"{kind} coordinates out of range")
        return GotoPoint(a, b) if kind == "goto_point" else GotoPixel(a, b)
    if kind == "mute":
        target, on = obj.get("target"), obj.get("on")
        if target not in ("robot_mic", "robot_speaker") or not isinstance(on, bool):
            raise MessageError("bad_field", "mute needs target robot_mic|robot_speaker and on")
        return Mute(str(target), on)
    if kind == "extend":
        return Extend()
    # ping
    t = obj.get("t")
    if t is not None:
        try:
            t = _number(obj, "t")
        except OverflowError as exc:
            raise MessageError("bad_field", "number out of range") from exc
    return Ping(t)
