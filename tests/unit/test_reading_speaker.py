"""The speaker floor: holds with deadlines, change callbacks, waiting for the floor."""

from __future__ import annotations

import pytest

from passeur.reading.exceptions import ReadingError
from passeur.reading.speaker import SpeakerFloor


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_holds_gate_until_released_or_expired() -> None:
    clock = Clock()
    changes: list[bool] = []
    floor = SpeakerFloor(changes.append, clock=clock)
    floor.acquire("page:a1", 5.0)
    floor.acquire("robot", 2.0)
    assert floor.busy and changes == [True]
    assert floor.release("robot") and floor.busy
    clock.t = 5.5  # the page never said "end": its hold expires with its audio
    floor.expire()
    assert not floor.busy and changes == [True, False]
    assert not floor.release("page:a1")
    assert floor.wait_free(0.0)
    floor.acquire("page:a2", 1.0)
    assert not floor.wait_free(0.0) and floor.wait_free(0.0, ignore="page:a2")
    with pytest.raises(ReadingError, match="out of range"):
        floor.acquire("page:x", 0)


def test_page_holds_are_bounded() -> None:
    floor = SpeakerFloor(max_holds=2)
    floor.acquire("page:1", 10)
    floor.acquire("page:2", 10)
    floor.acquire("page:2", 10)  # renewing is fine
    with pytest.raises(ReadingError, match="too many"):
        floor.acquire("page:3", 10)
