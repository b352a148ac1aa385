"""Read the subset of SDF 1.9 that Passeur's worlds use into plain data.

Supported: a `<world>` with static `<model>`s made of `<link>`s, whose `<collision>` and
`<visual>` elements have box / cylinder / sphere / plane geometry; `<pose>` on models, links,
collisions, visuals and world-level `<frame>`s (with `relative_to`, `degrees`, and
`rotation_format="quat_xyzw"`); `<material>` diffuse/ambient colours. Anything else that would
change the geometry (meshes, includes, nested or non-static models) is refused with a
ConfigError naming the file and the element, so a world never silently loses an obstacle.

No MuJoCo and no rclpy here: the simulator, the map rasteriser and the Gazebo launch file all
read worlds through `load_world()`.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from passeur.errors import ConfigError
from passeur.ros.geometry import Pose2D

GEOMETRY_KINDS = ("box", "cylinder", "sphere", "plane")
DEFAULT_RGBA = (0.7, 0.7, 0.7, 1.0)
START_FRAME = "robot_start"

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Shape:
    """One collision or visual geometry, placed in the world frame.

    `size` depends on `kind`: box (sx, sy, sz) full lengths; cylinder (radius, length) along
    the shape's local z; sphere (radius,); plane (size_x, size_y) with its normal along the
    shape's local z.
    """

    model: str
    link: str
    name: str
    kind: str
    size: tuple[float, ...]
    transform: tuple[tuple[float, ...], ...]  # 4x4 world pose, rows
    rgba: tuple[float, float, float, float]
    collision: bool  # True: a <collision> (physical); False: a <visual> (seen only)

    @property
    def matrix(self) -> Matrix:
        return np.array(self.transform, dtype=np.float64)

    @property
    def position(self) -> tuple[float, float, float]:
        t = self.transform
        return (t[0][3], t[1][3], t[2][3])

    @property
    def quaternion_wxyz(self) -> tuple[float, float, float, float]:
        return _matrix_to_quaternion(self.matrix[:3, :3])

    @property
    def full_name(self) -> str:
        return f"{self.model}/{self.link}/{self.name}"

    def local_points(self, segments: int = 32) -> Matrix:
        """Points on the shape's outline in its local frame (for footprints and extents)."""
        if self.kind == "box":
            hx, hy, hz = (s / 2.0 for s in self.size)
            return np.array([[sx * hx, sy * hy, sz * hz] for sx in (-1, 1) for sy in (-1, 1)
                             for sz in (-1, 1)], dtype=np.float64)
        if self.kind == "cylinder":
            r, length = self.size
            a = np.linspace(0.0, 2.0 * math.pi, segments, endpoint=False)
            ring = np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
            top = np.hstack([ring, np.full((segments, 1), length / 2.0)])
            bottom = np.hstack([ring, np.full((segments, 1), -length / 2.0)])
            return np.vstack([top, bottom])
        if self.kind == "sphere":
            (r,) = self.size
            a = np.linspace(0.0, 2.0 * math.pi, segments, endpoint=False)
            rings = [np.stack([r * np.cos(a), r * np.sin(a), np.zeros(segments)], axis=1)]
            rings.append(np.array([[0.0, 0.0, r], [0.0, 0.0, -r]]))
            rings.append(np.stack([r * np.cos(a), np.zeros(segments), r * np.sin(a)], axis=1))
            rings.append(np.stack([np.zeros(segments), r * np.cos(a), r * np.sin(a)], axis=1))
            return np.vstack(rings)
        sx, sy = self.size
        return np.array([[-sx / 2, -sy / 2, 0.0], [sx / 2, -sy / 2, 0.0], [sx / 2, sy / 2, 0.0],
                         [-sx / 2, sy / 2, 0.0]], dtype=np.float64)

    def world_points(self, segments: int = 32) -> Matrix:
        pts = self.local_points(segments)
        m = self.matrix
        out: Matrix = pts @ m[:3, :3].T + m[:3, 3]
        return out


@dataclass
class World:
    name: str
    path: Path
    shapes: list[Shape]
    frames: dict[str, Pose2D] = field(default_factory=dict)
    model_names: list[str] = field(default_factory=list)

    @property
    def start_pose(self) -> Pose2D:
        """The robot's start pose: the world's `<frame name="robot_start">`, else the origin."""
        return self.frames.get(START_FRAME, Pose2D(0.0, 0.0, 0.0))

    def collisions(self) -> list[Shape]:
        return [s for s in self.shapes if s.collision]

    def visuals(self) -> list[Shape]:
        return [s for s in self.shapes if not s.collision]

    def obstacles(self) -> list[Shape]:
        """Collision shapes other than ground planes."""
        return [s for s in self.shapes if s.collision and s.kind != "plane"]

    def bounds(self) -> tuple[float, float, float, float]:
        """(min_x, min_y, max_x, max_y) of every obstacle."""
        obstacles = self.obstacles()
        if not obstacles:
            raise ConfigError("the world has no obstacles (no walls?)", self.path)
        pts = np.vstack([s.world_points() for s in obstacles])
        return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()),
                float(pts[:, 1].max()))


