"""Keep the simulator, run as fast as possible, in step with the executor (tests only).

    with StackHarness(ctx, nodes=["sim", "safety"], per_node={"sim": {"real_time_factor": 0.0}}) as h:
        sim_lockstep(h)   # before judging anything in sim time

Why: SimLoop at real_time_factor 0 never waits for the rest of the process. The executor runs
only when CPython forces a GIL switch (every 5 ms of wall time, i.e. hundreds of ms of sim
time). Measured with sim + safety: safety's cmd_vel arrived every 0.3 s of sim time (max
2.9 s) instead of every 33 ms, so no controller can be judged in sim time. A bare
`time.sleep(0)` per clock tick brought the median gap to 30 ms, but a loaded machine still
showed 100-200 ms stalls. On a real robot a 20 ms hiccup costs 20 ms, not 400 ms; to keep that
true at any speed, after each `clock` message (every 10 ms of sim time) the simulator thread
waits, at most `max_wait_s` of wall time, until the harness's probe (on the same executor as
the nodes under test) has received it. Until the simulator offers such a mode itself.
"""

from __future__ import annotations

import threading
from typing import Any

from rosgraph_msgs.msg import Clock

from passeur.ros import qos


class SimLockstep:
    def __init__(self, harness: Any, max_wait_s: float = 0.05) -> None:
        self._cond = threading.Condition()
        self._seen_s = -1.0
        self._max_wait_s = max_wait_s
        harness.probe.create_subscription(Clock, "clock", self._on_clock, qos.SENSOR)
        loop = harness.node("sim").loop
        self._publish_clock = loop.on_clock
        loop.on_clock = self._publish_and_wait

    def _on_clock(self, msg: Clock) -> None:
        with self._cond:
            self._seen_s = msg.clock.sec + msg.clock.nanosec * 1e-9
            self._cond.notify_all()

    def _publish_and_wait(self, t: float) -> None:
        if self._publish_clock is not None:
            self._publish_clock(t)
        with self._cond:
            self._cond.wait_for(lambda: self._seen_s >= t - 1e-9, timeout=self._max_wait_s)


def sim_lockstep(harness: Any, max_wait_s: float = 0.05) -> SimLockstep:
    return SimLockstep(harness, max_wait_s)
