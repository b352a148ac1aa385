"""History of patrol runs in SQLite (WAL): what staff see in `passeur patrol history`.

One row per run (route, start, end, outcome, reason) and one per waypoint visit (lap, index,
place, reached/skipped/failed/interrupted, time, attempts, reason). Safe to use from several
threads of one process (one connection behind a lock) and from another process reading at the
same time (the CLI), thanks to WAL.

`HistoryWriter` is what the patrol node records through: writes are queued and done in order
on a thread of their own, because a commit is not bounded (it syncs to disk, slow on an SD
card, and waits up to the busy timeout when another process holds the write lock) and must
not run inside a ROS callback. Times are taken when the event happens, not when it is written.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from passeur.navigation.exceptions import NavConfigError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    route TEXT NOT NULL,
    world TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    outcome TEXT,            -- running, completed, completed_with_skips, aborted, stopped
    reason TEXT NOT NULL DEFAULT '',
    trigger TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS visits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    lap INTEGER NOT NULL,
    waypoint_index INTEGER NOT NULL,
    place TEXT NOT NULL,
    outcome TEXT NOT NULL,   -- reached, skipped, failed, interrupted
    at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS visits_run ON visits(run_id);
"""


def default_history_path() -> Path:
    """$PASSEUR_DATA_DIR/patrols.sqlite3, else ~/.local/share/passeur/patrols.sqlite3."""
    base = os.environ.get("PASSEUR_DATA_DIR")
    if base:
        return Path(base) / "patrols.sqlite3"
    xdg = os.environ.get("XDG_DATA_HOME")
    root = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return root / "passeur" / "patrols.sqlite3"


@dataclass
class Visit:
    lap: int
    waypoint_index: int
    place: str
    outcome: str
    at: float
    attempts: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"lap": self.lap, "index": self.waypoint_index, "place": self.place,
                "outcome": self.outcome, "at": self.at, "attempts": self.attempts,
                "reason": self.reason}


@dataclass
class Run:
    id: int
    route: str
    world: str
    started_at: float
    ended_at: float | None
    outcome: str
    reason: str
    trigger: str
    visits: list[Visit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "route": self.route, "world": self.world,
                "started_at": self.started_at, "ended_at": self.ended_at,
                "outcome": self.outcome, "reason": self.reason, "trigger": self.trigger,
                "visits": [v.to_json() for v in self.visits]}


@dataclass
class RunHandle:
    """A run recorded through a HistoryWriter: its database id once the row is written."""

    id: int | None = None


#: A run as the recorders know it: a database id (PatrolStore) or a handle (HistoryWriter).
RunRef = int | RunHandle


def _run_id(run: RunRef) -> int | None:
    return run.id if isinstance(run, RunHandle) else run


class PatrolHistory(Protocol):
    """What the patrol runner records through (PatrolStore, or HistoryWriter in the node)."""

    def start_run(self, route: str, world: str, trigger: str = "",
                  at: float | None = None) -> RunRef: ...

    def record_visit(self, run: RunRef, lap: int, index: int, place: str, outcome: str,
                     attempts: int, reason: str = "", at: float | None = None) -> None: ...

    def finish_run(self, run: RunRef, outcome: str, reason: str = "",
                   at: float | None = None) -> None: ...


