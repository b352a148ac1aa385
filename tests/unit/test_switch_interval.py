"""The process's GIL switch interval shared by nodes: the shortest request applies."""

from __future__ import annotations

import sys

import pytest

from passeur.switch_interval import SwitchInterval


def test_shortest_request_applies_and_the_original_comes_back() -> None:
    before = sys.getswitchinterval()
    shared = SwitchInterval()
    try:
        slow = shared.take(0.002)
        assert sys.getswitchinterval() == pytest.approx(0.002)
        fast = shared.take(0.001)
        assert sys.getswitchinterval() == pytest.approx(0.001)
        shared.release(fast)  # the simulator stops: the web server's request remains
        assert sys.getswitchinterval() == pytest.approx(0.002)
        shared.release(fast)  # twice: ignored
        assert sys.getswitchinterval() == pytest.approx(0.002)
        shared.release(slow)
        assert sys.getswitchinterval() == pytest.approx(before)
    finally:
        sys.setswitchinterval(before)


def test_a_request_that_is_not_positive_is_refused() -> None:
    shared = SwitchInterval()
    with pytest.raises(ValueError, match="not > 0"):
        shared.take(0.0)
