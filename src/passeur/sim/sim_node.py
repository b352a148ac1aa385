"""`sim`: the embedded MuJoCo simulator as a ROS 2 node.

Publishes `/clock`, `odom`, `scan`, `camera/image_raw`, `camera/camera_info` (and tf/tf_static
when tf2_msgs is importable); subscribes `cmd_vel`. The simulation runs in its own thread
(`SimLoop`), never in executor callbacks: the camera's OpenGL context lives in that thread.

Odometry is the base's ground-truth pose and twist. With `odom_origin: map` (default) the odom
frame coincides with the world/map frame, so map -> odom is the identity in simulation; with
`start`, odom starts at zero at the robot's start pose, as on a real robot or in Gazebo.
Either way the node publishes that map -> odom as a static transform (with TF), since in
simulation nothing else localises the robot; `publish_map_to_odom: false` leaves it to a
localiser (AMCL, slam_toolbox) instead. It is also on `sim/odom_origin` (latched), where a
navigator in another process (`split_processes:=true`, two `passeur sim --nodes`) finds it.

One simulator per ROS domain: another publisher of `/clock` (a second `passeur sim`, Gazebo's
bridge) makes sim time jump back and forth for every node. The node looks for one every
CLOCK_CHECK_PERIOD_S and logs an error saying how to fix it (clock_check.py), again every
CLOCK_CONFLICT_REPEAT_S while it lasts. It keeps running: it cannot tell which clock is the
intruder, and stopping would leave a robot stack that was working without its simulator.
"""

from __future__ import annotations

import array
import math
import time
from typing import Any

import numpy as np
import numpy.typing as npt
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseArray, PoseStamped, Twist
from nav_msgs.msg import Odometry
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, LaserScan

from passeur.errors import ConfigError
from passeur.ros import qos
from passeur.ros.geometry import Pose2D, quaternion_to_yaw, yaw_to_quaternion
from passeur.ros.params import declare
from passeur.sim import clock_check
from passeur.sim.simulator import LoopRates, SimLoop, Simulator, Twist2D
from passeur.switch_interval import SWITCH_INTERVAL

MAP_FRAME = "map"
ODOM_FRAME = "odom"
BASE_FRAME = "base_link"
LIDAR_FRAME = "lidar_link"
CAMERA_FRAME = "camera_link"
CAMERA_OPTICAL_FRAME = "camera_optical_link"

#: The one absolute name: rclpy's TimeSource (use_sim_time) always subscribes to `/clock`,
#: whatever the node's namespace, so a namespaced `clock` would leave every node at time 0.
#: One simulator is one clock, shared by all the robots it simulates (ROS and Gazebo convention).
CLOCK_TOPIC = "/clock"
#: The simulator's interface; Gazebo's bridge (config/gz_bridge.yaml) must offer the same.
PUBLISHED_TOPICS = (CLOCK_TOPIC, "odom", "scan", "camera/image_raw", "camera/camera_info")
SUBSCRIBED_TOPICS = ("cmd_vel",)
#: Test/demo hook, not part of the robot interface (Gazebo has no equivalent).
OBSTACLES_TOPIC = "sim/obstacles"
#: The map pose of the odom frame (PoseStamped, frame map, latched): what a navigator in
#: another process takes as its `odom_origin` (in one process, bringup passes it directly).
#: Without TF (tf2 is not on PyPI), the one way to hand map -> odom across processes.
ODOM_ORIGIN_TOPIC = "sim/odom_origin"
#: Only with a full ROS install (tf2_msgs importable): odom -> base_link on `tf`; map -> odom
#: and the sensor frames on `tf_static`.
TF_TOPICS = ("tf", "tf_static")
#: How often (wall time) the simulator looks for another publisher of /clock (clock_check):
#: the first look also waits this long for discovery. A graph query, not a message.
CLOCK_CHECK_PERIOD_S = 2.0
#: While another clock stays on the domain, the error is logged again this often.
CLOCK_CONFLICT_REPEAT_S = 30.0


