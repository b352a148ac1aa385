"""Process environment for the stack: set before rclpy.init() and before MuJoCo is imported.

Defaults only (`setdefault`): anything the user exported wins.
- Local runs (`passeur sim`, `passeur patrol start|stop|status`, tests, the local demo:
  `local_only`): ROS discovery stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST)
  and the shipped Fast DDS profile applies (shared memory for camera images, UDP on loopback
  only, fast announcements). Unless the user asked to reach other machines
  (`network_discovery_choice`: ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET or SYSTEM_DEFAULT, or
  ROS_STATIC_PEERS): the profile, which whitelists the loopback interface, would silently
  defeat that choice, so it is left out (ROS's own transports apply).
- `passeur robot` (`local_only=False`): neither. A real robot's nodes must reach drivers and
  operators on other machines; ROS's own defaults apply, or whatever the user exported.
- ROS logs go to a cache folder instead of ~/.ros.
- MuJoCo renders headless with EGL. With Mesa's software renderer (llvmpipe, no GPU), one
  rasterizer thread per core but one (LP_NUM_THREADS): the simulator's physics thread keeps
  that core busy, and splitting each frame over cores that are both taken costs more than it
  gains (benchmarks/sim_rtf.py on 2 cores: 10.3-10.4x real time against 9.1-9.9x with
  Mesa's default of one thread per core). A GPU driver ignores the variable.
- `get_package_share_directory('passeur')` works (source checkout or `pip install .`).
- An exported ROS_DOMAIN_ID is checked: rcl raises a traceback for text, and Fast DDS ends
  the process with exit code 1 and one cryptic line for a number above 232.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from passeur.paths import ensure_ament_prefix, share_path

FASTDDS_PROFILE = ("config", "fastdds_profile.xml")
#: Fast DDS computes its ports from the domain: above 232 they overflow (0-101 is the range
#: ROS recommends on Linux, clear of the ephemeral ports).
MAX_DOMAIN_ID = 232
#: ROS_AUTOMATIC_DISCOVERY_RANGE values that reach beyond this machine (SUBNET: ROS's default;
#: SYSTEM_DEFAULT: the middleware's own settings).
NETWORK_RANGES = ("SUBNET", "SYSTEM_DEFAULT")

log = logging.getLogger(__name__)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def llvmpipe_threads(cores: int) -> int:
    """Mesa llvmpipe rasterizer threads for a machine with `cores` cores (see above)."""
    return max(1, cores - 1)


def check_domain_id() -> None:
    """Refuse an exported ROS_DOMAIN_ID that ROS cannot use, before rclpy.init()."""
    from passeur.errors import ConfigError

    text = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if not text:
        return
    if not text.isdigit() or int(text) > MAX_DOMAIN_ID:
        raise ConfigError(f"ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']!r} is not a ROS domain: "
                          f"export a whole number from 0 to {MAX_DOMAIN_ID} (0-101 on Linux), "
                          "the same for every program of the robot, or unset it (domain 0)")


def network_discovery_choice(env: Mapping[str, str] | None = None) -> str | None:
    """The exported variable by which the user asked ROS to reach other machines (static
    peers, or a discovery range beyond this host), as `NAME=value`; None when there is none."""
    env = os.environ if env is None else env
    peers = env.get("ROS_STATIC_PEERS", "").strip()
    if peers:
        return f"ROS_STATIC_PEERS={peers}"
    scope = env.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip()
    if scope.upper() in NETWORK_RANGES:
        return f"ROS_AUTOMATIC_DISCOVERY_RANGE={scope}"
    return None


def configure_environment(log_dir: Path | None = None, *, local_only: bool = True) -> None:
    check_domain_id()
    network = network_discovery_choice() if local_only else None
    if local_only:
        # Also with static peers alone: LOCALHOST + ROS_STATIC_PEERS reaches this machine and
        # those peers only (ROS's documented combination).
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    if network is not None and "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ:
        log.info("%s is set: ROS reaches other machines, so passeur's loopback-only Fast DDS "
                 "profile is not used", network)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    os.environ.setdefault("LP_NUM_THREADS", str(llvmpipe_threads(usable_cores())))
    ensure_ament_prefix()
    # A sourced system ROS may run another RMW; only pin Fast DDS's profile when it applies.
    # The profile whitelists the loopback interface: never on a robot talking to the network.
    # Nor when the user asked to reach other machines: its whitelist keeps every packet on
    # this machine, so the robot would never be found, whatever the variables say.
    if (local_only and network is None
            and os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") == "rmw_fastrtps_cpp"):
        profile = share_path(*FASTDDS_PROFILE)
        if profile.is_file():
            os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    if "ROS_LOG_DIR" not in os.environ:
        target = log_dir or Path(tempfile.gettempdir()) / "passeur-ros-log"
        target.mkdir(parents=True, exist_ok=True)
        os.environ["ROS_LOG_DIR"] = str(target)
