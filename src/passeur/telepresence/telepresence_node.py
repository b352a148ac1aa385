"""The telepresence node: hosts the web server and turns pilot commands into ROS messages.

Publishes `cmd_vel/teleop` (hold-to-drive, 300 ms watchdog on a steady clock, so sim time
does not matter), `goal_place`, `goal_point` (`goal_pose` when nothing listens there: Nav2),
`navigation/cancel`, `estop`; calls `estop/set`.
Each pilot goal carries a request_id of its own (goal_place / goal_point JSON), echoed by the
navigator in navigation/status: the pilot's goal is known by it (pilot_goal.py), never
guessed, so a staff goal or a patrol's sent at about the same time is not taken for it. The
goto's ack gives the page that request_id, and the status's `pilot_goal` what became of it.
`telepresence/pilot_session` (Bool, latched): true while a visitor's pilot session is live,
from the code's redemption until it ends (left, expired, ended by staff), connected or not
(a reload keeps it); the patrol node holds scheduled routes back meanwhile.
Subscribes to the camera (video for every viewer), `odom`, `map`, `estop/state`,
`navigation/status`, `patrol/status` and `safety/status` (status for the pages).

Poses on the map (the pages' marker, click-to-go, the heading of a point goal) are in the map
frame: the navigator's `pose` in navigation/status gives the odom -> map offset (see
robot_status.py); odometry alone is used, and reported as such, only without a navigator.

Threads: driving commands arrive on the web server's loop, the watchdog ticks in its own
thread; `_drive_lock` guards what both touch (`_publishing`, `_pilot`); `_lock` guards the
ROS state and `_pilot_goal` (taken inside `_drive_lock`, never the other way round).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import InvalidHandle
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Bool, Empty, String
from std_srvs.srv import SetBool

from passeur.ros import qos
from passeur.ros.geometry import Pose2D, quaternion_to_yaw, yaw_to_quaternion
from passeur.ros.params import declare
from passeur.switch_interval import SWITCH_INTERVAL
from passeur.telepresence.access import MIN_CODE_WINDOW_S, AccessManager, AccessPolicy, Session
from passeur.telepresence.audio import make_audio
from passeur.telepresence.exceptions import ProjectionError, TelepresenceConfigError
from passeur.telepresence.floor_projection import CameraIntrinsics, CameraMount, pixel_to_map
from passeur.telepresence.messages import (
    Command,
    Drive,
    GotoPixel,
    GotoPlace,
    GotoPoint,
    Look,
    SpeedLevel,
    SpeedLimits,
    Stop,
)
from passeur.telepresence.pilot_goal import PilotGoal, new_request_id
from passeur.telepresence.priority import set_thread_nice
from passeur.telepresence.robot_status import (
    MAP,
    nav_reason_code,
    odom_in_map,
    parse_pose,
    patrol_reason_codes,
    robot_in_map,
)
from passeur.telepresence.server import ServerOptions, WebServer
from passeur.telepresence.teleop import ZERO, TeleopState, Velocity
from passeur.telepresence.video import CameraSource
from passeur.telepresence.web_feature import WebFeature

#: Status topics may come from best-effort or reliable publishers: best effort matches both.
_ANY_STATUS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
#: What publishing raises once the publisher or the context is gone (shutdown).
_PUBLISH_GONE = (InvalidHandle, _rclpy.RCLError)
#: patrol/status states of a running patrol (navigator_node.PATROL_ACTIVE; this node does
#: not import the navigation package).
PATROL_RUNNING = ("navigating", "announcing", "dwelling", "waiting_retry")
#: A pilot session's start (a code redeemed over HTTP) is noticed within this time; its end
#: at once (the session-end listener).
PILOT_SESSION_CHECK_PERIOD_S = 1.0
#: Why a drive or look command is refused around an emergency stop (TeleopState.refusal()):
#: its release never sets the robot moving by itself, a held or latched drive included.
TELEOP_REFUSALS = {
    "estop": "the emergency stop is on: the robot cannot move",
    "let_go_first": "the emergency stop was released: let go of the control, then press it "
                    "again",
}


class TelepresenceNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("telepresence", **kwargs)
        p = lambda *a, **k: declare(self, *a, **k)  # noqa: E731 - local shorthand
        self.http_host = p("http_host", "127.0.0.1", "address the web server listens on")
        self.http_port = p("http_port", 8080, "web server TCP port (0 = any free port)",
                           min_value=0, max_value=65535)
        tls_cert = p("tls_cert", "", "TLS certificate (PEM) for https; browsers need https "
                     "for the microphone except on localhost")
        tls_key = p("tls_key", "", "TLS private key (PEM)")
        ice = p("ice_host_addresses", "", "comma-separated IPs ICE may offer (e.g. the robot's "
                "Wi-Fi address; 127.0.0.1 for tests); empty = every interface")
        allowed_hosts = p("allowed_hosts", "", "comma-separated host names the web server "
                          "answers to besides IP addresses, localhost, this machine's name and "
                          "<name>.local (e.g. the robot's DNS name, a reverse proxy's); other "
                          "names get 403, against DNS rebinding; '*' = any name (unsafe: pages "
                          "of other sites could then act on the robot)")
        staff_hash = p("staff_password_hash", "", "scrypt hash from `passeur staff-password`; "
                       "empty disables the staff page")
        code_window = p("pilot_code_window_s", 900.0, "default validity of a new access code",
                        min_value=MIN_CODE_WINDOW_S, max_value=86400.0)
        pilot_session = p("pilot_session_s", 900.0, "pilot session length (extendable)",
                          min_value=1.0, max_value=86400.0)
        pilot_extend = p("pilot_extend_s", 600.0, "time one 'extend' adds to a pilot session",
                         min_value=1.0, max_value=86400.0)
        pilot_extensions = p("pilot_max_extensions", 20, "most extensions of one pilot session",
                             min_value=0, max_value=1000)
        spectator_session = p("spectator_session_s", 3600.0, "spectator session length "
                              "(extendable)", min_value=1.0, max_value=86400.0)
        spectator_extend = p("spectator_extend_s", 1800.0, "time one 'extend' adds to a "
                             "spectator session", min_value=1.0, max_value=86400.0)
        spectator_extensions = p("spectator_max_extensions", 8, "most extensions of one "
                                 "spectator session", min_value=0, max_value=1000)
        staff_session = p("staff_session_s", 28800.0, "staff session length (extendable)",
                          min_value=1.0, max_value=7 * 86400.0)
        staff_extend = p("staff_extend_s", 3600.0, "time one 'extend' adds to a staff session",
                         min_value=1.0, max_value=86400.0)
        staff_extensions = p("staff_max_extensions", 8, "most extensions of one staff session",
                             min_value=0, max_value=1000)
        failure_window = p("failure_window_s", 600.0, "failed attempts are counted over this "
                           "window", min_value=1.0, max_value=86400.0)
        code_failures = p("code_max_failures", 5, "wrong codes from one address before it is "
                          "locked out", min_value=1, max_value=1000)
        code_lockout = p("code_lockout_s", 300.0, "lockout of an address after too many wrong "
                         "codes", min_value=1.0, max_value=86400.0)
        code_global = p("code_global_max_failures", 50, "wrong codes from all addresses in the "
                        "window before every code is refused until the window moves on",
                        min_value=1, max_value=100000)
        staff_failures = p("staff_max_failures", 5, "wrong staff passwords from one address "
                           "before it is locked out", min_value=1, max_value=1000)
        staff_lockout = p("staff_lockout_s", 300.0, "lockout of an address after too many "
                          "wrong staff passwords", min_value=1.0, max_value=86400.0)
        staff_global = p("staff_global_max_failures", 20, "wrong staff passwords from all "
                         "addresses in the window before logins are throttled (never locked)",
                         min_value=1, max_value=100000)
        staff_interval = p("staff_global_interval_s", 3.0, "when throttled: one staff login "
                           "attempt per this many seconds, robot-wide", min_value=0.1,
                           max_value=600.0)
        self.watchdog_s = p("watchdog_s", 0.3, "stop when no drive command arrives for this "
                            "long", min_value=0.05, max_value=2.0)
        rate = p("teleop_rate_hz", 50.0, "watchdog check / republish rate",
                 min_value=5.0, max_value=200.0)
        lin_levels = p("speed_levels_linear_mps", [0.15, 0.3, 0.5],
                       "forward speed of each speed level (3 or more)")
        ang_levels = p("speed_levels_angular_rps", [0.35, 0.6, 0.9],
                       "turn speed of each speed level")
        max_reverse = p("max_reverse_mps", 0.2, "largest reverse speed", min_value=0.0,
                        max_value=2.0)
        look_step = p("look_step_deg", 30.0, "rotation of one look-around step",
                      min_value=5.0, max_value=180.0)
        nudge_ms = p("nudge_ms", 600, "a drive button activated by a bare click (screen reader, "
                     "dwell click) drives this long, then stops", min_value=100, max_value=2000)
        warning_s = p("session_warning_s", 120.0, "pages warn (and offer to extend) this long "
                      "before a session ends", min_value=10.0, max_value=3600.0)
        codec = p("video_codec", "VP8", "WebRTC video codec: VP8 or H264")
        self.frame_stamp = p("frame_stamp", False, "draw a frame counter in the video corner "
                             "(latency benchmark)")
        mic = p("audio_mic", "auto", "robot microphone: auto, device, silence or a WAV file")
        speaker = p("audio_speaker", "auto", "robot speaker: auto, device, none or a WAV file")
        max_viewers = p("max_viewers", 12, "most simultaneous video connections (one is kept "
                        "for the pilot and one for staff)", min_value=3, max_value=64)
        max_spectators = p("max_spectators", 8, "most simultaneous spectator connections "
                           "(also at most max_viewers - 2)", min_value=0, max_value=64)
        thread_nice = p("web_thread_nice", -5, "niceness of the web server's threads (driving "
                        "commands, video and audio encoding) and of the teleop watchdog; negative = ahead of the rest of "
                        "the stack, which measurably shortens the command latency tail on a "
                        "busy robot; needs root or CAP_SYS_NICE (else a warning and 0)",
                        min_value=-20, max_value=19)
        rt_priority = p("web_thread_rt_priority", 10, "SCHED_RR priority (1-99) of the web "
                        "server's loop thread alone, 0 = off; shortens the command latency "
                        "tail. It stays real-time only while it uses at most half a core over "
                        "each second (else normal priority for 10 s), so a flood cannot take a "
                        "core from the robot; needs root or CAP_SYS_NICE (else normal priority, "
                        "said once in the log)", min_value=0, max_value=99)
        self._switch_interval_ms = float(p(
            "gil_switch_interval_ms", 1.0, "Python's thread switch interval for this process "
            "while the server runs (ms; Python's default is 5; the shortest any node asks for "
            "applies; 0 = leave it): how long the web server's thread may wait for the GIL "
            "held by another busy thread (camera frames, other nodes) before it handles a "
            "driving command", min_value=0.0, max_value=100.0))
        self._switch_token: int | None = None
        cam_xyz = p("camera_xyz_m", [-0.07, 0.0, 1.3], "camera optical centre in base_link")
        cam_pitch = p("camera_pitch_deg", 0.0, "camera tilt below horizontal",
                      min_value=-89.0, max_value=89.0)
        cam_fov = p("camera_vertical_fov_deg", 46.8, "used until camera_info arrives",
                    min_value=5.0, max_value=170.0)

        if len(lin_levels) < 3 or len(lin_levels) != len(ang_levels) \
                or any(not (0 < v <= 2.0) for v in [*lin_levels, *ang_levels]):
            raise TelepresenceConfigError(
                "speed_levels_linear_mps and speed_levels_angular_rps need the same number "
                "(3 or more) of speeds in (0, 2]")
        if len(cam_xyz) != 3:
            raise TelepresenceConfigError("camera_xyz_m needs three numbers (x, y, z)")
        levels = tuple(SpeedLevel(float(a), float(b)) for a, b in zip(lin_levels, ang_levels,
                                                                       strict=True))
        self.limits = SpeedLimits(max(lv.linear_mps for lv in levels), float(max_reverse),
                                  max(lv.angular_rps for lv in levels), levels)
        self.teleop = TeleopState(self.watchdog_s, math.radians(look_step),
                                  levels[len(levels) // 2].angular_rps)
        self.teleop.disable()  # until a pilot connects
        self.mount = CameraMount(tuple(float(v) for v in cam_xyz),  # type: ignore[arg-type]
                                 math.radians(cam_pitch))
        self._fallback_fov = math.radians(cam_fov)

        self._lock = threading.Lock()
        self._drive_lock = threading.Lock()
        self._odom: Odometry | None = None
        #: map -> odom from the navigator's last pose (None: no navigator seen).
        self._odom_in_map: Pose2D | None = None
        self._intrinsics: CameraIntrinsics | None = None
        self._estop: bool | None = None
        self._nav_status: dict[str, Any] = {}
        self._patrol_status: dict[str, Any] = {}
        self._safety_status: dict[str, Any] = {}
        self._map: tuple[bytes, dict[str, Any]] | None = None
        self._pilot: Session | None = None
        self._publishing = False  # True while teleop output is non-zero (or just became zero)
        self._refusal_told: str | None = None  # the e-stop refusal last told to the pilot
        #: The pilot's latest navigation goal (None: none, or given up by the pilot).
        self._pilot_goal: PilotGoal | None = None
        self._cancelled_goal_id = ""  # the navigation goal a pilot's drive last cancelled
        self._stopped_patrol_run = ""  # the patrol run a pilot's drive last stopped
        self._closed = False
        self.last_teleop_publish_s = 0.0  # wall time, for tests and benchmarks
        self.last_drive_command_mono_s = 0.0  # monotonic arrival of the last drive command
        #: (wall time, linear, angular) of recent cmd_vel/teleop publishes (benchmarks).
        self.publish_log: deque[tuple[float, float, float]] = deque(maxlen=2000)

        self.pub_teleop = self.create_publisher(Twist, "cmd_vel/teleop", qos.COMMAND)
        self.pub_goal_place = self.create_publisher(String, "goal_place", qos.COMMAND)
        self.pub_goal_pose = self.create_publisher(PoseStamped, "goal_pose", qos.COMMAND)
        self.pub_goal_point = self.create_publisher(String, "goal_point", qos.COMMAND)
        self.pub_cancel = self.create_publisher(Empty, "navigation/cancel", qos.COMMAND)
        self.pub_patrol_command = self.create_publisher(String, "patrol/command", qos.STATUS)
        self.pub_estop = self.create_publisher(Bool, "estop", qos.LATCHED)
        self.pub_pilot_session = self.create_publisher(Bool, "telepresence/pilot_session",
                                                       qos.LATCHED)
        self._pilot_session_lock = threading.RLock()
        self._pilot_session_said: bool | None = None
        self.estop_client: Any = self.create_client(SetBool, "estop/set")

        self.camera = CameraSource(stamp=bool(self.frame_stamp))
        self.create_subscription(Image, "camera/image_raw", self._on_image, qos.SENSOR)
        self.create_subscription(CameraInfo, "camera/camera_info", self._on_camera_info,
                                 qos.SENSOR)
        self.create_subscription(Odometry, "odom", self._on_odom, qos.SENSOR)
        self.create_subscription(OccupancyGrid, "map", self._on_map, qos.LATCHED)
        self.create_subscription(Bool, "estop/state", self._on_estop, qos.LATCHED)
        # Latched (the navigator's is): the pages know the state and the robot's place on
        # the map as soon as the server starts, not at the navigator's next idle repeat.
        self.create_subscription(DiagnosticStatus, "navigation/status", self._on_nav_status,
                                 qos.LATCHED_EVENTS)
        # A transient-local subscription does not match a volatile (or best-effort) publisher:
        # another navigator, a bridge or `ros2 topic pub` on ROS's default QoS is heard here.
        self.create_subscription(DiagnosticStatus, "navigation/status",
                                 self._on_unlatched_nav_status, _ANY_STATUS)
        self.create_subscription(DiagnosticStatus, "patrol/status", self._on_patrol_status,
                                 qos.LATCHED)
        self.create_subscription(DiagnosticStatus, "safety/status", self._on_safety_status,
                                 _ANY_STATUS)
        # The watchdog has its own thread on the wall clock: a pilot's silence is measured in
        # real seconds even on sim time, and a busy executor (planning, rendering, ASR) cannot
        # delay the zero (measured: executor timers slipped by 200 ms under load).
        self._tick_period_s = 1.0 / float(rate)
        self._stop_ticker = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="teleop-watchdog",
                                        daemon=True)

        try:
            policy = AccessPolicy(
                code_window_s=float(code_window), pilot_session_s=float(pilot_session),
                pilot_extend_s=float(pilot_extend), pilot_max_extensions=int(pilot_extensions),
                spectator_session_s=float(spectator_session),
                spectator_extend_s=float(spectator_extend),
                spectator_max_extensions=int(spectator_extensions),
                staff_session_s=float(staff_session), staff_extend_s=float(staff_extend),
                staff_max_extensions=int(staff_extensions),
                failure_window_s=float(failure_window), max_failures=int(code_failures),
                lockout_s=float(code_lockout), global_max_failures=int(code_global),
                staff_max_failures=int(staff_failures), staff_lockout_s=float(staff_lockout),
                staff_global_max_failures=int(staff_global),
                staff_global_interval_s=float(staff_interval),
                # Spectators behind one address (a class on a NAT'd guest Wi-Fi) may fill
                # every spectator video slot.
                max_spectator_sessions_per_client=max(8, int(max_spectators)))
            policy.validate()
        except TelepresenceConfigError as exc:
            raise TelepresenceConfigError(f"telepresence access parameters: {exc}") from exc
        self.access = AccessManager(str(staff_hash), policy)
        if not staff_hash:
            self.get_logger().warning(
                "no staff_password_hash: the staff page is disabled (see `passeur staff-password`)")
        self.options = ServerOptions(
            host=str(self.http_host), port=int(self.http_port), tls_cert=str(tls_cert),
            tls_key=str(tls_key),
            ice_host_addresses=tuple(a.strip() for a in str(ice).split(",") if a.strip()),
            allowed_hosts=tuple(a.strip() for a in str(allowed_hosts).split(",") if a.strip()),
            video_codec=str(codec).upper(), max_peers=int(max_viewers),
            max_spectators=int(max_spectators), thread_nice=int(thread_nice),
            thread_rt_priority=int(rt_priority),
            client_config={"look_step_deg": float(look_step),
                           "watchdog_ms": round(self.watchdog_s * 1000),
                           "nudge_ms": int(nudge_ms), "session_warning_s": float(warning_s)})
        self.options.validate()  # fail at construction with a clear message
        self.audio = make_audio(str(mic), str(speaker))
        self._publish_pilot_session()
        self.create_timer(PILOT_SESSION_CHECK_PERIOD_S, self._publish_pilot_session,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._features: list[WebFeature] = []
        self.server: WebServer | None = None
        self._ticker.start()  # last: a constructor that raised leaves no thread behind

    # -- bringup hooks ---------------------------------------------------------------------
    def add_web_features(self, features: Sequence[WebFeature]) -> None:
        if self.server is not None:
            raise RuntimeError("add web features before start()")
        self._features.extend(features)

    def start(self) -> None:
        if self.server is not None or self._closed:
            return
        self.server = WebServer(self.options, self, self.access, self.camera, self.audio,
                                self._features)
        self.server.start()
        if self._switch_interval_ms > 0:
            self._switch_token = SWITCH_INTERVAL.take(self._switch_interval_ms / 1000.0)
        for url in self.server.urls():
            self.get_logger().info(f"serving {url}")

    def destroy_node(self) -> None:
        self.close()  # stops the watchdog thread and the server even if close() was skipped
        super().destroy_node()

    def urls(self) -> list[str]:
        return self.server.urls() if self.server is not None else []

    def close(self) -> None:
        """Stop the server (closing every peer), the watchdog, and publish zero. Idempotent;
        also safe on a node whose constructor raised (rclpy destroys it at shutdown)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        self.teleop.disable()
        self._stop_ticker.set()
        if self._ticker.is_alive() and threading.current_thread() is not self._ticker:
            self._ticker.join(2.0)
        server = getattr(self, "server", None)
        try:
            if server is not None:
                server.stop()
        finally:
            token = getattr(self, "_switch_token", None)
            if token is not None:
                SWITCH_INTERVAL.release(token)
                self._switch_token = None
        self.camera.close()
        with self._drive_lock:
            self._publish_velocity(ZERO)
        self._say_pilot_session(False)  # no server, no session

    # -- ROS callbacks (executor threads) --------------------------------------------------
    def _on_image(self, msg: Image) -> None:
        arrival = time.time()
        if msg.encoding not in ("rgb8", "bgr8") or msg.width == 0 or msg.height == 0 \
                or msg.step < msg.width * 3 or len(msg.data) < msg.step * msg.height:
            self.get_logger().warning(f"ignoring camera image with encoding '{msg.encoding}' "
                                      f"({msg.width}x{msg.height})", throttle_duration_sec=10.0)
            return
        rows = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * msg.height)
        rgb = rows.reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(
            msg.height, msg.width, 3)
        if msg.encoding == "bgr8":
            rgb = rgb[:, :, ::-1]
        self.camera.push_rgb(rgb, arrival)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            intrinsics = CameraIntrinsics.from_k(list(msg.k), msg.width, msg.height)
        except ProjectionError:
            return
        with self._lock:
            self._intrinsics = intrinsics

    def _on_odom(self, msg: Odometry) -> None:
        with self._lock:
            self._odom = msg

    def _on_estop(self, msg: Bool) -> None:
        with self._lock:
            self._estop = bool(msg.data)
        # The watchdog thread then publishes one zero (the safety node holds the robot anyway).
        self.teleop.set_estop(bool(msg.data))

    def _on_diag(self, msg: DiagnosticStatus, target: dict[str, Any]) -> dict[str, Any]:
        values = {kv.key: kv.value for kv in msg.values}
        fields = {"level": int.from_bytes(bytes(msg.level), "little")
                  if isinstance(msg.level, bytes | bytearray) else int(msg.level),
                  "name": msg.name, "message": msg.message, **values}
        with self._lock:
            target.clear()
            target.update(fields)
        return fields

    def _on_safety_status(self, msg: DiagnosticStatus) -> None:
        self._on_diag(msg, self._safety_status)  # its reason and source are codes already

    def _on_nav_status(self, msg: DiagnosticStatus) -> None:
        fields = self._on_diag(msg, self._nav_status)
        # The navigator sends a code; the sentence match is for navigators that do not.
        code = str(fields.get("reason_code", "")) or nav_reason_code(str(fields.get("reason", "")))
        offset = parse_pose(str(fields.get("odom_in_map", "")))
        pose = parse_pose(str(fields.get("pose", "")))
        with self._lock:
            self._nav_status["reason_code"] = code
            if self._pilot_goal is not None:
                self._pilot_goal.on_status({**fields, "reason_code": code})
            if offset is not None:
                self._odom_in_map = offset  # the navigator's own map -> odom
            elif pose is not None and self._odom is not None:
                # A navigator that only gives its map pose: paired with our latest odometry
                # (off by however far the robot moved in between).
                self._odom_in_map = odom_in_map(pose, _pose_of(self._odom))

    def _on_unlatched_nav_status(self, msg: DiagnosticStatus) -> None:
        """navigation/status on the best-effort subscription, which matches every publisher:
        used only while no publisher on the topic is latched and reliable (ours), whose
        messages the latched subscription already takes (not twice, nor out of order)."""
        topic = self.resolve_topic_name("navigation/status")
        for info in self.get_publishers_info_by_topic(topic):
            offered = info.qos_profile
            if (offered.durability == DurabilityPolicy.TRANSIENT_LOCAL
                    and offered.reliability == ReliabilityPolicy.RELIABLE):
                return
        self._on_nav_status(msg)

    def _on_patrol_status(self, msg: DiagnosticStatus) -> None:
        fields = self._on_diag(msg, self._patrol_status)
        code, cause = patrol_reason_codes(str(fields.get("reason", "")))
        with self._lock:
            self._patrol_status["reason_code"] = code
            self._patrol_status["cause_code"] = cause

    def _on_map(self, msg: OccupancyGrid) -> None:
        import cv2

        info = msg.info
        w, h = int(info.width), int(info.height)
        if w == 0 or h == 0 or len(msg.data) < w * h:
            return
        grid = np.asarray(msg.data, dtype=np.int16).reshape(h, w)
        img = np.full((h, w), 205, dtype=np.uint8)
        img[(grid >= 0) & (grid < 50)] = 254
        img[grid >= 50] = 30
        img = np.ascontiguousarray(img[::-1])  # row 0 of the image is the map's top (max y)
        ok, png = cv2.imencode(".png", img)
        if not ok:
            return
        q = info.origin.orientation
        meta = {"resolution_m": float(info.resolution), "width": w, "height": h,
                "origin_x_m": float(info.origin.position.x),
                "origin_y_m": float(info.origin.position.y),
                "origin_yaw_rad": quaternion_to_yaw(q.x, q.y, q.z, q.w),
                "frame_id": msg.header.frame_id or "map"}
        with self._lock:
            self._map = (png.tobytes(), meta)

    def _tick_loop(self) -> None:
        # The watchdog takes _drive_lock, which driving commands need too: at the web server's
        # priority, a preempted tick cannot hold a command back (priority inversion).
        set_thread_nice(self.options.thread_nice)
        while not self._stop_ticker.wait(self._tick_period_s):
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the watchdog must outlive any one failure
                self.get_logger().error("teleop watchdog tick failed", throttle_duration_sec=5.0)

    def _tick(self) -> None:
        if self._closed:
            return
        with self._drive_lock:
            velocity = self.teleop.output()
            if not velocity.is_zero:
                self._publishing = True
                self._publish_velocity(velocity)
            elif self._publishing:
                # One zero after motion, then silence so navigation can drive (the safety mux
                # treats a silent teleop source as zero after 300 ms).
                self._publishing = False
                self._publish_velocity(ZERO)

    def _publish_velocity(self, velocity: Velocity) -> None:
        msg = Twist()
        msg.linear.x = float(velocity.linear_mps)
        msg.angular.z = float(velocity.angular_rps)
        try:
            self.pub_teleop.publish(msg)
        except _PUBLISH_GONE:
            # Only expected once the node or the context is shutting down; anything else is
            # a real failure to stop or drive and must be seen.
            if not (self._closed or not self.context.ok()):
                raise
            return
        self.last_teleop_publish_s = time.time()
        self.publish_log.append((self.last_teleop_publish_s, msg.linear.x, msg.angular.z))

    def _cancel_pilot_goal(self) -> None:
        """Cancel the navigation goal the pilot sent, if it may still be under way, and
        forget it (caller holds _drive_lock). One that ended, or that another goal replaced,
        is left alone: navigation/cancel (Empty) would end someone else's trip. One sent but
        not yet in navigation/status is cancelled: the navigator has it, or is about to."""
        with self._lock:
            goal, self._pilot_goal = self._pilot_goal, None
        if goal is not None and goal.live:
            self._publish_cancel()

    def _send_pilot_goal(self) -> str:
        """A new pilot goal's request_id, tracked before the goal is published (its status may
        come back at once) (caller holds _drive_lock)."""
        request_id = new_request_id()
        with self._lock:
            self._pilot_goal = PilotGoal(request_id)
        return request_id

    def _cancel_other_navigation(self) -> None:
        """The pilot drives by hand while navigation (a patrol, staff's goal) is under way:
        cancel it, once per goal, so that the robot does not drive off by itself 300 ms after
        the pilot lets go (the safety mux gives teleop priority only while it speaks). A
        patrol so cancelled stops and is recorded as interrupted (caller holds _drive_lock)."""
        with self._lock:
            state = str(self._nav_status.get("state", ""))
            goal_id = str(self._nav_status.get("goal_id", ""))
            pilots = self._pilot_goal is not None \
                and self._nav_status.get("request_id") == self._pilot_goal.request_id
        if state in ("planning", "driving") and goal_id != self._cancelled_goal_id:
            self._cancelled_goal_id = goal_id
            if pilots:
                with self._lock:
                    self._pilot_goal = None  # cancelled here: not a second time
            self._publish_cancel()
        # A patrol dwelling, announcing or waiting to retry has no goal to cancel: its next
        # one would drive off when the pilot lets go. Stop the run itself, once.
        self._stop_running_patrol("interrupted: the pilot drove")

    def _stop_running_patrol(self, reason: str) -> None:
        """Stop the patrol run under way, once per run, with `reason` for its history and the
        staff desk (caller holds _drive_lock)."""
        with self._lock:
            patrol = str(self._patrol_status.get("state", ""))
            run = str(self._patrol_status.get("run_id", ""))
        if patrol in PATROL_RUNNING and run != self._stopped_patrol_run:
            self._stopped_patrol_run = run
            self.pub_patrol_command.publish(String(data=json.dumps(
                {"action": "stop", "reason": reason})))

    def _publish_pilot_session(self) -> None:
        """telepresence/pilot_session, when it changes (any thread). Looked up under the lock,
        so that a thread that read "live" just before the session ended cannot publish it
        after the end was published. (Session-end listeners run outside the access lock and
        may call this again on the same thread: the lock is reentrant.)"""
        with self._pilot_session_lock:
            if self._closed:
                return
            self._say_pilot_session(self.access.active_pilot() is not None)

    def _say_pilot_session(self, active: bool) -> None:
        with self._pilot_session_lock:
            if active == self._pilot_session_said:
                return
            self._pilot_session_said = active
            try:
                self.pub_pilot_session.publish(Bool(data=active))
            except _PUBLISH_GONE:
                if not (self._closed or not self.context.ok()):
                    raise

    def _publish_cancel(self) -> None:
        try:
            self.pub_cancel.publish(Empty())
        except _PUBLISH_GONE:
            if not (self._closed or not self.context.ok()):
                raise

    # -- RobotPort (web server loop thread) ------------------------------------------------
    def pilot_connected(self, session: Session) -> None:
        with self._drive_lock:
            self._pilot = session
            # A new connection (a reload, a dropped link, another pilot) is told afresh why
            # its drive is refused: the one told before may have gone with the control held.
            self._refusal_told = None
            self.teleop.enable()

    def pilot_disconnected(self, session: Session, reason: str) -> None:
        with self._drive_lock:
            if self._pilot is not None and self._pilot is not session:
                return  # an older, already replaced pilot connection
            self._pilot = None
            self.teleop.disable()
            self._publishing = False
            self._publish_velocity(ZERO)
            self._cancel_pilot_goal()  # a goal the pilot sent must not outlive the pilot
        self.get_logger().info(f"pilot disconnected ({reason}): stopped")
        self._publish_pilot_session()  # at once when the session ended (a reload keeps it)

    def command(self, command: Command, session: Session) -> dict[str, Any] | None:
        with self._drive_lock:
            if self._closed or self._pilot is not session or not self.teleop.enabled:
                return {"type": "error", "code": "not_driving",
                        "message": "this connection is not the pilot's"}
            return self._command_locked(command)

    def _command_locked(self, command: Command) -> dict[str, Any] | None:
        moving = isinstance(command, Look) or (isinstance(command, Drive) and (
            command.linear_mps != 0.0 or command.angular_rps != 0.0))
        if isinstance(command, Drive | Look):
            refusal = self.teleop.refusal() if moving else None
            if refusal is not None:
                # Said once per press (a held control repeats its command ten times a second).
                tell, self._refusal_told = refusal != self._refusal_told, refusal
                return {"type": "error", "code": refusal,
                        "message": TELEOP_REFUSALS[refusal]} if tell else None
            self._refusal_told = None
            if moving:
                self._cancel_other_navigation()
        if isinstance(command, Drive):
            self.last_drive_command_mono_s = time.monotonic()
            if moving:
                # Only a drive that moves takes over from the pilot's goal. A zero drive is a
                # let-go: the page sends one by itself when it hears of the e-stop's release,
                # and a place chosen just before that must still be driven to.
                self._cancel_pilot_goal()
            velocity = self.teleop.drive(command.linear_mps, command.angular_rps)
            self._publishing = not velocity.is_zero or self._publishing
            self._publish_velocity(velocity)
            return None
        if isinstance(command, Stop):
            self.teleop.stop()
            self._publish_velocity(ZERO)
            with self._lock:
                self._pilot_goal = None
            self._publish_cancel()
            # The cancel ends a patrol's goal under way; one that dwells, announces or waits
            # to retry has none, and would drive off to its next place after STOP.
            self._stop_running_patrol("interrupted: the pilot pressed STOP")
            return {"type": "ack", "action": "stop"}
        if isinstance(command, Look):
            velocity = self.teleop.look(command.direction)
            self._publishing = True
            self._publish_velocity(velocity)
            return {"type": "ack", "action": "look", "direction": command.direction}
        if isinstance(command, GotoPlace):
            self.teleop.stop()
            request_id = self._send_pilot_goal()
            self.pub_goal_place.publish(String(data=json.dumps(
                {"place": command.place_id, "request_id": request_id})))
            return {"type": "ack", "action": "goto_place", "id": command.place_id,
                    "request_id": request_id}
        if isinstance(command, GotoPoint):
            return self._goto_point(command.x_m, command.y_m)
        if isinstance(command, GotoPixel):
            with self._lock:
                intrinsics = self._intrinsics
            pose = self.map_pose()
            size = self.camera.size
            if intrinsics is None and size is not None:
                intrinsics = CameraIntrinsics.from_fov(size[0], size[1], self._fallback_fov)
            if intrinsics is None or pose is None:
                return {"type": "error", "code": "no_camera",
                        "message": "the camera or position is not known yet"}
            try:
                # The pose is already in the map (odom -> map applied): no extra offset.
                x, y = pixel_to_map(command.u, command.v, intrinsics, self.mount, pose[0])
            except ProjectionError as exc:
                return {"type": "error", "code": "not_floor", "message": str(exc)}
            return self._goto_point(x, y)
        return {"type": "error", "code": "unsupported", "message": "unsupported command"}

    def map_pose(self) -> tuple[Pose2D, str] | None:
        """(robot pose, frame): in the map when a navigator gave the offset, else odometry's
        (frame "odom"); None before any odometry."""
        with self._lock:
            odom, offset = self._odom, self._odom_in_map
        if odom is None:
            return None
        return robot_in_map(offset, _pose_of(odom))

    def _goto_point(self, x: float, y: float) -> dict[str, Any]:
        yaw = 0.0
        found = self.map_pose()
        if found is not None:
            pose = found[0]  # the goal is in the map: so is the heading towards it
            if math.hypot(x - pose.x_m, y - pose.y_m) > 1e-3:
                yaw = math.atan2(y - pose.y_m, x - pose.x_m)
        self.teleop.stop()
        request_id = self._send_pilot_goal()
        if self.pub_goal_point.get_subscription_count() > 0:
            self.pub_goal_point.publish(String(data=json.dumps(
                {"x": float(x), "y": float(y), "yaw": yaw, "request_id": request_id})))
        else:
            # No navigator of ours (Nav2 listens on goal_pose, as for RViz's goal tool): a
            # plain pose, whose status, if any, cannot be told from another goal's.
            msg = PoseStamped()
            msg.header.frame_id = "map"
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.pose.position.x, msg.pose.position.y = float(x), float(y)
            qx, qy, qz, qw = yaw_to_quaternion(yaw)
            msg.pose.orientation.x, msg.pose.orientation.y = qx, qy
            msg.pose.orientation.z, msg.pose.orientation.w = qz, qw
            self.pub_goal_pose.publish(msg)
        return {"type": "ack", "action": "goto_point", "x": round(x, 3), "y": round(y, 3),
                "request_id": request_id}

    def status(self) -> dict[str, Any]:
        with self._lock:
            odom = self._odom
            out: dict[str, Any] = {
                "estop": self._estop,
                "navigation": dict(self._nav_status),
                "patrol": dict(self._patrol_status),
                "safety": dict(self._safety_status),
                # What became of the pilot's latest goal (None: none), told apart from other
                # goals by its request_id (the goto's ack gave it to the pilot page).
                "pilot_goal": None if self._pilot_goal is None else self._pilot_goal.as_status(),
            }
        found = self.map_pose()
        if odom is not None and found is not None:
            pose, frame = found
            # frame "odom": no navigator has told where the robot is on the map; pages say so
            # and do not draw it on the map.
            out["pose"] = {"x": round(pose.x_m, 3), "y": round(pose.y_m, 3),
                           "yaw": round(pose.yaw_rad, 3), "frame": frame}
            out["pose_source"] = "navigator" if frame == MAP else "odometry"
            out["speed"] = {"linear_mps": round(odom.twist.twist.linear.x, 3),
                            "angular_rps": round(odom.twist.twist.angular.z, 3)}
        else:
            out["pose"] = None
            out["pose_source"] = None
            out["speed"] = None
        with self._drive_lock:
            out["pilot_connected"] = self._pilot is not None
        out["driving"] = self.teleop.moving
        return out

    def set_estop(self, on: bool) -> asyncio.Future[bool]:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[bool] = loop.create_future()
        self.pub_estop.publish(Bool(data=on))
        if on:
            with self._drive_lock:
                self.teleop.stop()
                self._publish_velocity(ZERO)
        if not self.estop_client.service_is_ready():
            result.set_result(False)
            return result

        def settle(ok: bool) -> None:
            if not result.done():
                result.set_result(ok)

        def done(future: Any) -> None:
            response = future.result() if future.exception() is None else None
            loop.call_soon_threadsafe(settle, bool(response is not None and response.success))

        self.estop_client.call_async(SetBool.Request(data=on)).add_done_callback(done)
        loop.call_later(2.0, settle, False)
        return result

    def map_png(self) -> tuple[bytes, dict[str, Any]] | None:
        with self._lock:
            return self._map


def _pose_of(odom: Odometry) -> Pose2D:
    p, q = odom.pose.pose.position, odom.pose.pose.orientation
    return Pose2D(p.x, p.y, quaternion_to_yaw(q.x, q.y, q.z, q.w))
