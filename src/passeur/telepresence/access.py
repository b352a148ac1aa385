"""Who may do what: staff password, one-time pilot codes, spectator codes, sessions.

Pure logic (no rclpy, no aiohttp), driven by an injectable monotonic clock so that tests can
move time. Secrets are never stored in clear (codes and tokens are kept as SHA-256 digests,
the staff password as a scrypt hash) and never logged; every comparison of a secret is
constant-time.

- Staff log in with the password whose hash is in the config (`passeur staff-password`).
- Staff issue codes: a *pilot* code is one-time and valid for a window; a *spectator* code may
  be used by several viewers during its window but only ever grants watching.
- One pilot at a time: a pilot code is refused while another pilot session is active (the code
  stays valid, so the visitor can try again once the robot is free).
- Failed attempts are counted per client (e.g. the remote IP) and globally, with separate
  budgets for codes and for the staff password, so that guessing codes never locks staff out:
  - codes: too many failures lock the client out for a while; a global budget (all clients)
    then refuses every code for the rest of the window (slows distributed guessing);
  - staff password: too many failures lock that client out; past a global budget the login is
    only *throttled* (one attempt per `staff_global_interval_s` for everyone), so distributed
    guessing crawls while a staff member retrying a few seconds later still gets in.
- Sessions expire; every session (pilot, spectator, staff) can be extended by its owner
  (WCAG 2.2.1) a bounded number of times, and staff can end a pilot session at any time.
  `cap_s()` is the longest a session can still live (the cookie lasts that long; the server's
  expiry stays authoritative). Listeners hear about every session end (to stop the robot).

Thread-safe: one lock guards all state (the web server's loop and worker threads may call in);
the slow scrypt check runs outside the lock, and session-end listeners are called after the
lock is released.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from passeur.telepresence.exceptions import AccessDenied, TelepresenceConfigError

log = logging.getLogger(__name__)

PILOT = "pilot"
SPECTATOR = "spectator"
STAFF = "staff"
ROLES = (PILOT, SPECTATOR, STAFF)

#: scrypt cost: 2**14 * 8 * 128 bytes = 16 MiB of memory per check, about 50 ms here.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_HASH_PREFIX = "scrypt"

#: Codes are digits only: easy to read aloud, type on a phone keypad or enter by switch.
CODE_DIGITS = 8
#: Shortest validity staff may give a code: under a minute, nobody has the time to type it.
MIN_CODE_WINDOW_S = 60.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None, n: int = SCRYPT_N) -> str:
    """`scrypt$N$r$p$salt$hash`, to paste into config as `staff_password_hash`."""
    if not password:
        raise ValueError("the staff password must not be empty")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P,
                            dklen=32)
    return f"{_HASH_PREFIX}${n}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def parse(cls, encoded: str) -> PasswordHash:
        parts = encoded.strip().split("$")
        if len(parts) != 6 or parts[0] != _HASH_PREFIX:
            raise TelepresenceConfigError(
                "staff_password_hash is not a scrypt hash; generate one with "
                "`passeur staff-password` and paste its output")
        try:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, digest = _unb64(parts[4]), _unb64(parts[5])
        except (ValueError, TypeError) as exc:
            raise TelepresenceConfigError(
                "staff_password_hash is malformed; generate a new one with "
                "`passeur staff-password`") from exc
        if n < 2 or n & (n - 1) or n > 2**20 or not (1 <= r <= 32) or not (1 <= p <= 16) \
                or len(salt) < 8 or len(digest) < 16:
            raise TelepresenceConfigError(
                "staff_password_hash has out-of-range parameters; generate a new one with "
                "`passeur staff-password`")
        return cls(n, r, p, salt, digest)

    def verify(self, password: str) -> bool:
        candidate = hashlib.scrypt(password.encode("utf-8"), salt=self.salt, n=self.n, r=self.r,
                                   p=self.p, dklen=len(self.digest), maxmem=2**26)
        return hmac.compare_digest(candidate, self.digest)


def verify_password(password: str, encoded: str) -> bool:
    return PasswordHash.parse(encoded).verify(password)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def normalize_code(text: str) -> str:
    """Visitors may type `1234 5678` or `1234-5678`: keep the digits only."""
    return "".join(ch for ch in text if ch.isdigit())


@dataclass
class IssuedCode:
    code: str  # returned once to staff, never stored in clear
    role: str
    expires_at: float
    valid_for_s: float


@dataclass
class _CodeRecord:
    digest: bytes
    role: str
    expires_at: float
    used: bool = False


@dataclass
class Session:
    token: str = field(repr=False)
    role: str
    created_at: float
    expires_at: float
    client: str
    extensions: int = 0
    ended: bool = False
    end_reason: str = ""

    @property
    def id(self) -> str:
        """A short public identifier (never the token) for logs and status."""
        return _digest(self.token).hex()[:8]


@dataclass
class _Failures:
    times: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


@dataclass(frozen=True)
class AccessPolicy:
    code_window_s: float = 900.0  # default validity of a new code
    max_code_window_s: float = 24 * 3600.0
    pilot_session_s: float = 900.0  # a pilot session lasts this long, extendable
    pilot_extend_s: float = 600.0
    pilot_max_extensions: int = 20
    spectator_session_s: float = 3600.0
    spectator_extend_s: float = 1800.0
    spectator_max_extensions: int = 8
    staff_session_s: float = 8 * 3600.0
    staff_extend_s: float = 3600.0
    staff_max_extensions: int = 8
    # Codes.
    max_failures: int = 5  # per client within failure_window_s, then lockout
    failure_window_s: float = 600.0
    lockout_s: float = 300.0
    global_max_failures: int = 50  # all clients together within failure_window_s
    # Staff password (a separate budget: guessing codes never locks staff out).
    staff_max_failures: int = 5  # per client within failure_window_s, then staff_lockout_s
    staff_lockout_s: float = 300.0
    staff_global_max_failures: int = 20  # all clients: past this, logins are throttled
    staff_global_interval_s: float = 3.0  # one staff attempt per this, robot-wide, when throttled
    max_live_codes: int = 200
    # A spectator code is shared widely: bound the sessions it can make (memory, and every
    # check scans the live sessions). Each address keeps its newest few: as many as the
    # server's spectator video slots (max_spectators, 8), so that a class behind one NAT loses
    # nothing it could use; past max_live_sessions in all, new spectators are refused ("full")
    # until some leave or expire.
    max_spectator_sessions_per_client: int = 8
    max_live_sessions: int = 500

    def validate(self) -> None:
        for name in ("code_window_s", "max_code_window_s", "pilot_session_s", "pilot_extend_s",
                     "spectator_session_s", "spectator_extend_s", "staff_session_s",
                     "staff_extend_s", "failure_window_s", "lockout_s", "staff_lockout_s",
                     "staff_global_interval_s"):
            if not getattr(self, name) > 0:
                raise TelepresenceConfigError(f"access policy {name} must be > 0")
        for name in ("pilot_max_extensions", "spectator_max_extensions", "staff_max_extensions"):
            if getattr(self, name) < 0:
                raise TelepresenceConfigError(f"access policy {name} must be >= 0")
        if self.max_failures < 1 or self.global_max_failures < self.max_failures:
            raise TelepresenceConfigError(
                "access policy: max_failures must be >= 1 and global_max_failures >= max_failures")
        if self.max_spectator_sessions_per_client < 1 or self.max_live_sessions < 1:
            raise TelepresenceConfigError(
                "access policy: max_spectator_sessions_per_client and max_live_sessions "
                "must be >= 1")
        if self.staff_max_failures < 1 or self.staff_global_max_failures < self.staff_max_failures:
            raise TelepresenceConfigError(
                "access policy: staff_max_failures must be >= 1 and staff_global_max_failures "
                ">= staff_max_failures")

    def session_s(self, role: str) -> float:
        return {PILOT: self.pilot_session_s, SPECTATOR: self.spectator_session_s,
                STAFF: self.staff_session_s}[role]

    def extend_s(self, role: str) -> float:
        return {PILOT: self.pilot_extend_s, SPECTATOR: self.spectator_extend_s,
                STAFF: self.staff_extend_s}[role]

    def max_extensions(self, role: str) -> int:
        return {PILOT: self.pilot_max_extensions, SPECTATOR: self.spectator_max_extensions,
                STAFF: self.staff_max_extensions}[role]


SessionListener = Callable[[Session], None]


class _Budget:
    """Failures of one kind (codes or staff password): per client, and all clients together."""

    def __init__(self, per_client: int, lockout_s: float, global_max: int) -> None:
        self.per_client = per_client
        self.lockout_s = lockout_s
        self.global_max = global_max
        self.clients: dict[str, _Failures] = {}
        self.all: deque[float] = deque()


class AccessManager:
    """All access state of one robot. Thread-safe (one lock; see the module docstring)."""

    def __init__(self, staff_password_hash: str, policy: AccessPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or AccessPolicy()
        self.policy.validate()
        self._staff_hash = PasswordHash.parse(staff_password_hash) if staff_password_hash else None
        self._clock = clock
        self._lock = threading.RLock()
        self._codes: list[_CodeRecord] = []
        self._sessions: dict[bytes, Session] = {}
        p = self.policy
        self._code_budget = _Budget(p.max_failures, p.lockout_s, p.global_max_failures)
        self._staff_budget = _Budget(p.staff_max_failures, p.staff_lockout_s,
                                     p.staff_global_max_failures)
        self._last_staff_attempt = -float("inf")
        self._staff_checking: set[str] = set()  # addresses whose password is being checked
        self._listeners: list[SessionListener] = []

    # -- listeners -------------------------------------------------------------------------
    def on_session_end(self, listener: SessionListener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def _notify(self, ended: list[Session]) -> None:
        """Call the listeners (outside the lock: they may stop the robot, send messages)."""
        if not ended:
            return
        with self._lock:
            listeners = list(self._listeners)
        for session in ended:
            for listener in listeners:
                # A listener bug must not keep the others from stopping the robot.
                try:
                    listener(session)
                except Exception:
                    log.exception("session-end listener failed")

    # -- rate limiting (callers hold the lock) ---------------------------------------------
    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.policy.failure_window_s:
            times.popleft()

    def _check_client(self, budget: _Budget, client: str, now: float) -> None:
        rec = budget.clients.get(client)
        if rec is not None and rec.locked_until > now:
            raise AccessDenied("locked", "too many failed attempts; try again later",
                               retry_after_s=rec.locked_until - now)

    def _check_codes_allowed(self, client: str) -> None:
        now = self._clock()
        budget = self._code_budget
        self._check_client(budget, client, now)
        self._trim(budget.all, now)
        if len(budget.all) >= budget.global_max:
            oldest = budget.all[0]
            raise AccessDenied("busy", "too many failed attempts on this robot; try again later",
                               retry_after_s=oldest + self.policy.failure_window_s - now)

    def _fail(self, budget: _Budget, client: str, reason: str, message: str) -> AccessDenied:
        now = self._clock()
        rec = budget.clients.setdefault(client, _Failures())
        self._trim(rec.times, now)
        rec.times.append(now)
        budget.all.append(now)
        self._trim(budget.all, now)
        log.warning("access refused (%s) for client %s (%d recent failures)", reason,
                    client, len(rec.times))
        if len(rec.times) >= budget.per_client:
            rec.locked_until = now + budget.lockout_s
            rec.times.clear()
            return AccessDenied("locked", "too many failed attempts; try again later",
                                retry_after_s=budget.lockout_s)
        return AccessDenied(reason, message)

    def locked_out(self, client: str) -> bool:
        """Locked out of codes (the staff login has its own budget: staff_locked_out)."""
        with self._lock:
            rec = self._code_budget.clients.get(client)
            return rec is not None and rec.locked_until > self._clock()

    def staff_locked_out(self, client: str) -> bool:
        with self._lock:
            rec = self._staff_budget.clients.get(client)
            return rec is not None and rec.locked_until > self._clock()

    # -- staff -----------------------------------------------------------------------------
    @property
    def staff_enabled(self) -> bool:
        return self._staff_hash is not None

    def begin_staff_login(self, client: str) -> None:
        """Step 1 of a login (fast, under the lock): refuse a locked-out client, a throttled
        robot or a robot without a staff password; else count the attempt for the throttle."""
        with self._lock:
            if self._staff_hash is None:
                raise AccessDenied("disabled", "no staff password is configured "
                                   "(set staff_password_hash; see `passeur staff-password`)")
            now = self._clock()
            budget = self._staff_budget
            self._check_client(budget, client, now)
            # One password check at a time per address: parallel guesses would all pass the
            # lockout check above before the first failure is counted.
            if client in self._staff_checking:
                raise AccessDenied("busy", "a login from this address is being checked; "
                                   "try again in a moment", retry_after_s=1.0)
            self._trim(budget.all, now)
            if len(budget.all) >= budget.global_max:
                wait = self._last_staff_attempt + self.policy.staff_global_interval_s - now
                if wait > 0:
                    raise AccessDenied("busy", "many failed staff logins on this robot; "
                                       "try again in a few seconds", retry_after_s=wait)
            self._last_staff_attempt = now
            self._staff_checking.add(client)

    def check_staff_password(self, password: object) -> bool:
        """Step 2 (slow: scrypt, tens of ms; no state, no lock: run it in a worker thread)."""
        staff_hash = self._staff_hash
        return staff_hash is not None and isinstance(password, str) \
            and len(password) <= 1024 and staff_hash.verify(password)

    def finish_staff_login(self, ok: bool, client: str) -> Session:
        """Step 3 (fast, under the lock): a staff session, or the failure counted."""
        with self._lock:
            self._staff_checking.discard(client)
            if not ok:
                raise self._fail(self._staff_budget, client, "wrong_password", "wrong password")
            self._staff_budget.clients.pop(client, None)
            return self._new_session(STAFF, client)

    def staff_login(self, password: str, client: str) -> Session:
        """The three steps in one call (tests, tools). The web server runs step 2 in a thread;
        whatever happens in it, step 3 must follow (it ends the address's check)."""
        self.begin_staff_login(client)
        ok = False
        try:
            ok = self.check_staff_password(password)
        finally:
            session = self.finish_staff_login(ok, client)
        return session

    # -- codes -----------------------------------------------------------------------------
    def issue_code(self, role: str, valid_for_s: float | None = None) -> IssuedCode:
        if role not in (PILOT, SPECTATOR):
            raise ValueError(f"codes are for '{PILOT}' or '{SPECTATOR}', not '{role}'")
        window = self.policy.code_window_s if valid_for_s is None else float(valid_for_s)
        if not (0 < window <= self.policy.max_code_window_s):
            raise ValueError(f"a code's validity must be between 0 and "
                             f"{self.policy.max_code_window_s:.0f} s")
        with self._lock:
            now = self._clock()
            self._codes = [c for c in self._codes if c.expires_at > now and not c.used]
            if len(self._codes) >= self.policy.max_live_codes:
                raise ValueError("too many live codes; revoke some first")
            while True:
                code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
                digest = _digest(code)
                if not any(hmac.compare_digest(c.digest, digest) for c in self._codes):
                    break
            self._codes.append(_CodeRecord(digest, role, now + window))
            return IssuedCode(code, role, now + window, window)

    def revoke_codes(self, role: str | None = None) -> int:
        """Forget every code (of `role`, or all); returns how many of them could still have
        been used (not expired, not redeemed), so that the desk can say when there was none."""
        with self._lock:
            now = self._clock()
            gone = [c for c in self._codes if role is None or c.role == role]
            self._codes = [c for c in self._codes if role is not None and c.role != role]
            return sum(1 for c in gone if c.expires_at > now and not c.used)

    def live_codes(self) -> list[dict[str, object]]:
        with self._lock:
            now = self._clock()
            return [{"role": c.role, "expires_in_s": round(c.expires_at - now)}
                    for c in self._codes if c.expires_at > now and not c.used]

    def redeem_code(self, code: str, client: str) -> Session:
        """Exchange a code for a session, or raise AccessDenied (reason: wrong_code, expired,
        used, pilot_busy, locked, busy, full). A spectator session may end the same address's
        oldest one (reason "replaced")."""
        replaced: list[Session] = []
        try:
            return self._call_expired_first(lambda: self._redeem_locked(code, client, replaced))
        finally:
            self._notify(replaced)

    def _redeem_locked(self, code: str, client: str, replaced: list[Session]) -> Session:
        budget = self._code_budget
        self._check_codes_allowed(client)
        if not isinstance(code, str) or len(code) > 64:
            raise self._fail(budget, client, "wrong_code", "unknown code")
        digest = _digest(normalize_code(code))
        now = self._clock()
        match: _CodeRecord | None = None
        for record in self._codes:  # compare against all, no early exit
            if hmac.compare_digest(record.digest, digest):
                match = record
        if match is None:
            raise self._fail(budget, client, "wrong_code", "unknown code")
        if match.used:
            raise self._fail(budget, client, "used", "this code was already used")
        if match.expires_at <= now:
            raise self._fail(budget, client, "expired", "this code has expired")
        if match.role == PILOT:
            if self._active_pilot_locked() is not None:
                # Not a guessing failure: the code is right, the robot is busy.
                raise AccessDenied("pilot_busy", "another visitor is driving the robot")
            match.used = True
            budget.clients.pop(client, None)
            return self._new_session(PILOT, client)
        mine = sorted((s for s in self._sessions.values()
                       if s.role == SPECTATOR and s.client == client),
                      key=lambda s: s.created_at)
        for old in mine[:max(0, len(mine) - self.policy.max_spectator_sessions_per_client + 1)]:
            self._end_locked(old, "replaced")
            replaced.append(old)
        if len(self._sessions) >= self.policy.max_live_sessions:
            log.warning("refused a spectator: %d live sessions (max_live_sessions)",
                        len(self._sessions))
            raise AccessDenied("full", "too many people are watching; try again later")
        budget.clients.pop(client, None)
        return self._new_session(SPECTATOR, client)

    def grant(self, role: str, client: str) -> Session:
        """A session without a code, for staff taking over (the caller checked staff rights).
        A pilot grant is refused while another pilot is active: end that one first."""
        def grant_locked() -> Session:
            if role == PILOT and self._active_pilot_locked() is not None:
                raise AccessDenied("pilot_busy", "another visitor is driving the robot")
            return self._new_session(role, client)

        return self._call_expired_first(grant_locked)

    # -- sessions --------------------------------------------------------------------------
    def _new_session(self, role: str, client: str) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), role, now,
                          now + self.policy.session_s(role), client)
        self._sessions[_digest(session.token)] = session
        log.info("%s session %s started", role, session.id)
        return session

    def validate(self, token: str | None, role: str | None = None) -> Session:
        """The live session for `token` (optionally of `role`), else AccessDenied."""
        def validate_locked() -> Session:
            if not token or not isinstance(token, str) or len(token) > 128:
                raise AccessDenied("no_session", "not logged in")
            session = self._sessions.get(_digest(token))
            if session is None or session.ended:
                raise AccessDenied("no_session", "session ended or unknown")
            if role is not None and session.role != role:
                raise AccessDenied("forbidden", f"this needs a {role} session")
            return session

        return self._call_expired_first(validate_locked)

    def _call_expired_first(self, fn: Callable[[], Session]) -> Session:
        """Under the lock: expire what is due, then `fn()`; listeners hear about the expired
        sessions once the lock is released (whether `fn` returned or raised)."""
        ended: list[Session] = []
        try:
            with self._lock:
                ended = self._expire_locked()
                return fn()
        finally:
            self._notify(ended)

    def expire(self) -> list[Session]:
        with self._lock:
            ended = self._expire_locked()
        self._notify(ended)
        return ended

    def _expire_locked(self) -> list[Session]:
        now = self._clock()
        ended = [s for s in self._sessions.values() if s.expires_at <= now and not s.ended]
        for session in ended:
            self._end_locked(session, "expired")
        return ended

    def _active_pilot_locked(self) -> Session | None:
        for session in self._sessions.values():
            if session.role == PILOT and not session.ended:
                return session
        return None

    def active_pilot(self) -> Session | None:
        with self._lock:
            ended = self._expire_locked()
            pilot = self._active_pilot_locked()
        self._notify(ended)
        return pilot

    def sessions(self, role: str | None = None) -> list[Session]:
        with self._lock:
            ended = self._expire_locked()
            found = [s for s in self._sessions.values()
                     if not s.ended and (role is None or s.role == role)]
        self._notify(ended)
        return found

    def extend(self, token: str, role: str | None = None) -> Session:
        """Add the role's extension to a live session (bounded: max_extensions per role)."""
        session = self.validate(token, role)
        with self._lock:
            if session.ended:
                raise AccessDenied("no_session", "session ended or unknown")
            if session.extensions >= self.policy.max_extensions(session.role):
                raise AccessDenied("max_extensions", "this session cannot be extended further")
            session.extensions += 1
            session.expires_at = max(session.expires_at, self._clock()) \
                + self.policy.extend_s(session.role)
            return session

    def extensions_left(self, session: Session) -> int:
        return max(0, self.policy.max_extensions(session.role) - session.extensions)

    def remaining_s(self, session: Session) -> float:
        return max(0.0, session.expires_at - self._clock())

    def cap_s(self, session: Session) -> float:
        """The longest `session` can still live, all its remaining extensions used (what a
        cookie must outlast; the server's own expiry decides)."""
        p = self.policy
        return max(0.0, session.expires_at + self.extensions_left(session)
                   * p.extend_s(session.role) - self._clock())

    def end(self, token: str, reason: str = "ended") -> None:
        with self._lock:
            session = self._sessions.get(_digest(token)) if token else None
            ended = [session] if session is not None and not session.ended else []
            for s in ended:
                self._end_locked(s, reason)
        self._notify(ended)

    def end_pilot(self, reason: str = "ended_by_staff") -> Session | None:
        with self._lock:
            ended = self._expire_locked()
            pilot = self._active_pilot_locked()
            if pilot is not None:
                self._end_locked(pilot, reason)
                ended.append(pilot)
        self._notify(ended)
        return pilot

    def _end_locked(self, session: Session, reason: str) -> None:
        session.ended = True
        session.end_reason = reason
        self._sessions.pop(_digest(session.token), None)
        log.info("%s session %s ended (%s)", session.role, session.id, reason)
