"""`passeur patrol ...`: history without ROS (the no-stack error is an integration test: it
starts ROS and waits for an answer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from passeur.cli import main
from passeur.navigation.patrol_store import PatrolStore


def test_history_prints_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "h.sqlite3"
    store = PatrolStore(db)
    run = store.start_run("closing_round", "library", "cli")
    store.record_visit(run, 1, 0, "entrance", "reached", 1)
    store.record_visit(run, 1, 1, "stacks", "skipped", 3, "path blocked")
    store.finish_run(run, "completed_with_skips", "1 waypoint(s) skipped")
    store.close()
    assert main(["patrol", "history", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "closing_round" in out and "completed_with_skips" in out
    assert "stacks: skipped" in out and "3 tries" in out and "path blocked" in out


def test_history_without_database_is_a_clear_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["patrol", "history", "--db", str(tmp_path / "none.sqlite3")]) == 2
    err = capsys.readouterr().err
    assert "no patrol history yet" in err and "Traceback" not in err


@pytest.mark.parametrize("content, problem", [
    (b"this is not a database at all" * 100, "not a database"),
    (None, "not a patrol history"),  # another program's SQLite file (or the reading progress)
])
def test_history_of_a_wrong_or_corrupt_file_is_a_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None,
        problem: str) -> None:
    import sqlite3

    db = tmp_path / "h.sqlite3"
    if content is None:
        other = sqlite3.connect(db)
        other.execute("CREATE TABLE readers (name TEXT)")
        other.commit()
        other.close()
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    assert main(["patrol", "history", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert problem in err and str(db) in err and "Traceback" not in err
    assert db.read_bytes() == before  # left untouched


def test_status_details_count_waypoints_from_one(capsys: pytest.CaptureFixture[str]) -> None:
    """`passeur patrol status` printed "waypoint 1/6" then "waypoint_index=0": a person reads
    one number for one waypoint, counted from 1 (laps and attempts too)."""
    from passeur.navigation.commands import _print_status

    status = {"state": "navigating", "route": "closing_round", "place": "entrance",
              "waypoint_index": "0", "waypoint_count": "6", "lap": "1", "laps": "2",
              "attempt": "0", "skipped": "0", "outcome": "", "reason": ""}
    _print_status(status, "patrol 'closing_round': navigating entrance (waypoint 1/6, lap 1/2)")
    details = capsys.readouterr().out.splitlines()[1]
    assert details == ("  route=closing_round, state=navigating, place=entrance, waypoint=1/6, "
                       "lap=1/2, attempt=1, skipped=0")
    _print_status({**status, "waypoint_index": "5", "attempt": "2"}, "")
    details = capsys.readouterr().out.splitlines()[1]
    assert "waypoint=6/6" in details and "attempt=3" in details
    assert "waypoint_index" not in details
