"""Velocity mux: priorities (e-stop > teleop > navigation) and silent sources."""

from __future__ import annotations

import pytest

from passeur.safety.exceptions import SafetyConfigError
from passeur.safety.limits import ZERO, Velocity
from passeur.safety.velocity_mux import ESTOP, NAV, NONE, TELEOP, VelocityMux

FWD = Velocity(0.4, 0.0)
TURN = Velocity(0.0, 0.8)


def test_nothing_received_means_zero_from_no_source() -> None:
    out = VelocityMux().select(10.0)
    assert (out.source, out.command) == (NONE, ZERO)


def test_teleop_beats_navigation_while_it_speaks() -> None:
    mux = VelocityMux(timeout_s=0.3)
    mux.update(NAV, FWD, 1.0)
    assert mux.select(1.1).source == NAV
    mux.update(TELEOP, TURN, 1.1)
    out = mux.select(1.2)
    assert (out.source, out.command) == (TELEOP, TURN)
    # a fresher navigation command does not take over while teleop is active
    mux.update(NAV, FWD, 1.3)
    assert mux.select(1.35).source == TELEOP


def test_teleop_holding_still_still_overrides_navigation() -> None:
    mux = VelocityMux()
    mux.update(NAV, FWD, 0.0)
    mux.update(TELEOP, ZERO, 0.0)
    out = mux.select(0.1)
    assert (out.source, out.command) == (TELEOP, ZERO)


def test_silent_teleop_hands_back_to_navigation_then_to_zero() -> None:
    mux = VelocityMux(timeout_s=0.3)
    mux.update(TELEOP, TURN, 0.0)
    mux.update(NAV, FWD, 0.25)
    assert mux.select(0.2999).source == TELEOP
    out = mux.select(0.30)  # silent for exactly the timeout: zero, as documented
    assert (out.source, out.command) == (NAV, FWD)
    assert out.stale == (TELEOP,)
    out = mux.select(0.551)
    assert (out.source, out.command) == (NONE, ZERO)
    assert out.stale == (NAV,)
    assert mux.select(0.6).stale == ()  # reported once


def test_estop_overrides_everything_and_releases() -> None:
    mux = VelocityMux()
    mux.update(TELEOP, FWD, 0.0)
    mux.update(NAV, FWD, 0.0)
    mux.set_estop(True)
    out = mux.select(0.05)
    assert (out.source, out.command) == (ESTOP, ZERO)
    mux.set_estop(False)
    # Released: still the pilot's turn, but what it asked before the release does not move
    # the robot (IEC 60204-1, ISO 13850) until it lets go.
    out = mux.select(0.1)
    assert (out.source, out.command, out.held) == (TELEOP, ZERO, True)
    mux.update(TELEOP, ZERO, 0.1)  # let go
    mux.update(TELEOP, FWD, 0.15)  # a new press
    out = mux.select(0.2)
    assert (out.source, out.command, out.held) == (TELEOP, FWD, False)


def test_a_source_still_driving_through_the_estop_is_held_after_its_release() -> None:
    """Nav2 (or a latched teleop key) keeps publishing its motion through the e-stop: the
    release must not set the robot moving; silence or a zero ends the hold."""
    mux = VelocityMux(timeout_s=0.3)
    mux.set_estop(True)
    for i in range(10):
        mux.update(NAV, FWD, 0.1 * i)
    mux.set_estop(False)
    for i in range(10, 20):
        mux.update(NAV, FWD, 0.1 * i)
        out = mux.select(0.1 * i + 0.01)
        assert (out.source, out.command, out.held) == (NAV, ZERO, True)
    assert mux.select(2.5).source == NONE  # silent: forgotten, hold included
    mux.update(NAV, FWD, 2.6)
    assert mux.select(2.61).command == FWD
    # A source whose last word was zero at the release is not held.
    mux.update(NAV, ZERO, 2.7)
    mux.set_estop(True)
    mux.set_estop(False)
    mux.update(NAV, TURN, 2.8)
    assert mux.select(2.81).command == TURN


def test_clock_jumping_back_does_not_revive_old_commands() -> None:
    mux = VelocityMux(timeout_s=0.3)
    mux.update(TELEOP, FWD, 100.0)
    assert mux.select(99.9).source == TELEOP  # small negative age: threads racing, fine
    assert mux.select(5.0).source == NONE  # simulator restarted: drop it


def test_configurable_timeout() -> None:
    mux = VelocityMux(timeout_s=1.0)
    mux.update(NAV, FWD, 0.0)
    assert mux.select(0.9).source == NAV
    assert mux.select(1.01).source == NONE


@pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_timeout_is_a_clear_error(timeout: float) -> None:
    with pytest.raises(SafetyConfigError, match="source_timeout_s"):
        VelocityMux(timeout_s=timeout)


def test_unknown_source_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown velocity source"):
        VelocityMux().update("joystick", FWD, 0.0)
    with pytest.raises(SafetyConfigError):
        VelocityMux(sources=("teleop", "teleop"))


def test_publisher_sequence_drops_copies_and_stale_messages() -> None:
    from passeur.safety.velocity_mux import PublisherSequence

    seq = PublisherSequence()
    button, page = b"button", b"page"
    assert seq.is_new(button, 1)
    assert not seq.is_new(button, 1)  # the same message through the other subscription
    assert seq.is_new(button, 3)
    assert not seq.is_new(button, 2)  # older than what was applied: a stale release
    assert seq.is_new(page, 1)  # each publisher counts on its own
    assert seq.is_new(None, None) and seq.is_new(button, None)  # nothing to compare: new
