"""Access control after review: thread safety, separate failure budgets for codes and the
staff password, bounded extensions for every role, cookie lifetime (session cap)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from passeur.telepresence.access import (
    PILOT,
    SPECTATOR,
    STAFF,
    AccessManager,
    AccessPolicy,
    hash_password,
)
from passeur.telepresence.exceptions import AccessDenied, TelepresenceConfigError

FAST_N = 2**10
PASSWORD = "correct horse"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


def manager(clock: Clock, **policy: float) -> AccessManager:
    defaults: dict[str, float] = dict(
        max_failures=3, lockout_s=60, failure_window_s=120, global_max_failures=6,
        staff_max_failures=3, staff_lockout_s=60, staff_global_max_failures=6,
        staff_global_interval_s=2.0, pilot_session_s=100, pilot_extend_s=50,
        pilot_max_extensions=2, spectator_session_s=200, spectator_extend_s=100,
        spectator_max_extensions=1, staff_session_s=300, staff_extend_s=120,
        staff_max_extensions=2)
    defaults.update(policy)
    return AccessManager(hash_password(PASSWORD, n=FAST_N),
                         AccessPolicy(**defaults),  # type: ignore[arg-type]
                         clock=clock)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads very often so that an unguarded dict mutation shows up at once."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def test_concurrent_logins_and_expiry_do_not_corrupt_state(fast_switching: None) -> None:
    """The web server logs staff in from a worker thread while its loop expires sessions:
    no 'dictionary changed size during iteration', no lost session."""
    access = AccessManager(hash_password(PASSWORD, n=FAST_N),
                           AccessPolicy(spectator_session_s=3600.0, max_live_codes=10_000,
                                        max_live_sessions=10_000))
    code = access.issue_code(SPECTATOR, 3600).code
    errors: list[BaseException] = []
    made: list[int] = []
    stop = threading.Event()

    def create(n: int) -> None:
        try:
            for i in range(n):
                access.redeem_code(code, f"client{i}")
            made.append(n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def churn() -> None:
        try:
            while not stop.is_set():
                access.expire()
                access.sessions(SPECTATOR)
                access.active_pilot()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    creators = [threading.Thread(target=create, args=(1500,)) for _ in range(3)]
    churners = [threading.Thread(target=churn) for _ in range(2)]
    for t in churners + creators:
        t.start()
    for t in creators:
        t.join(60)
    stop.set()
    for t in churners:
        t.join(60)
    assert not errors, repr(errors[:3])
    assert sum(made) == 4500 and len(access.sessions(SPECTATOR)) == 4500


def test_staff_login_steps_keep_state_off_the_worker_thread(clock: Clock) -> None:
    access = manager(clock)
    access.begin_staff_login("10.0.0.1")
    assert access.check_staff_password(PASSWORD) is True  # pure: may run in any thread
    assert access.check_staff_password("nope") is False
    assert access.check_staff_password(None) is False
    session = access.finish_staff_login(True, "10.0.0.1")
    assert access.validate(session.token, STAFF) is session


def test_parallel_guesses_from_one_address_are_checked_one_at_a_time(clock: Clock) -> None:
    """Guesses in flight at once would all pass the lockout check before the first failure
    is counted: a second check from the same address waits for the first to finish."""
    access = manager(clock)
    access.begin_staff_login("10.0.0.9")
    with pytest.raises(AccessDenied) as refused:
        access.begin_staff_login("10.0.0.9")
    assert refused.value.reason == "busy"
    access.begin_staff_login("10.0.0.10")  # another address is not held up
    with pytest.raises(AccessDenied):
        access.finish_staff_login(False, "10.0.0.9")
    access.begin_staff_login("10.0.0.9")  # the first check is over: the next may start
    access.finish_staff_login(True, "10.0.0.9")
    access.finish_staff_login(True, "10.0.0.10")


def test_guessing_codes_never_locks_staff_out(clock: Clock) -> None:
    access = manager(clock)
    access.issue_code(PILOT, 300)
    # Several addresses exhaust the global code budget: codes are refused robot-wide...
    for i in range(6):
        with pytest.raises(AccessDenied):
            access.redeem_code("00000000", f"bot{i}")
    with pytest.raises(AccessDenied) as e:
        access.redeem_code(access.issue_code(PILOT, 300).code, "honest")
    assert e.value.reason == "busy"
    # ...but staff still log in, even from an address that guessed codes.
    assert access.staff_login(PASSWORD, "bot0").role == STAFF
    assert access.staff_login(PASSWORD, "desk").role == STAFF


def test_staff_lockout_is_per_address_and_global_failures_only_throttle(clock: Clock) -> None:
    access = manager(clock)
    for _ in range(2):
        with pytest.raises(AccessDenied) as e:
            access.staff_login("guess", "10.0.0.2")
        assert e.value.reason == "wrong_password"
    with pytest.raises(AccessDenied) as e:
        access.staff_login("guess", "10.0.0.2")
    assert e.value.reason == "locked" and e.value.retry_after_s == 60
    assert access.staff_locked_out("10.0.0.2") and not access.locked_out("10.0.0.2")
    with pytest.raises(AccessDenied):  # even the right password, while locked
        access.staff_login(PASSWORD, "10.0.0.2")
    assert access.staff_login(PASSWORD, "10.0.0.3").role == STAFF  # another address
    # Distributed guessing past the global staff budget (6): attempts are throttled to one
    # per 2 s robot-wide, never locked: the desk gets in a couple of seconds later.
    for i in range(3):
        clock.t += 2.0
        with pytest.raises(AccessDenied):
            access.staff_login("guess", f"bot{i}")
    with pytest.raises(AccessDenied) as e:
        access.staff_login(PASSWORD, "desk")  # right after a bot's attempt
    assert e.value.reason == "busy" and 0 < e.value.retry_after_s <= 2.0
    clock.t += 2.0
    assert access.staff_login(PASSWORD, "desk").role == STAFF
    clock.t += 61
    assert access.staff_login(PASSWORD, "10.0.0.2").role == STAFF  # lockout over


@pytest.mark.parametrize("role, length, step, count", [
    (PILOT, 100, 50, 2), (SPECTATOR, 200, 100, 1), (STAFF, 300, 120, 2)])
def test_every_role_can_extend_a_bounded_number_of_times(
        clock: Clock, role: str, length: float, step: float, count: int) -> None:
    access = manager(clock)
    session = access.grant(role, "a")
    assert access.remaining_s(session) == length
    assert access.cap_s(session) == length + count * step
    clock.t += 10
    for i in range(count):
        access.extend(session.token)
        assert access.remaining_s(session) == length - 10 + (i + 1) * step
        assert access.extensions_left(session) == count - i - 1
    with pytest.raises(AccessDenied) as e:
        access.extend(session.token)
    assert e.value.reason == "max_extensions"
    # The cap never grows: a cookie set at the start outlasts the session, extended or not.
    assert access.cap_s(session) == access.remaining_s(session) == length - 10 + count * step
    with pytest.raises(AccessDenied) as e:
        access.extend(session.token, role=PILOT if role != PILOT else STAFF)
    assert e.value.reason == "forbidden"


def test_listeners_are_called_outside_the_lock(clock: Clock) -> None:
    access = manager(clock)
    seen: list[bool] = []

    def listener(_session: object) -> None:
        # Another thread must be able to use the manager while listeners run.
        result: list[bool] = []
        t = threading.Thread(target=lambda: result.append(access.active_pilot() is None))
        t.start()
        t.join(2)
        seen.append(bool(result))

    access.on_session_end(listener)
    pilot = access.grant(PILOT, "a")
    access.end(pilot.token, "left")
    access.grant(SPECTATOR, "b")
    clock.t += 1000
    access.expire()
    assert seen == [True, True]


def test_policy_validation_names_the_field() -> None:
    with pytest.raises(TelepresenceConfigError, match="staff_global_max_failures"):
        AccessPolicy(staff_max_failures=5, staff_global_max_failures=2).validate()
    with pytest.raises(TelepresenceConfigError, match="spectator_extend_s"):
        AccessPolicy(spectator_extend_s=0).validate()


def test_one_spectator_code_cannot_fill_the_robot_with_sessions(clock: Clock) -> None:
    """A spectator code is shared widely (a QR code on a screen): redeeming it in a loop made
    one live session per request, for an hour each, without bound (memory, and every request
    and data-channel message scans them all). Each address keeps its newest few spectator
    sessions (older ones end, their viewers drop), and the robot as a whole refuses new ones
    past max_live_sessions with "full"."""
    access = manager(clock, max_spectator_sessions_per_client=3, max_live_sessions=8)
    ended: list[str] = []
    access.on_session_end(lambda s: ended.append(s.end_reason))
    code = access.issue_code(SPECTATOR).code
    flood = [access.redeem_code(code, "10.0.0.66") for _ in range(50)]
    assert len(access.sessions(SPECTATOR)) == 3
    assert ended.count("replaced") == 47 and all(s.ended for s in flood[:47])
    access.validate(flood[-1].token)  # the newest ones live on
    # Other visitors, each on their own device: up to the robot's bound, then "full".
    for i in range(5):
        access.redeem_code(code, f"10.0.0.{i}")
    with pytest.raises(AccessDenied) as err:
        access.redeem_code(code, "10.0.0.99")
    assert err.value.reason == "full"
    # Staff and the pilot are never refused for it.
    access.staff_login(PASSWORD, "10.0.0.200")
    access.redeem_code(access.issue_code(PILOT).code, "10.0.0.201")
    with pytest.raises(TelepresenceConfigError):
        AccessPolicy(max_spectator_sessions_per_client=0).validate()


def test_revoking_counts_only_codes_that_could_still_be_used(clock: Clock) -> None:
    """"Cancel all codes" answered "Done." when every code had been used or had expired: the
    count now says how many could still have let someone in, and all are gone either way."""
    access = manager(clock)
    assert access.revoke_codes() == 0
    used = access.issue_code(PILOT, valid_for_s=600).code
    access.redeem_code(used, "10.0.0.1")
    access.issue_code(SPECTATOR, valid_for_s=10)
    clock.t += 20  # the spectator code has expired
    assert access.revoke_codes() == 0
    with pytest.raises(AccessDenied):
        access.redeem_code(used, "10.0.0.2")
    access.issue_code(SPECTATOR)
    access.issue_code(PILOT)
    assert access.revoke_codes(SPECTATOR) == 1
    assert access.revoke_codes() == 1
    assert access.live_codes() == [] and access.revoke_codes() == 0
