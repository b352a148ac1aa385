"""Build the MuJoCo model: the SDF world's static scenery + the robot from the URDF.

The robot is read from the expanded xacro (the same file Gazebo uses) with `MjSpec`; MuJoCo
loads URDF robots welded to the world, so the base link gets a free joint here, plus two wheel
velocity actuators, an RGB camera and a lidar site. Sensor parameters (beams, ranges, rates,
image size, field of view) come from the URDF's `<gazebo>` sensor tags, so both simulators
agree.

Geom groups (used for rendering and for the lidar's ray filter):
0 world collision geoms (drawn in their visual colour when a visual has the same shape),
1 world visual-only geoms, 2 movable test obstacles, 3 robot collision geoms, 4 robot visuals.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from passeur.errors import ConfigError
from passeur.sim.sdf_world import Shape, World

WORLD_GROUP = 0
WORLD_VISUAL_GROUP = 1
OBSTACLE_GROUP = 2
ROBOT_GROUP = 3
ROBOT_VISUAL_GROUP = 4
#: The groups a lidar beam can hit: world scenery and test obstacles, never the robot.
LIDAR_GEOMGROUP = np.array([1, 0, 1, 0, 0, 0], dtype=np.uint8)

OBSTACLE_SIZE_M = (0.4, 0.4, 1.0)
OBSTACLE_PARK_Y_M = -100.0  # parked obstacles wait far outside every world


def default_urdf_path() -> Path:
    from passeur.paths import share_path

    return share_path("urdf", "passeur.urdf.xacro")


def expand_xacro(path: Path) -> str:
    """The robot's URDF text (xacro expanded). ConfigError naming the file on failure."""
    if not path.is_file():
        raise ConfigError("robot description not found", path)
    if path.suffix != ".xacro":
        return path.read_text(encoding="utf-8")
    import xacro

    try:
        doc = xacro.process_file(str(path))
    except Exception as exc:
        raise ConfigError(f"xacro failed: {exc}", path) from exc
    text: str = doc.toxml()
    return text


@dataclass(frozen=True)
class RobotDescription:
    """Figures the simulator needs, read from the URDF (and its gz sensor tags)."""

    wheel_radius_m: float
    wheel_separation_m: float
    max_wheel_speed_radps: float
    wheel_effort_nm: float
    base_radius_m: float
    lidar_samples: int
    lidar_min_angle_rad: float
    lidar_max_angle_rad: float
    lidar_min_range_m: float
    lidar_max_range_m: float
    lidar_rate_hz: float
    camera_width: int
    camera_height: int
    camera_hfov_rad: float
    camera_rate_hz: float
    camera_near_m: float
    camera_far_m: float

    @property
    def camera_fovy_deg(self) -> float:
        half = math.atan(math.tan(self.camera_hfov_rad / 2) * self.camera_height / self.camera_width)
        return math.degrees(2 * half)

    @property
    def camera_focal_px(self) -> float:
        return self.camera_width / 2 / math.tan(self.camera_hfov_rad / 2)