def stamp(t_s: float) -> Time:
    sec = math.floor(t_s)
    nanosec = min(int(round((t_s - sec) * 1e9)), 999_999_999)
    return Time(sec=int(sec), nanosec=nanosec)


class SimNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim", **kwargs)
        self._started = False
        self._closed = False
        self._switch_token: int | None = None
        self.loop: SimLoop | None = None
        try:
            self._setup()
        except BaseException:
            self._closed = True
            super().destroy_node()  # rclpy would otherwise destroy it again at shutdown
            raise

    def _setup(self) -> None:
        world = declare(self, "world", "library",
                        "world name (sim/worlds/<name>.sdf) or path to an SDF file")
        rtf = declare(self, "real_time_factor", 1.0,
                      "simulated seconds per wall second; 0 = as fast as possible", min_value=0.0)
        seed = declare(self, "seed", 0, "random seed (lidar noise)", min_value=0)
        camera_hz = declare(self, "camera_rate_hz", 15.0, "camera rate in sim time; 0 = off",
                            min_value=0.0, max_value=60.0)
        scan_hz = declare(self, "scan_rate_hz", 10.0, "lidar rate in sim time",
                          min_value=0.1, max_value=100.0)
        odom_hz = declare(self, "odom_rate_hz", 50.0, "odometry rate in sim time",
                          min_value=1.0, max_value=500.0)
        clock_hz = declare(self, "clock_rate_hz", 100.0, "clock publication rate in sim time",
                           min_value=10.0, max_value=500.0)
        timeout = declare(self, "cmd_vel_timeout_s", 0.5,
                          "stop the base when cmd_vel is silent this long (wall time; below "
                          "real time, this long divided by real_time_factor); 0 = never",
                          min_value=0.0)
        noise = declare(self, "scan_noise_std_m", 0.005, "lidar range noise (std dev)",
                        min_value=0.0, max_value=1.0)
        obstacles = declare(self, "obstacles", 4, "movable test obstacles (parked outside)",
                            min_value=0, max_value=32)
        max_lead = declare(self, "max_lead_s", 0.05,
                           "at real_time_factor 0: how far sim time may run ahead of what the "
                           "executor has delivered (bounds control latency); 0 = no limit",
                           min_value=0.0)
        urdf = declare(self, "urdf", "", "robot xacro/URDF path; empty = urdf/passeur.urdf.xacro")
        self._switch_interval_ms = declare(
            self, "gil_switch_interval_ms", 1.0,
            "Python's thread switch interval for this process while the simulator runs (ms; "
            "Python's default is 5; the shortest any node asks for applies; 0 = leave it): how "
            "long a thread coming back from C code (rendering, DDS) may wait for the GIL held "
            "by the busy physics thread",
            min_value=0.0, max_value=100.0)
        render_process = bool(declare(
            self, "render_process", True,
            "render camera frames in a child process with its own GIL (true: sim_rtf with the "
            "camera 12-17 % faster on 2 cores; the child starts with the loop when the camera "
            "rate is above 0) or in a thread of this process (false; same images)"))
        self._odom_origin = declare(self, "odom_origin", "map",
                                    "'map': odom frame = world frame; 'start': odom starts at 0")
        if self._odom_origin not in ("map", "start"):
            raise ConfigError(f"sim: parameter odom_origin must be 'map' or 'start', "
                              f"got '{self._odom_origin}'")
        self._publish_map_to_odom = bool(declare(
            self, "publish_map_to_odom", True,
            "with TF (tf2_msgs importable): publish the static map -> odom of odom_origin; "
            "false when a localiser (AMCL, slam_toolbox) publishes map -> odom"))
        from pathlib import Path

        self.sim = Simulator(world, urdf_path=Path(urdf) if urdf else None, seed=seed,
                             scan_noise_std_m=noise, obstacles=obstacles)
        self.start_pose = self.sim.world.start_pose
        r = self.sim.robot

        self._clock_pub = self.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(depth=10))
        self._odom_pub = self.create_publisher(Odometry, "odom", qos.STATUS)
        self._scan_pub = self.create_publisher(LaserScan, "scan", qos.SENSOR)
        self._image_pub = self._info_pub = None
        # The render thread's staging array for image data (see _publish_image).
        self._image_data = array.array("B")
        self._image_pixels: npt.NDArray[np.uint8] | None = None
        if camera_hz > 0:
            self._image_pub = self.create_publisher(Image, "camera/image_raw", qos.SENSOR)
            self._info_pub = self.create_publisher(CameraInfo, "camera/camera_info", qos.SENSOR)
        self.create_subscription(Twist, "cmd_vel", self._on_cmd_vel, qos.COMMAND)
        self.create_subscription(PoseArray, OBSTACLES_TOPIC, self._on_obstacles, qos.COMMAND)
        # Our own clock, as delivered by the executor: how far behind the graph is.
        self._clock_seen: float | None = None
        # In-process nodes on sim time (bringup registers them): each has its own executor,
        # so our own subscription alone says nothing about how far behind *they* are.
        self._consumer_clocks: list[Any] = []

        self._tf_pub: Any = None
        self._setup_tf()
        self._odom_origin_pub = self.create_publisher(PoseStamped, ODOM_ORIGIN_TOPIC,
                                                      qos.LATCHED)
        self._odom_origin_pub.publish(self._odom_origin_msg())
        # Another clock on the domain (clock_check): on the wall clock, since sim time is
        # what may be broken.
        self._clock_others: list[str] = []
        self._clock_conflict_logged_s = -math.inf
        self.create_timer(CLOCK_CHECK_PERIOD_S, self._check_clock_publishers,
                          clock=RosClock(clock_type=ClockType.STEADY_TIME))

        self._scan_template = LaserScan(
            angle_min=r.lidar_min_angle_rad,
            angle_max=r.lidar_min_angle_rad + self.sim.scan_angle_increment_rad * (r.lidar_samples - 1),
            angle_increment=self.sim.scan_angle_increment_rad, time_increment=0.0,
            scan_time=1.0 / scan_hz, range_min=r.lidar_min_range_m, range_max=r.lidar_max_range_m)
        self._scan_template.header.frame_id = LIDAR_FRAME
        self._camera_info = self._make_camera_info()
        self.loop = SimLoop(
            self.sim, real_time_factor=rtf,
            rates=LoopRates(clock_hz=clock_hz, odom_hz=odom_hz, scan_hz=scan_hz,
                            camera_hz=camera_hz),
            cmd_timeout_s=timeout, on_clock=self._publish_clock, on_odom=self._publish_odom,
            on_scan=self._publish_scan, on_image=self._publish_image if camera_hz > 0 else None,
            camera_wanted=self._camera_wanted,
            consumer_time=self._consumers_time if max_lead > 0 else None,
            max_lead_s=max_lead, render_process=render_process)
        self.get_logger().info(
            f"world '{self.sim.world.name}' ({self.sim.world.path}), start "
            f"({self.start_pose.x_m:.2f}, {self.start_pose.y_m:.2f}, {self.start_pose.yaw_rad:.2f}),"
            f" rtf {'max' if rtf == 0 else rtf}, camera {camera_hz:g} Hz, scan {scan_hz:g} Hz")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the simulation thread (bringup calls this once every node exists)."""
        if self._started or self._closed or self.loop is None:
            return
        self._started = True
        if not self._consumer_clocks:
            # Nobody else on sim time in this process: our own subscription is the measure of
            # what the executor delivers. With consumers, their clocks are (one callback
            # less per clock tick: at --rtf max the executors' work bounds the speed).
            self.create_subscription(Clock, CLOCK_TOPIC, self._on_own_clock, qos.SENSOR)
        if self._switch_interval_ms > 0:
            # Process-wide. The physics thread holds the GIL through its MuJoCo calls
            # (direct_calls) and so runs Python almost without a break; any other thread
            # waits for a forced switch to take the GIL back after a C call.
            self._switch_token = SWITCH_INTERVAL.take(self._switch_interval_ms / 1000.0)
        self.loop.start()

    def close(self) -> None:
        """Stop the base and the simulation thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.loop is not None:
            self.loop.stop()
        if self._switch_token is not None:
            SWITCH_INTERVAL.release(self._switch_token)
            self._switch_token = None

    def destroy_node(self) -> None:
        if self.loop is None:
            return  # construction failed and already destroyed the node
        self.close()
        super().destroy_node()

    def failure(self) -> str | None:
        """Why the simulation stopped by itself (its loop thread failed), else None: the
        clock, odometry and scans have stopped, so every node on sim time is frozen."""
        error = self.loop.error if self.loop is not None else None
        return None if error is None else f"the simulator stopped: {error}"

    def add_time_consumer(self, clock: Any) -> None:
        """Hold sim time back for another node's clock too (an rclpy ROS clock on sim time).

        At real_time_factor 0 the loop never runs more than max_lead_s ahead of the slowest
        of these clocks (with none registered by start(), of our own `/clock` subscription): a node whose executor thread
        is starved sees its commands applied with a bounded sim-time latency.
        """
        self._consumer_clocks.append(clock)

    def _consumers_time(self) -> float | None:
        """The sim time every registered consumer has caught up with (None: nothing yet)."""
        seen = self._clock_seen
        for clock in self._consumer_clocks:
            ns = clock.now().nanoseconds
            if ns > 0:  # 0: no /clock received yet; do not hold the start back for it
                seen = ns * 1e-9 if seen is None else min(seen, ns * 1e-9)
        return seen

    def clock_conflict(self) -> str | None:
        """Why sim time is unreliable (another publisher of /clock on the domain, seen at the
        last check), or None."""
        others = self._clock_others
        if not others:
            return None
        return clock_check.conflict_message(CLOCK_TOPIC, others, self.context.get_domain_id())

    def _check_clock_publishers(self) -> None:
        if self._closed:
            return
        own = clock_check.full_name(self.get_namespace(), self.get_name())
        others: list[str] = []
        if self.count_publishers(CLOCK_TOPIC) > 1:
            others = clock_check.other_publishers(
                (clock_check.full_name(i.node_namespace, i.node_name)
                 for i in self.get_publishers_info_by_topic(CLOCK_TOPIC)), own)
        previous, self._clock_others = self._clock_others, others
        now = time.monotonic()
        if others and (others != previous
                       or now - self._clock_conflict_logged_s >= CLOCK_CONFLICT_REPEAT_S):
            self._clock_conflict_logged_s = now
            self.get_logger().error(self.clock_conflict() or "")
        elif previous and not others:
            self.get_logger().info(f"{CLOCK_TOPIC}: this simulator is its only publisher again")

    # -- test and tooling API -----------------------------------------------------------------
    def ground_truth_pose(self) -> Pose2D:
        """Where the robot really is, in the world (map) frame."""
        return self.sim.pose()

    def ground_truth_twist(self) -> Twist2D:
        return self.sim.twist()

    def sim_time_s(self) -> float:
        return self.sim.time_s

    def robot_in_contact(self) -> bool:
        """True if the robot touches a wall, furniture or test obstacle now."""
        return self.sim.robot_in_contact()

    def robot_contact_steps(self) -> int:
        """Physics steps (2 ms each) so far during which the robot touched the scenery."""
        return self.sim.contact_steps()

    def place_obstacle(self, index: int, x_m: float, y_m: float, yaw_rad: float = 0.0) -> None:
        """Drop movable box `index` (0.4 x 0.4 x 1.0 m) at (x, y) in the world frame."""
        self.sim.place_obstacle(index, x_m, y_m, yaw_rad)

    def park_obstacle(self, index: int) -> None:
        self.sim.park_obstacle(index)

    # -- ROS side ----------------------------------------------------------------------------
    def _on_cmd_vel(self, msg: Twist) -> None:
        if self._closed or self.loop is None:
            return
        self.loop.command(float(msg.linear.x), float(msg.angular.z))

    def _on_own_clock(self, msg: Clock) -> None:
        self._clock_seen = msg.clock.sec + msg.clock.nanosec * 1e-9

    def _on_obstacles(self, msg: PoseArray) -> None:
        """Pose i (world frame) places test obstacle i; obstacles not listed are parked."""
        count = self.sim.obstacle_count
        if len(msg.poses) > count:
            self.get_logger().warning(f"{OBSTACLES_TOPIC}: {len(msg.poses)} poses but only "
                                      f"{count} obstacles (parameter 'obstacles'); extra ignored")
        for i in range(count):
            if i < len(msg.poses):
                p = msg.poses[i]
                q = p.orientation
                yaw = quaternion_to_yaw(q.x, q.y, q.z, q.w) if (q.x, q.y, q.z, q.w) != (
                    0.0, 0.0, 0.0, 0.0) else 0.0
                try:
                    self.sim.place_obstacle(i, float(p.position.x), float(p.position.y), yaw)
                except ValueError as exc:
                    self.get_logger().warning(f"{OBSTACLES_TOPIC}: {exc}; left where it was")
            else:
                self.sim.park_obstacle(i)

    def _publish_clock(self, t: float) -> None:
        self._clock_pub.publish(Clock(clock=stamp(t)))

    def _odom_pose(self, pose: Pose2D) -> Pose2D:
        if self._odom_origin == "map":
            return pose
        return self.start_pose.inverse().compose(pose)

    def _publish_odom(self, t: float, pose: Pose2D, twist: Twist2D) -> None:
        p = self._odom_pose(pose)
        msg = Odometry()
        msg.header.stamp = stamp(t)
        msg.header.frame_id = ODOM_FRAME
        msg.child_frame_id = BASE_FRAME
        msg.pose.pose.position.x = p.x_m
        msg.pose.pose.position.y = p.y_m
        qx, qy, qz, qw = yaw_to_quaternion(p.yaw_rad)
        msg.pose.pose.orientation.x, msg.pose.pose.orientation.y = qx, qy
        msg.pose.pose.orientation.z, msg.pose.pose.orientation.w = qz, qw
        msg.twist.twist.linear.x = twist.vx_mps
        msg.twist.twist.linear.y = twist.vy_mps
        msg.twist.twist.angular.z = twist.wz_radps
        cov = [0.0] * 36
        for i, v in ((0, 1e-4), (7, 1e-4), (14, 1e6), (21, 1e6), (28, 1e6), (35, 1e-3)):
            cov[i] = v
        msg.pose.covariance = cov
        msg.twist.covariance = cov
        self._odom_pub.publish(msg)
        if self._tf_pub is not None:
            self._publish_tf(msg)

    def _publish_scan(self, t: float, ranges: npt.NDArray[np.float32]) -> None:
        msg = self._scan_template
        msg.header.stamp = stamp(t)
        msg.ranges = array.array("f", ranges.tobytes())
        self._scan_pub.publish(msg)

    def _camera_wanted(self) -> bool:
        """Render only for subscribers (rendering costs more than all the physics)."""
        if self._image_pub is None or self._info_pub is None:
            return False
        return (self._image_pub.get_subscription_count() > 0
                or self._info_pub.get_subscription_count() > 0)

    def _publish_image(self, t: float, rgb: npt.NDArray[np.uint8]) -> None:
        """Render thread. `rgb` is a view of the camera's buffer (rows may run backwards in
        memory): the one copy a frame costs is this one, into the message's array."""
        if self._image_pub is None or self._info_pub is None:
            return
        height, width = int(rgb.shape[0]), int(rgb.shape[1])
        if self._image_pixels is None or self._image_pixels.shape != rgb.shape:
            self._image_data = array.array("B", bytes(height * width * 3))
            self._image_pixels = np.frombuffer(self._image_data, dtype=np.uint8).reshape(
                height, width, 3)
        np.copyto(self._image_pixels, rgb)
        msg = Image()
        msg.header.stamp = stamp(t)
        msg.header.frame_id = CAMERA_OPTICAL_FRAME
        msg.height, msg.width = height, width
        msg.encoding = "rgb8"
        msg.is_bigendian = 0
        msg.step = width * 3
        # The setter keeps this very array (no copy), and the next frame overwrites it: safe
        # because publish() has converted the message to C before it returns, and nobody
        # keeps `msg`. Do not cache it.
        msg.data = self._image_data
        self._image_pub.publish(msg)
        self._camera_info.header.stamp = msg.header.stamp
        self._info_pub.publish(self._camera_info)

    def _make_camera_info(self) -> CameraInfo:
        r = self.sim.robot
        f = r.camera_focal_px
        cx, cy = (r.camera_width - 1) / 2.0, (r.camera_height - 1) / 2.0
        info = CameraInfo()
        info.header.frame_id = CAMERA_OPTICAL_FRAME
        info.width, info.height = r.camera_width, r.camera_height
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    # -- TF (only with a full ROS install: tf2_msgs is not on PyPI) ---------------------------
    def _setup_tf(self) -> None:
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError:
            return
        from geometry_msgs.msg import TransformStamped

        self._tf_pub = self.create_publisher(TFMessage, "tf", QoSProfile(depth=100))
        static_pub = self.create_publisher(TFMessage, "tf_static", qos.LATCHED)
        statics = []
        for parent, child, xyz, quat in self._static_frames():
            t = TransformStamped()
            t.header.frame_id = parent
            t.child_frame_id = child
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = xyz
            (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
             t.transform.rotation.w) = quat
            statics.append(t)
        static_pub.publish(TFMessage(transforms=statics))
        self._tf_message_type = TFMessage
        self._transform_type = TransformStamped

    def odom_origin_pose(self) -> Pose2D:
        """Where the odom frame is in the map (world) frame: map -> odom."""
        return Pose2D(0.0, 0.0, 0.0) if self._odom_origin == "map" else self.start_pose

    def _odom_origin_msg(self) -> PoseStamped:
        origin = self.odom_origin_pose()
        msg = PoseStamped()
        msg.header.frame_id = MAP_FRAME
        msg.pose.position.x, msg.pose.position.y = origin.x_m, origin.y_m
        qx, qy, qz, qw = yaw_to_quaternion(origin.yaw_rad)
        msg.pose.orientation.x, msg.pose.orientation.y = qx, qy
        msg.pose.orientation.z, msg.pose.orientation.w = qz, qw
        return msg

    def _static_frames(self) -> list[tuple[str, str, tuple[float, float, float],
                                           tuple[float, float, float, float]]]:
        """map -> odom, and the sensor frames from the compiled model (the URDF's fixed
        joints)."""
        import mujoco

        m = self.sim.model
        out = []
        if self._publish_map_to_odom:
            origin = self.odom_origin_pose()
            out.append((MAP_FRAME, ODOM_FRAME, (origin.x_m, origin.y_m, 0.0),
                        yaw_to_quaternion(origin.yaw_rad)))
        for child, parent in ((LIDAR_FRAME, BASE_FRAME), (CAMERA_FRAME, BASE_FRAME)):
            body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, child)
            pos = tuple(float(v) for v in m.body_pos[body])
            w, x, y, z = (float(v) for v in m.body_quat[body])
            out.append((parent, child, (pos[0], pos[1], pos[2]), (x, y, z, w)))
        # REP-103 optical frame: z forward, x right, y down.
        out.append((CAMERA_FRAME, CAMERA_OPTICAL_FRAME, (0.0, 0.0, 0.0), (-0.5, 0.5, -0.5, 0.5)))
        return out

    def _publish_tf(self, odom: Odometry) -> None:
        t = self._transform_type()
        t.header = odom.header
        t.child_frame_id = odom.child_frame_id
        t.transform.translation.x = odom.pose.pose.position.x
        t.transform.translation.y = odom.pose.pose.position.y
        t.transform.rotation = odom.pose.pose.orientation
        self._tf_pub.publish(self._tf_message_type(transforms=[t]))
