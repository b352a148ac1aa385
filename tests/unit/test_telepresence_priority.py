"""The CPU budget that keeps the web server's real-time loop thread from taking a core."""

from __future__ import annotations

import pytest

from passeur.telepresence.priority import RealtimeBudget


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