class PatrolStore:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if read_only:
                if not self.path.exists():
                    raise NavConfigError("no patrol history yet (no patrol has run here)", self.path)
                uri = f"file:{self.path}?mode=ro"
                self._db: sqlite3.Connection | None = sqlite3.connect(
                    uri, uri=True, check_same_thread=False, timeout=5.0)
                # SQLite reads the file lazily: find a corrupt or foreign file here, not in
                # the first query.
                tables = {row[0] for row in self._db.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
                if not {"runs", "visits"} <= tables:
                    self._db.close()
                    raise NavConfigError("not a patrol history (no runs table); pass the "
                                         "patrols.sqlite3 the patrol node writes", self.path)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=5.0)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.executescript(SCHEMA)
                self._db.commit()
        except sqlite3.Error as exc:
            raise NavConfigError(f"cannot open patrol history database: {exc}", self.path) from None
        except OSError as exc:
            raise NavConfigError(f"cannot create patrol history folder: {exc.strerror}",
                                 self.path) from None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("patrol store is closed")
        return self._db

    def start_run(self, route: str, world: str, trigger: str = "", at: float | None = None) -> int:
        with self._lock:
            db = self._conn()
            cur = db.execute(
                "INSERT INTO runs(route, world, started_at, outcome, trigger) VALUES (?,?,?,?,?)",
                (route, world, time.time() if at is None else at, "running", trigger))
            db.commit()
            return int(cur.lastrowid or 0)

    def record_visit(self, run: RunRef, lap: int, index: int, place: str, outcome: str,
                     attempts: int, reason: str = "", at: float | None = None) -> None:
        run_id = _run_id(run)
        if run_id is None:
            raise RuntimeError("the run was never recorded (its start failed to write)")
        with self._lock:
            db = self._conn()
            db.execute(
                "INSERT INTO visits(run_id, lap, waypoint_index, place, outcome, at, attempts, reason)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (run_id, lap, index, place, outcome, time.time() if at is None else at,
                 attempts, reason))
            db.commit()

    def finish_run(self, run: RunRef, outcome: str, reason: str = "",
                   at: float | None = None) -> None:
        run_id = _run_id(run)
        if run_id is None:
            raise RuntimeError("the run was never recorded (its start failed to write)")
        with self._lock:
            db = self._conn()
            db.execute("UPDATE runs SET ended_at=?, outcome=?, reason=? WHERE id=?",
                       (time.time() if at is None else at, outcome, reason, run_id))
            db.commit()

    def mark_interrupted(self) -> int:
        """Runs left 'running' by a crash: mark them so history does not lie."""
        with self._lock:
            db = self._conn()
            cur = db.execute("UPDATE runs SET outcome='interrupted', reason='the stack stopped "
                             "during the run', ended_at=started_at WHERE outcome='running'")
            db.commit()
            return cur.rowcount

    def runs(self, limit: int = 20, route: str | None = None) -> list[Run]:
        with self._lock:
            db = self._conn()
            if route:
                rows = db.execute("SELECT id, route, world, started_at, ended_at, outcome, reason, "
                                  "trigger FROM runs WHERE route=? ORDER BY id DESC LIMIT ?",
                                  (route, limit)).fetchall()
            else:
                rows = db.execute("SELECT id, route, world, started_at, ended_at, outcome, reason, "
                                  "trigger FROM runs ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
            runs = [Run(int(r[0]), r[1], r[2], float(r[3]), None if r[4] is None else float(r[4]),
                        r[5] or "", r[6] or "", r[7] or "") for r in rows]
            for run in runs:
                vrows = db.execute("SELECT lap, waypoint_index, place, outcome, at, attempts, reason "
                                   "FROM visits WHERE run_id=? ORDER BY id", (run.id,)).fetchall()
                run.visits = [Visit(int(v[0]), int(v[1]), v[2], v[3], float(v[4]), int(v[5]),
                                    v[6] or "") for v in vrows]
            return runs

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


class HistoryWriter:
    """PatrolStore's writes, queued and done in order on a thread of its own (see module
    docstring). Same recording API as PatrolStore; `start_run` returns a RunHandle whose id is
    set once the row is written. `close()` writes what is queued first; safe to call twice."""

    def __init__(self, store: PatrolStore, close_timeout_s: float = 5.0) -> None:
        self.store = store
        self.close_timeout_s = close_timeout_s
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="patrol-history", daemon=True)
        self._thread.start()

    def start_run(self, route: str, world: str, trigger: str = "",
                  at: float | None = None) -> RunHandle:
        handle = RunHandle()
        when = time.time() if at is None else at

        def write() -> None:
            handle.id = self.store.start_run(route, world, trigger, when)

        self._put(write)
        return handle

    def record_visit(self, run: RunRef, lap: int, index: int, place: str, outcome: str,
                     attempts: int, reason: str = "", at: float | None = None) -> None:
        when = time.time() if at is None else at
        self._put(lambda: self.store.record_visit(run, lap, index, place, outcome, attempts,
                                                  reason, when))

    def finish_run(self, run: RunRef, outcome: str, reason: str = "",
                   at: float | None = None) -> None:
        when = time.time() if at is None else at
        self._put(lambda: self.store.finish_run(run, outcome, reason, when))

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued so far is written (readers call this first, off the
        executor: the web API's worker threads, tests). False if it took longer."""
        if self._closed:
            return True
        done = threading.Event()
        self._put(done.set)
        return done.wait(timeout_s)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=self.close_timeout_s)
        if self._thread.is_alive():
            log.error("patrol history: writes still pending after %.0f s at shutdown",
                      self.close_timeout_s)

    def _put(self, job: Callable[[], None]) -> None:
        if self._closed:
            log.warning("patrol history: write after close ignored")
            return
        self._queue.put(job)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                job()
            except (sqlite3.Error, RuntimeError) as exc:
                # One lost row must not stop the history (or the patrol): say so and go on.
                log.error("patrol history: a write failed: %s", exc)