def describe_robot(urdf: str, source: Path | str = "urdf") -> RobotDescription:
    try:
        root = ET.fromstring(urdf)
    except ET.ParseError as exc:
        raise ConfigError(f"the expanded URDF is not well-formed XML ({exc})", source) from exc

    def need(elem: ET.Element | None, what: str) -> ET.Element:
        if elem is None:
            raise ConfigError(f"the URDF has no {what}", source)
        return elem

    def number(parent: ET.Element, path: str, what: str) -> float:
        text = need(parent.find(path), what).text
        try:
            return float(text or "")
        except ValueError as exc:
            raise ConfigError(f"{what} '{text}' is not a number", source) from exc

    joints = {j.get("name"): j for j in root.findall("joint")}
    links = {link.get("name"): link for link in root.findall("link")}
    left = need(joints.get("left_wheel_joint"), "joint 'left_wheel_joint'")
    right = need(joints.get("right_wheel_joint"), "joint 'right_wheel_joint'")

    def xyz(joint: ET.Element) -> list[float]:
        return [float(v) for v in need(joint.find("origin"), "wheel joint origin").get(
            "xyz", "0 0 0").split()]

    separation = abs(xyz(left)[1] - xyz(right)[1])
    wheel = need(links.get("left_wheel_link"), "link 'left_wheel_link'")
    radius = float(need(wheel.find("collision/geometry/cylinder"), "wheel cylinder").get("radius", "0"))
    limit = need(left.find("limit"), "wheel joint <limit>")
    base = need(links.get("base_link"), "link 'base_link'")
    base_cyl = base.find("collision/geometry/cylinder")
    base_radius = float(base_cyl.get("radius", "0.225")) if base_cyl is not None else 0.225

    sensors = {s.get("name"): s for s in root.iter("sensor")}
    lidar = need(sensors.get("lidar"), "<sensor name=\"lidar\"> in a <gazebo> tag")
    camera = need(sensors.get("camera"), "<sensor name=\"camera\"> in a <gazebo> tag")
    desc = RobotDescription(
        wheel_radius_m=radius,
        wheel_separation_m=separation,
        max_wheel_speed_radps=float(limit.get("velocity", "10")),
        wheel_effort_nm=float(limit.get("effort", "20")),
        base_radius_m=base_radius,
        lidar_samples=int(number(lidar, "lidar/scan/horizontal/samples", "lidar samples")),
        lidar_min_angle_rad=number(lidar, "lidar/scan/horizontal/min_angle", "lidar min_angle"),
        lidar_max_angle_rad=number(lidar, "lidar/scan/horizontal/max_angle", "lidar max_angle"),
        lidar_min_range_m=number(lidar, "lidar/range/min", "lidar min range"),
        lidar_max_range_m=number(lidar, "lidar/range/max", "lidar max range"),
        lidar_rate_hz=number(lidar, "update_rate", "lidar update_rate"),
        camera_width=int(number(camera, "camera/image/width", "camera width")),
        camera_height=int(number(camera, "camera/image/height", "camera height")),
        camera_hfov_rad=number(camera, "camera/horizontal_fov", "camera horizontal_fov"),
        camera_rate_hz=number(camera, "update_rate", "camera update_rate"),
        camera_near_m=number(camera, "camera/clip/near", "camera near clip"),
        camera_far_m=number(camera, "camera/clip/far", "camera far clip"),
    )
    if desc.wheel_radius_m <= 0 or desc.wheel_separation_m <= 0 or desc.lidar_samples < 1:
        raise ConfigError("wheel radius, wheel separation and lidar samples must be > 0", source)
    return desc


@dataclass
class BuiltModel:
    """The compiled model plus the ids the simulator uses."""

    model: object  # mujoco.MjModel
    robot: RobotDescription
    left_actuator: int
    right_actuator: int
    left_joint_dof: int
    right_joint_dof: int
    base_body: int
    camera: int
    lidar_site: int
    obstacle_mocap: list[int]  # mocap index per obstacle
    robot_geom: np.ndarray  # bool per geom: belongs to the robot
    scenery_geom: np.ndarray  # bool per geom: world obstacle or test obstacle (not the floor)


def _same_shape(a: Shape, b: Shape) -> bool:
    return a.kind == b.kind and np.allclose(a.size, b.size) and np.allclose(a.matrix, b.matrix)


def _mj_size(shape: Shape) -> list[float]:
    if shape.kind == "box":
        return [s / 2 for s in shape.size]
    if shape.kind == "cylinder":
        return [shape.size[0], shape.size[1] / 2, 0.0]
    if shape.kind == "sphere":
        return [shape.size[0], 0.0, 0.0]
    return [shape.size[0] / 2, shape.size[1] / 2, 1.0]  # plane: half sizes, grid spacing


def _mj_type(mujoco: object, kind: str) -> object:
    g = mujoco.mjtGeom  # type: ignore[attr-defined]
    return {"box": g.mjGEOM_BOX, "cylinder": g.mjGEOM_CYLINDER, "sphere": g.mjGEOM_SPHERE,
            "plane": g.mjGEOM_PLANE}[kind]


