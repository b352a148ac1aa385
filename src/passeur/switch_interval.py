"""Python's thread switch interval, shared by the nodes of one process (no rclpy here).

The interval (`sys.setswitchinterval`, 5 ms by default) is how long a thread waiting for the
GIL lets the holder run before asking it to let go. Nodes that need a thread to get the GIL
back quickly (the simulator's physics, the web server's command path) each ask for an
interval; the process uses the shortest one asked for, and gets its own value back when the
last node lets go.
"""

from __future__ import annotations

import sys
import threading


class SwitchInterval:
    """Requests for the process's switch interval: the shortest active one applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[int, float] = {}
        self._next = 0
        self._saved = 0.0

    def take(self, interval_s: float) -> int:
        """Ask for `interval_s` (> 0) until `release` with the returned token."""
        if not interval_s > 0:
            raise ValueError(f"switch interval {interval_s} s is not > 0")
        with self._lock:
            if not self._requests:
                self._saved = sys.getswitchinterval()
            self._next += 1
            self._requests[self._next] = interval_s
            sys.setswitchinterval(min(self._requests.values()))
            return self._next

    def release(self, token: int) -> None:
        """Drop a request (unknown or already dropped tokens are ignored)."""
        with self._lock:
            if self._requests.pop(token, None) is None:
                return
            if self._requests:
                sys.setswitchinterval(min(self._requests.values()))
            else:
                sys.setswitchinterval(self._saved)


#: The process's one instance.
SWITCH_INTERVAL = SwitchInterval()
