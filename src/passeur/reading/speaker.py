"""Who is using the robot's voice right now: the speaker floor. Pure logic, no I/O.

Robot speech reaches people two ways: the reading node plays it on the robot's speaker (its
speech thread: tutor phrases, patrol announcements, "Read to me" when `play_on_speaker`), or
a reader page plays it on a tablet (the page says when playback starts and ends). Each is a
*hold* on the floor with an owner and a deadline (a page that vanishes without saying "end"
releases the floor when its audio would have finished). While any hold is active:

- every session's microphone is gated (the robot's own voice is never read as the child's);
- `speech/speaking` is true (other areas, e.g. patrols, wait before talking);
- the speech thread waits before playing anything else, so nothing talks over a page read
  aloud.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from passeur.reading.exceptions import ReadingError

#: A page hold lasts at most its audio's duration plus this (a page closed mid-playback).
HOLD_SLACK_S = 1.0


class SpeakerFloor:
    def __init__(self, on_change: Callable[[bool], None] | None = None, *,
                 max_holds: int = 16, clock: Callable[[], float] = time.monotonic) -> None:
        self._cond = threading.Condition()
        self._notify = threading.Lock()  # on_change calls, in order
        self._holds: dict[str, float] = {}  # owner -> deadline (clock)
        self._busy = False
        self._on_change = on_change
        self._max_holds = max_holds
        self._clock = clock

    def acquire(self, owner: str, max_s: float) -> None:
        """`owner` speaks for at most `max_s` seconds (renewed if it already holds it)."""
        if not 0 < max_s <= 3600:
            raise ReadingError(f"speech duration {max_s} s out of range (0, 3600]")
        with self._cond:
            self._expire_locked()
            if owner not in self._holds and len(self._holds) >= self._max_holds:
                raise ReadingError("too many robot speech playbacks at once")
            self._holds[owner] = self._clock() + max_s
        self._changed()

    def release(self, owner: str) -> bool:
        """End `owner`'s hold; False if it held nothing (already ended or expired)."""
        with self._cond:
            held = self._holds.pop(owner, None) is not None
            self._cond.notify_all()
        self._changed()
        return held

    def owners(self) -> list[str]:
        with self._cond:
            self._expire_locked()
            return sorted(self._holds)

    @property
    def busy(self) -> bool:
        self.expire()
        with self._cond:
            return bool(self._holds)

    def expire(self) -> None:
        """Drop holds past their deadline (call now and then: the speech thread does)."""
        with self._cond:
            self._expire_locked()
        self._changed()

    def wait_free(self, timeout_s: float, ignore: str | None = None) -> bool:
        """Wait until nobody (but `ignore`) holds the floor; False on timeout."""
        deadline = self._clock() + timeout_s
        with self._cond:
            while True:
                self._expire_locked()
                others = [o for o in self._holds if o != ignore]
                if not others:
                    return True
                now = self._clock()
                if now >= deadline:
                    return False
                nearest = min(self._holds[o] for o in others)
                self._cond.wait(timeout=max(0.01, min(deadline, nearest) - now))

    def _expire_locked(self) -> None:
        now = self._clock()
        for owner in [o for o, d in self._holds.items() if d <= now]:
            del self._holds[owner]
            self._cond.notify_all()

    def _changed(self) -> None:
        with self._notify:
            with self._cond:
                busy = bool(self._holds)
                if busy == self._busy:
                    return
                self._busy = busy
            if self._on_change is not None:
                self._on_change(busy)