# --------------------------------------------------------------------------------------------
def worlds_dir() -> Path:
    from passeur.paths import share_path

    return share_path("sim", "worlds")


def available_worlds() -> list[str]:
    folder = worlds_dir()
    return sorted(p.stem for p in folder.glob("*.sdf")) if folder.is_dir() else []


def resolve_world(world: str | Path) -> Path:
    """A world name (`library`) or a path to an .sdf file -> the file's path."""
    text = str(world).strip()
    if not text:
        raise ConfigError("no world given; use a name such as 'library' or a path to an .sdf file")
    candidate = Path(text).expanduser()
    if candidate.suffix == ".sdf" or "/" in text or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError("world file not found", candidate)
        return candidate
    path = worlds_dir() / f"{text}.sdf"
    if not path.is_file():
        names = ", ".join(available_worlds()) or "none installed"
        raise ConfigError(f"unknown world '{text}' (available: {names})")
    return path


def load_world(world: str | Path) -> World:
    """Parse a world by name or path. Raises ConfigError naming the file and the problem."""
    path = resolve_world(world)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ConfigError(f"not well-formed XML ({exc})", path) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read the file ({exc.strerror})", path) from exc
    return _Parser(path).parse(root)


def parse_world_string(text: str, path: str | Path = "<string>") -> World:
    """Parse SDF text (tests, generated worlds). `path` only names it in error messages."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ConfigError(f"not well-formed XML ({exc})", path) from exc
    return _Parser(Path(path)).parse(root)


# --------------------------------------------------------------------------------------------
def _rpy_matrix(roll: float, pitch: float, yaw: float) -> Matrix:
    """SDF/URDF fixed-axis roll-pitch-yaw: R = Rz(yaw) Ry(pitch) Rx(roll)."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array([
        [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
        [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
        [-sp, cp * sr, cp * cr],
    ])