def build_model(world: World, urdf: str, robot: RobotDescription, obstacles: int = 4) -> BuiltModel:
    """Compile world + robot into an MjModel. ConfigError if MuJoCo refuses it."""
    import mujoco

    # Keep visuals (the camera should see the robot's colours if it ever looks at itself) and
    # the sensor links (fusestatic would merge camera_link/lidar_link into base_link).
    marker = "<mujoco><compiler discardvisual=\"false\" fusestatic=\"false\"/></mujoco>"
    root_end = urdf.find(">", urdf.find("<robot"))
    if root_end < 0:
        raise ConfigError("the URDF has no <robot> element", "urdf")
    try:
        spec = mujoco.MjSpec.from_string(urdf[:root_end + 1] + marker + urdf[root_end + 1:])
    except ValueError as exc:
        raise ConfigError(f"MuJoCo cannot load the robot URDF: {exc}", "urdf") from exc

    spec.option.timestep = 0.002
    # Semi-implicit Euler: implicitfast let the free base run ahead of its wheels while
    # accelerating (0.05 m instead of 0.02 m in 0.2 s at 1 m/s^2).
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_EULER
    spec.visual.global_.offwidth = max(640, robot.camera_width)
    spec.visual.global_.offheight = max(480, robot.camera_height)
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0  # no multisampling: 3x faster on llvmpipe
    # Coarser tessellation (MuJoCo: 4 quads per box face side, 28 slices x 16 stacks per
    # cylinder): a frame costs 3.1 ms instead of 4.4 on llvmpipe, for an image that differs by
    # 0.35/255 on average (flat-shaded boxes under a headlight; a pillar's silhouette).
    spec.visual.quality.numquads = 1
    spec.visual.quality.numslices = 12
    spec.visual.quality.numstacks = 4
    spec.visual.headlight.ambient = [0.45, 0.45, 0.45]
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]

    # --- robot: free base, regrouped geoms, casters without friction -----------------------
    base = spec.body("base_link")
    if base is None:
        raise ConfigError("the URDF has no link 'base_link'", "urdf")
    base.add_freejoint(name="base_free")
    for body in spec.bodies:
        if body.name == "world":
            continue
        for geom in body.geoms:
            if geom.contype == 0 and geom.conaffinity == 0:
                geom.group = ROBOT_VISUAL_GROUP
            else:
                geom.group = ROBOT_GROUP
                if "caster" in body.name:
                    geom.condim = 1  # ball casters roll freely in every direction
                    geom.priority = 1  # ...so their condim wins over the floor's
                else:
                    geom.friction = [1.0, 0.005, 0.0001]
    camera_body = spec.body("camera_link")
    lidar_body = spec.body("lidar_link")
    if camera_body is None or lidar_body is None:
        raise ConfigError("the URDF needs links 'camera_link' and 'lidar_link'", "urdf")
    # MuJoCo cameras look along -z with +y up; camera_link has x forward, z up.
    cam_quat = np.zeros(4)
    mujoco.mju_mat2Quat(cam_quat, np.array([[0, 0, -1], [-1, 0, 0], [0, 1, 0]], dtype=np.float64)
                        .flatten())
    camera_body.add_camera(name="camera", fovy=robot.camera_fovy_deg, quat=cam_quat.tolist())
    lidar_body.add_site(name="lidar", size=[0.01, 0.0, 0.0], group=ROBOT_VISUAL_GROUP)
    for side in ("left", "right"):
        joint = spec.joint(f"{side}_wheel_joint")
        if joint is None:
            raise ConfigError(f"the URDF has no joint '{side}_wheel_joint'", "urdf")
        joint.armature = 0.02  # geared motor's rotor inertia; keeps the velocity loop stable
        act = spec.add_actuator(name=f"{side}_wheel", target=f"{side}_wheel_joint",
                                trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_velocity(kv=20.0)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = [-robot.max_wheel_speed_radps, robot.max_wheel_speed_radps]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-robot.wheel_effort_nm, robot.wheel_effort_nm]

    # --- world scenery: static geoms of the world body ------------------------------------
    wb = spec.worldbody
    visuals = world.visuals()
    used_visuals: set[int] = set()
    for shape in world.collisions():
        twin = next((i for i, v in enumerate(visuals)
                     if i not in used_visuals and v.model == shape.model and v.link == shape.link
                     and _same_shape(v, shape)), None)
        rgba = [0.0, 0.0, 0.0, 0.0]
        if twin is not None:
            used_visuals.add(twin)
            rgba = list(visuals[twin].rgba)
        wb.add_geom(name=f"{shape.model}/{shape.link}/{shape.name}", type=_mj_type(mujoco, shape.kind),
                    size=_mj_size(shape), pos=list(shape.position),
                    quat=list(shape.quaternion_wxyz), rgba=rgba, group=WORLD_GROUP,
                    contype=1, conaffinity=1, friction=[0.8, 0.005, 0.0001])
    for i, shape in enumerate(visuals):
        if i in used_visuals:
            continue
        wb.add_geom(name=f"{shape.model}/{shape.link}/{shape.name}#visual",
                    type=_mj_type(mujoco, shape.kind), size=_mj_size(shape),
                    pos=list(shape.position), quat=list(shape.quaternion_wxyz),
                    rgba=list(shape.rgba), group=WORLD_VISUAL_GROUP, contype=0, conaffinity=0)
    # Indoor ceiling on top of the walls (visual only). Replaces a skybox, which costs more
    # than the rest of the frame on a CPU renderer (llvmpipe); without either, the background
    # above the walls would be black.
    # Self-lit: no light reaches its underside otherwise.
    spec.add_material(name="ceiling", rgba=[0.93, 0.93, 0.90, 1.0], emission=0.45)
    min_x, min_y, max_x, max_y = world.bounds()
    top = max(float(s.world_points()[:, 2].max()) for s in world.obstacles())
    wb.add_geom(name="ceiling#visual", type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[(max_x - min_x) / 2 + 1.0, (max_y - min_y) / 2 + 1.0, 0.05],
                pos=[(min_x + max_x) / 2, (min_y + max_y) / 2, top + 0.05],
                material="ceiling", group=WORLD_VISUAL_GROUP, contype=0, conaffinity=0)
    wb.add_light(name="ceiling", pos=[0, 0, 8], dir=[-0.3, 0.2, -1.0], castshadow=False,
                 diffuse=[0.45, 0.45, 0.45], specular=[0.05, 0.05, 0.05],
                 type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)

    # --- movable test obstacles (mocap boxes parked outside the world) -------------------
    for i in range(obstacles):
        body = wb.add_body(name=f"obstacle_{i}", mocap=True,
                           pos=[0.0, OBSTACLE_PARK_Y_M - 2.0 * i, OBSTACLE_SIZE_M[2] / 2])
        body.add_geom(name=f"obstacle_{i}", type=mujoco.mjtGeom.mjGEOM_BOX,
                      size=[s / 2 for s in OBSTACLE_SIZE_M], rgba=[0.95, 0.55, 0.1, 1.0],
                      group=OBSTACLE_GROUP, contype=1, conaffinity=1)

    try:
        model = spec.compile()
    except ValueError as exc:
        raise ConfigError(f"MuJoCo cannot compile world '{world.name}' with the robot: {exc}",
                          world.path) from exc

    # Clip planes are relative to the model extent, which the parked obstacles inflate.
    model.vis.map.znear = robot.camera_near_m / model.stat.extent
    model.vis.map.zfar = robot.camera_far_m / model.stat.extent

    def jid(name: str) -> int:
        return int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name))

    def aid(name: str) -> int:
        return int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name))

    base_id = int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "base_link"))
    robot_bodies = {b for b in range(model.nbody) if model.body_rootid[b] == base_id}
    robot_geom = np.array([int(model.geom_bodyid[g]) in robot_bodies for g in range(model.ngeom)])
    scenery = np.array([
        (not robot_geom[g]) and model.geom_type[g] != mujoco.mjtGeom.mjGEOM_PLANE
        and model.geom_contype[g] != 0 for g in range(model.ngeom)])
    mocap = [int(model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY,
                                                      f"obstacle_{i}")]) for i in range(obstacles)]
    return BuiltModel(
        model=model, robot=robot,
        left_actuator=aid("left_wheel"), right_actuator=aid("right_wheel"),
        left_joint_dof=int(model.jnt_dofadr[jid("left_wheel_joint")]),
        right_joint_dof=int(model.jnt_dofadr[jid("right_wheel_joint")]),
        base_body=base_id,
        camera=int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "camera")),
        lidar_site=int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "lidar")),
        obstacle_mocap=mocap, robot_geom=robot_geom, scenery_geom=scenery,
    )
