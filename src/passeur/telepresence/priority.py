"""Scheduling priority of the telepresence threads (Linux: per thread).

Driving commands and video share two cores with the simulator, the ROS callbacks and the
browsers' processes; under load the web server's loop waited for a core for tens of
milliseconds (measured: command p99 119 ms at nice 0 vs 17 ms at nice -5, load 8). Both calls
act on the calling thread and return False, leaving the priority unchanged, where not
permitted (a negative niceness or a real-time policy needs root or CAP_SYS_NICE) or not
supported.

A real-time loop thread is kept within a CPU budget (RealtimeBudget, RealtimeGuard): if it
ever uses more than half a core over a second, it goes back to normal scheduling for ten
seconds, so that a flood of packets cannot take a core from the rest of the robot.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable


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


class RealtimeBudget:
    """Whether a real-time thread may stay real-time, from samples of its CPU time (pure).

    A real-time thread runs before every normal one: if it ever spins (a flood of packets, a
    bug), it would take a core from the rest of the robot, the safety node included. So it
    keeps its policy only while it uses at most `share` of one core over each `window_s`;
    past that it goes back to normal scheduling for `cooldown_s`, then is tried again.
    """

    def __init__(self, share: float = 0.5, window_s: float = 1.0,
                 cooldown_s: float = 10.0) -> None:
        if not 0 < share <= 1 or window_s <= 0 or cooldown_s < 0:
            raise ValueError(f"real-time budget: share {share} must be in (0, 1], window "
                             f"{window_s} s > 0, cooldown {cooldown_s} s >= 0")
        self.share, self.window_s, self.cooldown_s = share, window_s, cooldown_s
        self.realtime = True
        self.last_share = 0.0
        self._start: tuple[float, float] | None = None  # (time, CPU time) the window began
        self._demoted_at = 0.0

    def update(self, now_s: float, cpu_s: float) -> bool | None:
        """Feed a sample (monotonic time, the thread's CPU time, both in seconds). Returns
        False to leave real time, True to go back to it, None to change nothing."""
        if not self.realtime:
            if now_s - self._demoted_at < self.cooldown_s:
                return None
            self.realtime, self._start = True, (now_s, cpu_s)
            return True
        if self._start is None:
            self._start = (now_s, cpu_s)
            return None
        elapsed = now_s - self._start[0]
        if elapsed < self.window_s:
            return None
        self.last_share = (cpu_s - self._start[1]) / elapsed
        self._start = (now_s, cpu_s)
        if self.last_share <= self.share:
            return None
        self.realtime, self._demoted_at = False, now_s
        return False


class RealtimeGuard:
    """Keeps a SCHED_RR thread within its RealtimeBudget: a daemon thread samples the
    thread's CPU clock every `period_s`, and moves it to normal scheduling (at the niceness it
    had when the guard was made) and back. Construct it in the real-time thread itself (it
    takes the calling thread's ids); `on_change(realtime, share)` reports each move, and
    `on_error(message)` a move the system refused (the guard then stops: a thread it cannot
    demote must not be promoted again either)."""

    def __init__(self, priority: int, budget: RealtimeBudget,
                 on_change: Callable[[bool, float], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 period_s: float = 0.1) -> None:
        self.priority, self.budget = priority, budget
        self._on_change = on_change
        self._on_error = on_error
        self._period_s = period_s
        self._native_id = threading.get_native_id()
        self._clock = time.pthread_getcpuclockid(threading.get_ident())
        # The niceness to go back to: what the thread has now (web_thread_nice where allowed).
        self.nice = os.getpriority(os.PRIO_PROCESS, self._native_id)
        self._stop = threading.Event()
        # Held across every system call on the thread, and by stop(): once stop() returns,
        # nothing acts on the thread id again (it may be reused once the thread has ended).
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="web-rt-guard", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(2.0)

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    change = self._step()
                except OSError as exc:
                    self._report_error(f"real-time guard stopped: {exc}")
                    return
            if change is not None and self._on_change is not None:
                try:
                    self._on_change(change, self.budget.last_share)
                except Exception:  # noqa: BLE001 - a report must not end the guard
                    pass

    def _step(self) -> bool | None:
        change = self.budget.update(time.monotonic(), time.clock_gettime(self._clock))
        if change:
            os.sched_setscheduler(self._native_id, os.SCHED_RR | os.SCHED_RESET_ON_FORK,
                                  os.sched_param(self.priority))
        elif change is False:
            os.sched_setscheduler(self._native_id, os.SCHED_OTHER, os.sched_param(0))
            # The niceness it had (kept across policies, set again to be sure); one the system
            # refuses (RLIMIT_RTPRIO allowed without RLIMIT_NICE) leaves it where it is.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self._native_id, self.nice)
        return change

    def _report_error(self, message: str) -> None:
        if self._on_error is not None:
            with contextlib.suppress(Exception):
                self._on_error(message)
