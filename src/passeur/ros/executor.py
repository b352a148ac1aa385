"""Running an rclpy executor in a background thread (tests, web server side by side)."""

from __future__ import annotations

import threading

from rclpy.executors import Executor, ExternalShutdownException


class ExecutorThread:
    """Spin `executor` in a daemon thread until `stop()`; `stop()` is safe to call twice."""

    def __init__(self, executor: Executor, name: str = "ros-executor") -> None:
        self._executor = executor
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass

    def start(self) -> ExecutorThread:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._executor.shutdown(timeout_sec=timeout_s)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
