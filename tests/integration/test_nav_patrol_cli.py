"""`passeur patrol start|status|stop|history` against a running patrol node over ROS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from passeur.cli import main
from tests.support.ros_harness import StackHarness


@pytest.fixture
def patrol_stack(ros_context: Any, tmp_path: Path) -> Iterator[tuple[StackHarness, Path]]:
    db = tmp_path / "history.sqlite3"
    with StackHarness(ros_context, nodes=["patrol"], profile="external",
                      common={"world": "library"},
                      per_node={"patrol": {"history_db": str(db), "schedule_enabled": False}}) as h:
        yield h, db


def test_cli_drives_the_patrol_node(patrol_stack: tuple[StackHarness, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    h, db = patrol_stack
    assert main(["patrol", "start", "closing_round", "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert "closing_round" in out and "navigating" in out
    assert h.node("patrol").runner.active

    assert main(["patrol", "start", "opening_check", "--timeout", "20"]) == 2
    assert "already running" in capsys.readouterr().err

    assert main(["patrol", "status", "--timeout", "20"]) == 0
    assert "reading_corner" in capsys.readouterr().out

    assert main(["patrol", "stop", "--timeout", "20"]) == 0
    assert "stopped" in capsys.readouterr().out
    assert not h.node("patrol").runner.active

    assert main(["patrol", "start", "no_such_route", "--timeout", "20"]) == 2
    err = capsys.readouterr().err
    assert "unknown route 'no_such_route'" in err and "Traceback" not in err

    assert main(["patrol", "history", "--db", str(db)]) == 0
    assert "closing_round" in capsys.readouterr().out


def test_cli_list_reads_the_shipped_routes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["patrol", "list", "--world", "chateau"]) == 0
    out = capsys.readouterr().out
    assert "closing_round: Closing round / Ronde de fermeture" in out
    assert "[announcement]" in out


def test_status_without_stack_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    assert main(["patrol", "status", "--timeout", "0.5"]) == 2
    assert time.monotonic() - t0 < 15
    err = capsys.readouterr().err
    assert "is the stack running" in err and "Traceback" not in err