def _quaternion_matrix(x: float, y: float, z: float, w: float) -> Matrix:
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n < 1e-12:
        raise ValueError("zero quaternion")
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _matrix_to_quaternion(r: Matrix) -> tuple[float, float, float, float]:
    """(w, x, y, z), w >= 0."""
    trace = r[0, 0] + r[1, 1] + r[2, 2]
    if trace > 0:
        s = math.sqrt(trace + 1.0) * 2
        w, x = 0.25 * s, (r[2, 1] - r[1, 2]) / s
        y, z = (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        w, x = (r[2, 1] - r[1, 2]) / s, 0.25 * s
        y, z = (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        w, x = (r[0, 2] - r[2, 0]) / s, (r[0, 1] + r[1, 0]) / s
        y, z = 0.25 * s, (r[1, 2] + r[2, 1]) / s
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        w, x = (r[1, 0] - r[0, 1]) / s, (r[0, 2] + r[2, 0]) / s
        y, z = (r[1, 2] + r[2, 1]) / s, 0.25 * s
    if w < 0:
        w, x, y, z = -w, -x, -y, -z
    return (float(w), float(x), float(y), float(z))


def _yaw_of(m: Matrix) -> float:
    return math.atan2(float(m[1, 0]), float(m[0, 0]))


def _as_tuple(m: Matrix) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in m)


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, problem: str) -> ConfigError:
        return ConfigError(problem, self.path)

    # -- small readers ---------------------------------------------------------------------
    def child(self, parent: ET.Element, tag: str, where: str) -> ET.Element:
        elem = parent.find(tag)
        if elem is None:
            raise self.error(f"{where}: <{parent.tag}> needs <{tag}>")
        return elem

    def numbers(self, elem: ET.Element, count: int, where: str) -> list[float]:
        if elem.text is None or not elem.text.strip():
            raise self.error(f"{where}: <{elem.tag}> is empty; expected {count} number(s)")
        parts = elem.text.split()
        if len(parts) != count:
            raise self.error(f"{where}: <{elem.tag}> has {len(parts)} value(s) "
                             f"'{elem.text.strip()}', expected {count}")
        try:
            values = [float(p) for p in parts]
        except ValueError as exc:
            raise self.error(f"{where}: <{elem.tag}> '{elem.text.strip()}' is not numeric") from exc
        if not all(math.isfinite(v) for v in values):
            raise self.error(f"{where}: <{elem.tag}> '{elem.text.strip()}' is not finite")
        return values

    def positive(self, elem: ET.Element, count: int, where: str) -> list[float]:
        values = self.numbers(elem, count, where)
        if any(v <= 0 for v in values):
            raise self.error(f"{where}: <{elem.tag}> must be > 0, "
                             f"got '{' '.join(f'{v:g}' for v in values)}'")
        return values

    def pose(self, elem: ET.Element, where: str) -> tuple[Matrix, str | None]:
        """(local 4x4 transform, relative_to or None) of elem's <pose> child."""
        pose = elem.find("pose")
        m = np.eye(4)
        if pose is None:
            return m, None
        relative_to = pose.get("relative_to") or None
        text = (pose.text or "").split()
        if not text:
            return m, relative_to
        if pose.get("rotation_format", "euler_rpy") == "quat_xyzw":
            v = self.numbers(pose, 7, where)
            try:
                m[:3, :3] = _quaternion_matrix(v[3], v[4], v[5], v[6])
            except ValueError as exc:
                raise self.error(f"{where}: <pose> quaternion is zero") from exc
        elif pose.get("rotation_format", "euler_rpy") == "euler_rpy":
            v = self.numbers(pose, 6, where)
            rpy = v[3:6]
            if pose.get("degrees", "false").strip().lower() in ("true", "1"):
                rpy = [math.radians(a) for a in rpy]
            m[:3, :3] = _rpy_matrix(*rpy)
        else:
            raise self.error(f"{where}: unknown <pose rotation_format="
                             f"'{pose.get('rotation_format')}'> (use euler_rpy or quat_xyzw)")
        m[:3, 3] = v[0:3]
        return m, relative_to

    def colour(self, visual: ET.Element, where: str) -> tuple[float, float, float, float]:
        material = visual.find("material")
        if material is None:
            return DEFAULT_RGBA
        for tag in ("diffuse", "ambient"):
            elem = material.find(tag)
            if elem is not None:
                count = 3 if len((elem.text or "").split()) == 3 else 4
                v = self.numbers(elem, count, f"{where} material") + [1.0]
                if any(c < 0 or c > 1 for c in v):
                    raise self.error(f"{where}: <{tag}> colour components must be in 0..1")
                return (v[0], v[1], v[2], v[3])
        return DEFAULT_RGBA

    def geometry(self, elem: ET.Element, where: str) -> tuple[str, tuple[float, ...]]:
        geometry = elem.find("geometry")
        if geometry is None or len(geometry) == 0:
            raise self.error(f"{where}: missing <geometry>")
        shape = geometry[0]
        if shape.tag == "box":
            return "box", tuple(self.positive(self.child(shape, "size", where), 3, where))
        if shape.tag == "cylinder":
            r = self.positive(self.child(shape, "radius", where), 1, where)[0]
            length = self.positive(self.child(shape, "length", where), 1, where)[0]
            return "cylinder", (r, length)
        if shape.tag == "sphere":
            return "sphere", (self.positive(self.child(shape, "radius", where), 1, where)[0],)
        if shape.tag == "plane":
            normal = self.numbers(self.child(shape, "normal", where), 3, where) \
                if shape.find("normal") is not None else [0.0, 0.0, 1.0]
            if abs(normal[0]) > 1e-9 or abs(normal[1]) > 1e-9 or normal[2] <= 0:
                raise self.error(f"{where}: only horizontal planes (normal 0 0 1) are supported")
            size = self.positive(self.child(shape, "size", where), 2, where) \
                if shape.find("size") is not None else [100.0, 100.0]
            return "plane", (size[0], size[1])
        raise self.error(f"{where}: unsupported geometry <{shape.tag}> "
                         f"(the embedded simulator reads {', '.join(GEOMETRY_KINDS)})")

    # -- structure -------------------------------------------------------------------------
    def parse(self, root: ET.Element) -> World:
        if root.tag != "sdf":
            raise self.error(f"root element is <{root.tag}>, expected <sdf>")
        version = root.get("version", "")
        if not version:
            raise self.error("<sdf> has no version attribute (use version=\"1.9\")")
        worlds = root.findall("world")
        if len(worlds) != 1:
            raise self.error(f"expected exactly one <world>, found {len(worlds)}")
        world = worlds[0]
        name = world.get("name") or self.path.stem
        if world.find("include") is not None:
            raise self.error("<include> is not supported by the embedded simulator; "
                             "inline the model")

        # World-level frames and models may be placed relative to each other.
        local: dict[str, tuple[Matrix, str | None]] = {}
        models: dict[str, ET.Element] = {}
        for elem in world:
            if elem.tag not in ("model", "frame"):
                continue
            elem_name = elem.get("name")
            if not elem_name:
                raise self.error(f"a world-level <{elem.tag}> has no name")
            if elem_name in local or elem_name == "world":
                raise self.error(f"duplicate name '{elem_name}' in world '{name}'")
            where = f"{elem.tag} '{elem_name}'"
            pose, rel = self.pose(elem, where)
            if elem.tag == "frame":
                rel = rel or elem.get("attached_to") or None
            local[elem_name] = (pose, rel)
            if elem.tag == "model":
                models[elem_name] = elem

        resolved: dict[str, Matrix] = {}

        def world_pose(frame: str, chain: tuple[str, ...] = ()) -> Matrix:
            if frame in ("world", ""):
                return np.eye(4)
            if frame in resolved:
                return resolved[frame]
            if frame not in local:
                raise self.error(f"pose relative_to '{frame}' names no model or frame in "
                                 f"world '{name}' (in {chain[-1] if chain else frame})")
            if frame in chain:
                raise self.error(f"pose relative_to forms a cycle: {' -> '.join(chain + (frame,))}")
            pose, rel = local[frame]
            parent = world_pose(rel or "world", chain + (frame,))
            resolved[frame] = parent @ pose
            return resolved[frame]

        shapes: list[Shape] = []
        frames: dict[str, Pose2D] = {}
        for elem_name in local:
            m = world_pose(elem_name)
            if elem_name in models:
                shapes += self.model(models[elem_name], m)
            else:
                frames[elem_name] = Pose2D(float(m[0, 3]), float(m[1, 3]), _yaw_of(m))
        if not shapes:
            raise self.error(f"world '{name}' has no models with geometry")
        return World(name=name, path=self.path, shapes=shapes, frames=frames,
                     model_names=list(models))

    def model(self, model: ET.Element, model_pose: Matrix) -> list[Shape]:
        name = model.get("name", "?")
        where = f"model '{name}'"
        static = (model.findtext("static") or "false").strip().lower()
        if static not in ("true", "1"):
            raise self.error(f"{where} is not <static>true</static>; the embedded simulator "
                             "imports static scenery only")
        for tag in ("model", "include"):
            if model.find(tag) is not None:
                raise self.error(f"{where}: nested <{tag}> is not supported; flatten it")
        links = model.findall("link")
        local: dict[str, tuple[Matrix, str | None]] = {}
        for link in links:
            link_name = link.get("name")
            if not link_name:
                raise self.error(f"{where}: a <link> has no name")
            if link_name in local:
                raise self.error(f"{where}: duplicate link name '{link_name}'")
            local[link_name] = self.pose(link, f"{where} link '{link_name}'")
        for frame in model.findall("frame"):
            frame_name = frame.get("name")
            if not frame_name or frame_name in local:
                raise self.error(f"{where}: a <frame> has no name or a duplicate name")
            pose, rel = self.pose(frame, f"{where} frame '{frame_name}'")
            local[frame_name] = (pose, rel or frame.get("attached_to") or None)

        resolved: dict[str, Matrix] = {}

        def in_model(frame: str, chain: tuple[str, ...] = ()) -> Matrix:
            if frame in ("__model__", ""):
                return np.eye(4)
            if frame in resolved:
                return resolved[frame]
            if frame not in local:
                raise self.error(f"{where}: pose relative_to '{frame}' names no link or frame "
                                 "of this model")
            if frame in chain:
                raise self.error(f"{where}: pose relative_to forms a cycle: "
                                 f"{' -> '.join(chain + (frame,))}")
            pose, rel = local[frame]
            resolved[frame] = in_model(rel or "__model__", chain + (frame,)) @ pose
            return resolved[frame]

        shapes: list[Shape] = []
        for link in links:
            link_name = link.get("name", "?")
            link_in_model = in_model(link_name)
            for tag in ("collision", "visual"):
                for item in link.findall(tag):
                    item_name = item.get("name") or tag
                    item_where = f"{where} link '{link_name}' {tag} '{item_name}'"
                    pose, rel = self.pose(item, item_where)
                    base = in_model(rel) if rel else link_in_model
                    kind, size = self.geometry(item, item_where)
                    rgba = self.colour(item, item_where) if tag == "visual" else DEFAULT_RGBA
                    m = model_pose @ base @ pose
                    shapes.append(Shape(model=name, link=link_name, name=item_name, kind=kind,
                                        size=size, transform=_as_tuple(m), rgba=rgba,
                                        collision=(tag == "collision")))
        return shapes
