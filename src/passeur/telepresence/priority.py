"""Scheduling priority of the telepresence threads (Linux: per thread).

Driving commands and video share two cores with the simulator, the ROS callbacks and the
browsers' processes; under load the web server's loop waited for a core for tens of
milliseconds (measured: command p99 119 ms at nice 0 vs 17 ms at nice -5, load 8). Both calls
act on the calling thread and return False, leaving the priority unchanged, where not
permitted (a negative niceness or a real-time policy needs root or CAP_SYS_NICE) or not
supported.
"""

from __future__ import annotations

import os
import threading


def set_thread_nice(nice: int) -> bool:
    """Set the calling thread's niceness (threads it starts later inherit it)."""
    if nice == 0:
        return True
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):  # PermissionError; no setpriority off Unix
        return False
    return True


def set_thread_realtime(priority: int) -> bool:
    """Put the calling thread (only: threads it starts later get the normal policy back, at
    niceness 0) in SCHED_RR at `priority` (1-99); 0 does nothing."""
    if priority == 0:
        return True
    try:
        policy = os.SCHED_RR | os.SCHED_RESET_ON_FORK
        os.sched_setscheduler(0, policy, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True
