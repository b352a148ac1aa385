"""The CPU budget that keeps the web server's real-time loop thread from taking a core."""

from __future__ import annotations

import os
import time

import pytest

from passeur.telepresence.priority import RealtimeBudget, RealtimeGuard


def test_a_thread_within_its_share_stays_real_time() -> None:
    budget = RealtimeBudget(share=0.5, window_s=1.0, cooldown_s=10.0)
    assert budget.update(0.0, 0.0) is None
    for k in range(1, 30):  # 40 % of a core, sampled every 0.1 s
        assert budget.update(0.1 * k, 0.04 * k) is None
    assert budget.realtime
    assert budget.last_share == pytest.approx(0.4)


def test_a_busy_thread_leaves_real_time_then_comes_back_after_the_cooldown() -> None:
    budget = RealtimeBudget(share=0.5, window_s=1.0, cooldown_s=10.0)
    budget.update(0.0, 0.0)
    assert budget.update(0.5, 0.45) is None  # not a whole window yet
    assert budget.update(1.0, 0.9) is False  # 90 % of a core over the second
    assert not budget.realtime
    assert budget.last_share == pytest.approx(0.9)
    assert budget.update(5.0, 4.9) is None  # cooling down, whatever it uses
    assert budget.update(11.0, 10.9) is True
    assert budget.realtime
    # A new window starts there: the time spent at normal priority is not held against it.
    assert budget.update(11.5, 11.0) is None
    assert budget.update(12.0, 11.1) is None


def test_a_bad_budget_is_refused() -> None:
    for kwargs in ({"share": 0.0}, {"share": 1.5}, {"window_s": 0.0}, {"cooldown_s": -1.0}):
        with pytest.raises(ValueError, match="real-time budget"):
            RealtimeBudget(**kwargs)  # type: ignore[arg-type]


class _Scripted(RealtimeBudget):
    """A budget that answers from a script: False (demote), True (promote), None..."""

    def __init__(self, answers: list[bool | None]) -> None:
        super().__init__()
        self.answers = answers

    def update(self, now_s: float, cpu_s: float) -> bool | None:
        return self.answers.pop(0) if self.answers else None


def test_a_refused_niceness_does_not_stop_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """RLIMIT_RTPRIO may allow SCHED_RR while a negative niceness is refused: the thread is
    still demoted, and promoted again after the cooldown."""
    calls: list[int] = []

    def refuse(*_args: object) -> None:
        raise PermissionError("nice")

    guard = RealtimeGuard(10, _Scripted([False, True]))
    monkeypatch.setattr(os, "sched_setscheduler", lambda _tid, policy, _p: calls.append(policy))
    monkeypatch.setattr(os, "setpriority", refuse)
    assert guard._step() is False
    assert guard._step() is True
    assert calls == [os.SCHED_OTHER, os.SCHED_RR | os.SCHED_RESET_ON_FORK]


def test_a_refused_move_is_reported_and_ends_the_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[str] = []

    def refuse(*_args: object) -> None:
        raise PermissionError("no")

    guard = RealtimeGuard(10, _Scripted([False]), on_error=errors.append, period_s=0.01)
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    guard.start()
    guard._thread.join(5.0)
    assert not guard._thread.is_alive()
    assert errors and "real-time guard stopped" in errors[0]


def test_after_stop_nothing_acts_on_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    guard = RealtimeGuard(10, _Scripted([]), period_s=0.01)
    guard.start()
    guard.stop()
    guard.budget.answers = [False] * 10  # type: ignore[attr-defined]
    monkeypatch.setattr(os, "sched_setscheduler", lambda _tid, policy, _p: calls.append(policy))
    time.sleep(0.05)
    assert calls == [] and not guard._thread.is_alive()
