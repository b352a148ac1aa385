"""Process environment for the stack: set before rclpy.init() and before MuJoCo is imported.

Defaults only (`setdefault`): anything the user exported wins.
- ROS discovery stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).
- The shipped Fast DDS profile (shared memory for camera images, fast announcements).
- ROS logs go to a cache folder instead of ~/.ros.
- MuJoCo renders headless with EGL.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from passeur.paths import ensure_dev_prefix, share_path

FASTDDS_PROFILE = ("config", "fastdds_profile.xml")


def configure_environment(log_dir: Path | None = None) -> None:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    ensure_dev_prefix()
    # A sourced system ROS may run another RMW; only pin Fast DDS's profile when it applies.
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") == "rmw_fastrtps_cpp":
        profile = share_path(*FASTDDS_PROFILE)
        if profile.is_file():
            os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    if "ROS_LOG_DIR" not in os.environ:
        target = log_dir or Path(tempfile.gettempdir()) / "passeur-ros-log"
        target.mkdir(parents=True, exist_ok=True)
        os.environ["ROS_LOG_DIR"] = str(target)
