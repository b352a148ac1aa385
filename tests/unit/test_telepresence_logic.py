"""Pure telepresence logic: access codes, message validation, floor projection, teleop."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passeur.ros.geometry import Pose2D
from passeur.telepresence.access import (
    PILOT,
    SPECTATOR,
    AccessManager,
    AccessPolicy,
    PasswordHash,
    hash_password,
    verify_password,
)
from passeur.telepresence.exceptions import (
    AccessDenied,
    MessageError,
    ProjectionError,
    TelepresenceConfigError,
)
from passeur.telepresence.floor_projection import (
    CameraIntrinsics,
    CameraMount,
    base_to_pixel,
    pixel_to_base,
    pixel_to_map,
)
from passeur.telepresence.messages import (
    MAX_MESSAGE_BYTES,
    Drive,
    GotoPixel,
    GotoPlace,
    GotoPoint,
    Look,
    Ping,
    SpeedLimits,
    Stop,
    parse_message,
)
from passeur.telepresence.teleop import TeleopState

FAST_N = 2**10  # tests hash with a small scrypt cost


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def access(clock: Clock) -> AccessManager:
    return AccessManager(hash_password("correct horse", n=FAST_N),
                         AccessPolicy(max_failures=3, lockout_s=60, failure_window_s=120,
                                      global_max_failures=10, pilot_session_s=100,
                                      pilot_extend_s=50, pilot_max_extensions=2,
                                      staff_max_failures=3, staff_lockout_s=60,
                                      staff_global_max_failures=6, staff_global_interval_s=2.0,
                                      spectator_session_s=200, spectator_extend_s=100,
                                      spectator_max_extensions=1, staff_session_s=300,
                                      staff_extend_s=100, staff_max_extensions=1),
                         clock=clock)


# -- access ------------------------------------------------------------------------------------
def test_password_hash_roundtrip_and_salted() -> None:
    a, b = hash_password("s3cret!", n=FAST_N), hash_password("s3cret!", n=FAST_N)
    assert a != b and "s3cret" not in a
    assert verify_password("s3cret!", a) and not verify_password("s3cret", a)


@pytest.mark.parametrize("bad", ["", "plain", "scrypt$3$8$1$AAAA$BBBB", "scrypt$x$8$1$a$b",
                                 "pbkdf2$1$2$3$4$5"])
def test_bad_hash_is_a_clear_config_error(bad: str) -> None:
    with pytest.raises(TelepresenceConfigError, match="staff-password"):
        PasswordHash.parse(bad)


def test_staff_login_and_lockout(access: AccessManager, clock: Clock) -> None:
    session = access.staff_login("correct horse", "10.0.0.1")
    assert access.validate(session.token, "staff") is session
    for _ in range(2):
        with pytest.raises(AccessDenied) as e:
            access.staff_login("wrong", "10.0.0.2")
        assert e.value.reason == "wrong_password"
    with pytest.raises(AccessDenied) as e:
        access.staff_login("wrong", "10.0.0.2")
    assert e.value.reason == "locked"
    # Even the right password is refused while locked out; another client is unaffected.
    with pytest.raises(AccessDenied, match="too many"):
        access.staff_login("correct horse", "10.0.0.2")
    access.staff_login("correct horse", "10.0.0.3")
    clock.t += 61
    access.staff_login("correct horse", "10.0.0.2")


def test_pilot_code_is_one_time_and_one_pilot_at_a_time(access: AccessManager) -> None:
    code = access.issue_code(PILOT, 300).code
    assert len(code) == 8 and code.isdigit()
    pilot = access.redeem_code(code[:4] + " " + code[4:], "a")
    assert pilot.role == PILOT and access.active_pilot() is pilot
    with pytest.raises(AccessDenied) as e:  # replay
        access.redeem_code(code, "b")
    assert e.value.reason == "used"
    second = access.issue_code(PILOT, 300).code
    with pytest.raises(AccessDenied) as e:
        access.redeem_code(second, "b")
    assert e.value.reason == "pilot_busy"
    access.end_pilot()
    assert access.redeem_code(second, "b").role == PILOT  # the busy code stayed valid


def test_code_window_and_session_expiry(access: AccessManager, clock: Clock) -> None:
    ended: list[str] = []
    access.on_session_end(lambda s: ended.append(s.end_reason))
    code = access.issue_code(PILOT, 30).code
    clock.t += 31
    with pytest.raises(AccessDenied) as e:
        access.redeem_code(code, "a")
    assert e.value.reason == "expired"
    session = access.redeem_code(access.issue_code(PILOT, 30).code, "a")
    clock.t += 90
    access.extend(session.token)
    access.extend(session.token)
    with pytest.raises(AccessDenied):
        access.extend(session.token)
    clock.t += 100 + 10
    assert access.active_pilot() is None and ended == ["expired"]
    with pytest.raises(AccessDenied):
        access.validate(session.token)


def test_spectator_codes_watch_only_and_reusable(access: AccessManager) -> None:
    code = access.issue_code(SPECTATOR, 300).code
    a, b = access.redeem_code(code, "a"), access.redeem_code(code, "b")
    assert a.role == b.role == SPECTATOR and access.active_pilot() is None
    with pytest.raises(AccessDenied):
        access.validate(a.token, PILOT)


def test_brute_force_is_locked_out_and_globally_limited(access: AccessManager) -> None:
    real = access.issue_code(PILOT, 300).code
    wrong = str((int(real) + 1) % 10**8).zfill(8)
    reasons = []
    for _ in range(4):
        with pytest.raises(AccessDenied) as e:
            access.redeem_code(wrong, "attacker")
        reasons.append(e.value.reason)
    assert reasons == ["wrong_code", "wrong_code", "locked", "locked"]
    with pytest.raises(AccessDenied):  # the right code does not help while locked
        access.redeem_code(real, "attacker")
    # Many clients guessing together exhaust the global budget.
    for i in range(10):
        try:
            access.redeem_code(wrong, f"bot{i}")
        except AccessDenied:
            pass
    with pytest.raises(AccessDenied) as e:
        access.redeem_code(real, "honest")
    assert e.value.reason == "busy"


def test_secrets_not_in_repr_or_logs(access: AccessManager, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    code = access.issue_code(PILOT, 300).code
    session = access.redeem_code(code, "a")
    with pytest.raises(AccessDenied):
        access.staff_login("my-guess-pw", "a")
    assert session.token not in repr(session)
    text = caplog.text
    assert code not in text and session.token not in text and "my-guess-pw" not in text


def test_staff_password_cli_prints_a_verifiable_hash() -> None:
    out = subprocess.run([sys.executable, "-m", "passeur.cli", "staff-password", "--stdin"],
                         input="library-2026\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    encoded = out.stdout.strip()
    assert verify_password("library-2026", encoded) and "library-2026" not in encoded
    short = subprocess.run([sys.executable, "-m", "passeur.cli", "staff-password", "--stdin"],
                           input="abc\n", capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "at least 8" in short.stderr and "Traceback" not in short.stderr


# -- messages ----------------------------------------------------------------------------------
LIMITS = SpeedLimits()


def test_drive_forms_and_clamps() -> None:
    assert parse_message('{"type":"drive","linear":0.2,"angular":-0.1}', LIMITS).command \
        == Drive(0.2, -0.1)
    assert parse_message('{"type":"drive","linear":1e300,"angular":-1e300}', LIMITS).command \
        == Drive(LIMITS.max_linear_mps, -LIMITS.max_angular_rps)
    assert parse_message('{"type":"drive","linear":-5}', LIMITS).command \
        == Drive(-LIMITS.max_reverse_mps, 0.0)
    level = LIMITS.levels[1]
    p = parse_message('{"type":"drive","direction":"forward","speed_level":2,"seq":7}', LIMITS)
    assert p.command == Drive(level.linear_mps, 0.0) and p.seq == 7
    p = parse_message('{"type":"drive","direction":"right","speed_level":99}', LIMITS)
    assert p.command == Drive(0.0, -LIMITS.levels[-1].angular_rps)


@pytest.mark.parametrize("raw, code", [
    ("not json", "bad_json"),
    ("[1,2]", "bad_json"),
    ('{"type":"drive","linear":NaN}', "bad_json"),
    ('{"type":"drive","linear":Infinity}', "bad_json"),
    ('{"type":"drive","linear":"fast"}', "bad_field"),
    ('{"type":"drive","linear":true}', "bad_field"),
    ('{"type":"drive","linear":1' + "0" * 400 + "}", "bad_field"),
    ('{"type":"drive","direction":"up"}', "bad_field"),
    ('{"type":"drive","linear":0.1,"direction":"forward"}', "bad_field"),
    ('{"type":"fly"}', "unknown_type"),
    ('{"kind":"stop"}', "unknown_type"),
    ('{"type":"stop","evil":1}', "bad_field"),
    ('{"type":"goto_place","id":"../../etc"}', "bad_field"),
    ('{"type":"goto_point","x":1e9,"y":0}', "bad_field"),
    ('{"type":"goto_pixel","u":-1,"v":3}', "bad_field"),
    ('{"type":"look","direction":"up"}', "bad_field"),
    ('{"type":"stop","seq":-1}', "bad_field"),
    (b"\xff\xfe", "bad_json"),
    ("[" * 5000, "too_big"),
    ('{"type":"ping","t":' + "[" * 500 + "]" * 500 + "}", "bad_field"),
])
def test_refusals(raw: str | bytes, code: str) -> None:
    with pytest.raises(MessageError) as e:
        parse_message(raw, LIMITS)
    assert e.value.code == code


def test_other_types() -> None:
    assert parse_message('{"type":"stop"}', LIMITS).command == Stop()
    assert parse_message('{"type":"look","direction":"left"}', LIMITS).command == Look("left")
    assert parse_message('{"type":"goto_place","id":"desk"}', LIMITS).command == GotoPlace("desk")
    assert parse_message('{"type":"goto_point","x":1,"y":-2.5}', LIMITS).command \
        == GotoPoint(1.0, -2.5)
    assert parse_message('{"type":"goto_pixel","u":320,"v":400}', LIMITS).command \
        == GotoPixel(320.0, 400.0)
    assert parse_message('{"type":"ping","t":5}', LIMITS).command == Ping(5.0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "linear", "angular", "direction", "speed_level",
                                        "id", "x", "y", "u", "v", "t", "seq", "on", "target"]),
                       json_values, max_size=5)
       | st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_validator_never_crashes_and_always_bounds(obj: dict[str, object]) -> None:
    if "type" not in obj or isinstance(obj.get("type"), str) is False:
        obj = {**obj, "type": "drive"}
    try:
        raw = json.dumps(obj)
    except ValueError:
        return
    try:
        parsed = parse_message(raw, LIMITS)
    except MessageError:
        return
    cmd = parsed.command
    if isinstance(cmd, Drive):
        assert math.isfinite(cmd.linear_mps) and math.isfinite(cmd.angular_rps)
        assert -LIMITS.max_reverse_mps <= cmd.linear_mps <= LIMITS.max_linear_mps
        assert abs(cmd.angular_rps) <= LIMITS.max_angular_rps
    if isinstance(cmd, GotoPoint | GotoPixel):
        assert all(math.isfinite(v) for v in vars(cmd).values())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2 * MAX_MESSAGE_BYTES) | st.text(max_size=2 * MAX_MESSAGE_BYTES))
def test_validator_arbitrary_bytes(raw: bytes | str) -> None:
    try:
        parse_message(raw, LIMITS)
    except MessageError:
        pass


# -- floor projection --------------------------------------------------------------------------
K = CameraIntrinsics.from_fov(640, 480, math.radians(60))


def test_centre_pixel_hits_floor_at_pitch_distance() -> None:
    mount = CameraMount((0.1, 0.0, 1.3), pitch_rad=math.radians(30))
    x, y = pixel_to_base(K.cx, K.cy, K, mount)
    assert x == pytest.approx(0.1 + 1.3 / math.tan(math.radians(30)), abs=1e-6)
    assert y == pytest.approx(0.0, abs=1e-9)
    # Right of centre is to the robot's right (negative y); lower in the image is closer.
    assert pixel_to_base(500, K.cy, K, mount)[1] < 0
    assert pixel_to_base(K.cx, 470, K, mount)[0] < x


@settings(max_examples=200, deadline=None)
@given(st.floats(0.3, 8.0), st.floats(-3.0, 3.0), st.floats(0.1, 0.8), st.floats(-0.5, 0.5))
def test_projection_inverts_synthetic_camera(x: float, y: float, pitch: float, yaw: float) -> None:
    mount = CameraMount((0.12, 0.03, 1.3), pitch_rad=pitch, yaw_rad=yaw)
    pix = base_to_pixel(x, y, K, mount)
    if pix is None or not (0 <= pix[0] < K.width and 0 <= pix[1] < K.height):
        return
    bx, by = pixel_to_base(pix[0], pix[1], K, mount, max_range_m=100)
    assert bx == pytest.approx(x, abs=1e-6) and by == pytest.approx(y, abs=1e-6)


def test_horizon_and_outside_refused() -> None:
    mount = CameraMount((0.1, 0.0, 1.3), pitch_rad=0.1)
    with pytest.raises(ProjectionError, match="horizon"):
        pixel_to_base(320, 10, K, mount)
    with pytest.raises(ProjectionError, match="outside"):
        pixel_to_base(700, 10, K, mount)
    with pytest.raises(ProjectionError, match="far"):
        pixel_to_base(K.cx, K.cy + 2, K, mount, max_range_m=5)


def test_pixel_to_map_uses_robot_pose() -> None:
    mount = CameraMount((0.0, 0.0, 1.0), pitch_rad=math.radians(45))
    # Robot at (2, 3) facing +y: the centre pixel is 1 m ahead, i.e. at (2, 4).
    x, y = pixel_to_map(K.cx, K.cy, K, mount, Pose2D(2.0, 3.0, math.pi / 2))
    assert (x, y) == (pytest.approx(2.0, abs=1e-6), pytest.approx(4.0, abs=1e-6))
    x, y = pixel_to_map(K.cx, K.cy, K, mount, Pose2D(0.0, 0.0, 0.0), Pose2D(1.0, 0.0, 0.0))
    assert (x, y) == (pytest.approx(2.0, abs=1e-6), pytest.approx(0.0, abs=1e-6))


def test_intrinsics_from_camera_info() -> None:
    k = CameraIntrinsics.from_k([500, 0, 320, 0, 500, 240, 0, 0, 1], 640, 480)
    assert (k.fx, k.cx, k.cy) == (500, 320, 240)
    with pytest.raises(ProjectionError):
        CameraIntrinsics.from_k([0] * 9, 640, 480)


# -- teleop ------------------------------------------------------------------------------------
def test_watchdog_zeroes_after_silence(clock: Clock) -> None:
    t = TeleopState(0.3, clock=clock)
    assert t.drive(0.3, 0.1).linear_mps == 0.3
    clock.t += 0.29
    assert t.output().linear_mps == 0.3
    clock.t += 0.02
    assert t.output().is_zero and not t.moving


def test_repeated_commands_keep_driving_and_stop_wins(clock: Clock) -> None:
    t = TeleopState(0.3, clock=clock)
    for _ in range(10):
        t.drive(0.2, 0.0)
        clock.t += 0.1
        assert t.moving
    t.stop()
    assert not t.moving


def test_look_step_is_bounded(clock: Clock) -> None:
    t = TeleopState(0.3, look_step_rad=math.radians(30), look_speed_rps=0.5, clock=clock)
    assert t.look("right").angular_rps == -0.5
    clock.t += math.radians(30) / 0.5 - 0.01
    assert t.moving
    clock.t += 0.02
    assert not t.moving


def test_estop_release_never_restarts_a_held_drive(clock: Clock) -> None:
    t = TeleopState(0.3, clock=clock)
    t.drive(0.3, 0.0)
    t.set_estop(True)
    assert not t.moving and t.refusal() == "estop"
    assert t.drive(0.3, 0.0).is_zero and t.look("left").is_zero  # refused while it is on
    t.set_estop(False)
    # Still held (the page repeats the command): refused until the pilot lets go.
    for _ in range(5):
        clock.t += 0.1
        assert t.drive(0.3, 0.0).is_zero and t.refusal() == "let_go_first"
    t.drive(0.0, 0.0)  # let go
    assert t.refusal() is None and t.drive(0.3, 0.0).linear_mps == 0.3
    # A let-go during the e-stop does not count: a press held across the release (or made
    # while it was on) must not drive; the let-go after the release does.
    t.set_estop(True)
    t.stop()
    t.drive(0.0, 0.0)
    assert t.refusal() == "estop"
    t.set_estop(False)
    assert t.refusal() == "let_go_first" and t.drive(0.3, 0.0).is_zero
    t.stop()
    assert t.refusal() is None and t.look("left").angular_rps > 0


def test_disabled_ignores_commands(clock: Clock) -> None:
    t = TeleopState(0.3, clock=clock)
    t.drive(0.3, 0)
    t.disable()
    assert not t.moving and t.drive(0.3, 0).is_zero and t.look("left").is_zero
    t.enable()
    assert t.drive(0.3, 0).linear_mps == 0.3
