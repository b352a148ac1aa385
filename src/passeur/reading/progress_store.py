"""Reading progress per pseudonymous reader, in SQLite (WAL).

Tables: readers, sessions (one sitting with one book), pages (one page read: WCPM, accuracy,
counts) and word_outcomes (each page word: outcome, what was heard, hesitation, told...).
Audio is NOT stored unless the store was opened with `store_audio=True` (reading node
parameter `store_audio`, off by default): children's voices stay out of the database.

A database file that is not a valid SQLite database, or fails its integrity check, raises
ProgressStoreCorrupt naming the file; the file is never modified, moved or overwritten. Other
failures say what they are (locked by another program, read-only, disk full, cannot be
opened, closed store), so the librarian knows what to fix.

`read_only=True` (`passeur readers list/report/export`) reads an existing database without
writing anything, also on read-only media; writing to a database that cannot be written
raises ProgressStoreReadOnly when it is opened.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import threading
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from passeur.reading.alignment import AlignmentState, PageScore
from passeur.reading.exceptions import (
    ProgressStoreBusy,
    ProgressStoreClosed,
    ProgressStoreCorrupt,
    ProgressStoreError,
    ProgressStoreFull,
    ProgressStoreReadOnly,
    ProgressStoreUnavailable,
    ReaderNameError,
    RecordingNotSaved,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS readers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, reader_id INTEGER NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    book_id TEXT NOT NULL, mode TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL);
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY, session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    page INTEGER NOT NULL, lang TEXT NOT NULL, words_total INTEGER NOT NULL,
    words_correct INTEGER NOT NULL, accuracy REAL NOT NULL, wcpm REAL NOT NULL,
    reading_time_s REAL NOT NULL, miscues INTEGER NOT NULL, hard_words TEXT NOT NULL,
    audio_path TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS word_outcomes (
    id INTEGER PRIMARY KEY, page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    word_index INTEGER NOT NULL, token_index INTEGER NOT NULL, word TEXT NOT NULL,
    outcome TEXT NOT NULL, heard TEXT, hesitation INTEGER NOT NULL, forgiven TEXT,
    told INTEGER NOT NULL, start_s REAL, end_s REAL);
CREATE TABLE IF NOT EXISTS voice_adaptation (
    reader_id INTEGER NOT NULL REFERENCES readers(id) ON DELETE CASCADE,
    model TEXT NOT NULL, stats BLOB NOT NULL, frames INTEGER NOT NULL, pages INTEGER NOT NULL,
    updated_at REAL NOT NULL, PRIMARY KEY (reader_id, model));
CREATE INDEX IF NOT EXISTS pages_session ON pages(session_id);
CREATE INDEX IF NOT EXISTS words_page ON word_outcomes(page_id);
"""

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[\w][\w .-]{0,39}$", re.UNICODE)


def check_reader_name(name: str) -> str:
    # One form for 'é' however it was typed or pasted (NFD "e" + accent, from a file name or
    # some keyboards, was refused as not a letter, and would be another reader than NFC).
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not _NAME.match(name):
        raise ReaderNameError(f"reader name '{name}' is not valid: use a pseudonym of 1-40 "
                                 "letters, digits, spaces, '.', '-' or '_'")
    return name


#: SQLite primary result codes (sqlite3.h) -> what went wrong, for the librarian.
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = (
    10, 11, 13, 14, 26)


class ProgressStore:
    """Readers' progress in one SQLite file. Methods raise ProgressStoreError subclasses
    that say what happened (corrupt, locked, read-only, full, unavailable, closed) and what
    to do; a corrupt file is never modified. Thread-safe (one connection, one lock)."""

    def __init__(self, path: Path, *, store_audio: bool = False,
                 busy_timeout_s: float = 10.0, read_only: bool = False) -> None:
        """`read_only`: only read an existing database (`passeur readers list/report/export`),
        which then works on read-only media (a backup on a locked USB stick, a read-only
        mount): nothing is created, no journal mode or table is set up, no rights changed."""
        self.path = Path(path)
        self.store_audio = store_audio
        self.busy_timeout_s = busy_timeout_s
        self.read_only = read_only
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        existed = self.path.exists()
        if existed and self.path.is_file() and self.path.stat().st_size > 0:
            self._check_header()
        if read_only:
            self._db = self._open_read_only(existed)
            return
        if existed and not self._writable():
            raise ProgressStoreReadOnly(
                f"{self.path}: the progress database cannot be written (read-only file, "
                "folder or media). Reading it works (passeur readers list, report, export); "
                "to change it, make the file and its folder writable for this user, or copy "
                "them to a writable place and use that copy (--db, or the reading node's "
                "'progress_db').")
        try:
            # Children's reading (and voices, with store_audio): a new folder and file are the
            # owner's alone, whatever the umask (SQLite gives the WAL the file's permissions).
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not existed:
                with contextlib.suppress(FileExistsError):
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise ProgressStoreUnavailable(
                f"{self.path}: cannot create the progress database or its folder ({exc}); "
                "set the reading node's 'progress_db' to a writable place") from exc
        try:
            db = sqlite3.connect(str(self.path), check_same_thread=False,
                                 isolation_level=None, timeout=busy_timeout_s)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        try:
            self._prepare(db, existed)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            db.close()
            raise self._error(exc) from exc
        self._db = db
        if existed:  # a corrupt file is left untouched: only one that opened
            self._make_private()

    def _writable(self) -> bool:
        """Whether SQLite can write the existing database: the file, and its folder unless
        the write-ahead log is there already (SQLite creates it beside the file). os.access
        also sees read-only media (EROFS), where even root cannot write."""
        if not os.access(self.path, os.W_OK):
            return False
        return Path(f"{self.path}-wal").exists() or os.access(self.path.parent, os.W_OK)

    def _prepare(self, db: sqlite3.Connection, existed: bool) -> None:
        """Connection settings, and the integrity check of a database that was there."""
        db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, not just unlinked (privacy: a deleted
        # reader leaves nothing recoverable in the file).
        db.execute("PRAGMA secure_delete=ON")
        if existed:
            row = db.execute("PRAGMA quick_check").fetchone()
            if not row or row[0] != "ok":
                db.close()
                self._corrupt(f"integrity check: {row[0] if row else '?'}")

    def _open_read_only(self, existed: bool) -> sqlite3.Connection:
        if not existed:
            raise ProgressStoreUnavailable(
                f"{self.path}: the progress database does not exist (no reading recorded "
                "there)")
        uri = f"{self.path.absolute().as_uri()}?mode=ro"
        try:
            return self._connect_read_only(uri)
        except sqlite3.Error as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if not (isinstance(code, int) and code & 0xFF == _SQLITE_CANTOPEN):
                raise self._error(exc) from exc
        # A WAL database needs its shared-memory file (-shm): on read-only media SQLite can
        # neither create it nor open the database without it. With no write-ahead log
        # beside the file (it was closed cleanly), the file alone holds every reading and
        # nothing can change it there: it is opened as immutable. With a log, its readings
        # would be missed: that is an error instead.
        if Path(f"{self.path}-wal").exists():
            raise ProgressStoreUnavailable(
                f"{self.path}: the progress database has a write-ahead log ({self.path.name}"
                "-wal) that cannot be read from here (read-only folder or media): copy the "
                "file with its -wal and -shm files to a writable place and use that copy "
                "(--db)")
        try:
            return self._connect_read_only(uri + "&immutable=1")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _connect_read_only(self, uri: str) -> sqlite3.Connection:
        db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None,
                             timeout=self.busy_timeout_s)
        try:
            self._prepare(db, existed=True)
            tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                "name = 'readers'").fetchone()[0]
        except sqlite3.Error:
            db.close()
            raise
        if not tables:
            db.close()
            raise ProgressStoreUnavailable(
                f"{self.path}: no reading progress in this database (no readers table): is it "
                "the reading node's progress_db?")
        return db

    def _check_header(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                header = fh.read(16)
        except OSError as exc:
            raise ProgressStoreUnavailable(f"{self.path}: cannot read the progress database "
                                           f"({exc})") from exc
        if header != b"SQLite format 3\x00":
            self._corrupt("not an SQLite database")

    def _make_private(self) -> None:
        """A database made before 2026-12-07 (file, write-ahead log, `audio/` folder of
        recordings) was left readable by every account on the robot: it becomes the owner's
        alone, as a new one is. The folder holding the database is left as it is (it may be
        a shared one)."""
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"),
                     self.path.parent / "audio"):
            try:
                mode = stat.S_IMODE(path.lstat().st_mode)
                if mode & 0o077 and not path.is_symlink():
                    os.chmod(path, mode & ~0o077)
                    log.warning("%s was readable by other accounts (%o): now by its owner "
                                "only (%o)", path, mode, mode & ~0o077)
            except FileNotFoundError:
                continue
            except OSError as exc:  # not the owner: say so, the data still opens
                log.warning("%s is readable by other accounts and its rights cannot be "
                            "changed (%s): make it readable by the robot's user only (chmod "
                            "go-rwx)", path, exc.strerror)

    def _corrupt_error(self, why: object) -> ProgressStoreCorrupt:
        return ProgressStoreCorrupt(
            f"{self.path}: the progress database is corrupt ({why}). It was left untouched: "
            f"move it away (e.g. to {self.path.name}.corrupt) to start a new one, or restore a "
            "backup.")

    def _corrupt(self, why: object) -> None:
        raise self._corrupt_error(why)

    def _error(self, exc: sqlite3.Error) -> ProgressStoreError:
        """The ProgressStoreError that says what this SQLite error means for the user."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        text = str(exc).lower()
        where = f"{self.path}: "
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or (
                primary is None and ("malformed" in text or "not a database" in text)):
            return self._corrupt_error(exc)
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or (primary is None and "locked" in text):
            return ProgressStoreBusy(
                where + f"the progress database is locked by another program (waited "
                f"{self.busy_timeout_s:g} s). Nothing was changed: close the other program "
                "(e.g. an open sqlite3 shell or a backup tool) and try again.")
        if primary == _SQLITE_READONLY or (primary is None and "readonly" in text):
            return ProgressStoreReadOnly(
                where + "the progress database cannot be written (read-only file, folder or "
                "disk). Make it writable for the robot's user, or set 'progress_db' elsewhere.")
        if primary == _SQLITE_FULL or (primary is None and "full" in text):
            return ProgressStoreFull(
                where + "the disk holding the progress database is full. Free some space; "
                "nothing already saved was lost.")
        if primary in (_SQLITE_CANTOPEN, _SQLITE_PERM, _SQLITE_IOERR) or (
                primary is None and "unable to open" in text):
            return ProgressStoreUnavailable(
                where + f"the progress database cannot be opened or read ({exc}): check that "
                "the file and its folder exist and are readable and writable by the robot's "
                "user, and that the disk works.")
        return ProgressStoreError(where + f"progress database error ({exc})")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise ProgressStoreClosed(f"{self.path}: the progress store is closed")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _q(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            db = self._conn()
            try:
                cur = db.execute(sql, args)
                return list(cur.fetchall())
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    # -- writing -----------------------------------------------------------------------------
    def reader_id(self, name: str, create: bool = True) -> int:
        name = check_reader_name(name)
        rows = self._q("SELECT id FROM readers WHERE name = ?", (name,))
        if rows:
            return int(rows[0][0])
        if not create:
            raise ProgressStoreError(f"no reader named '{name}' in {self.path}")
        self._q("INSERT INTO readers(name, created_at) VALUES (?, ?)", (name, time.time()))
        return int(self._q("SELECT id FROM readers WHERE name = ?", (name,))[0][0])

    def start_session(self, reader: str, book_id: str, mode: str = "i_read") -> int:
        rid = self.reader_id(reader)
        self._q("INSERT INTO sessions(reader_id, book_id, mode, started_at) VALUES (?, ?, ?, ?)",
                (rid, book_id, mode, time.time()))
        return int(self._q("SELECT max(id) FROM sessions WHERE reader_id = ?", (rid,))[0][0])

    def end_session(self, session_id: int) -> None:
        self._q("UPDATE sessions SET ended_at = ? WHERE id = ?", (time.time(), session_id))

    def record_page(self, session_id: int, page: int, lang: str, state: AlignmentState,
                    score: PageScore, audio_wav: bytes | None = None) -> int:
        now = time.time()
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                page_id = self._insert_page(db, session_id, page, lang, state, score, now)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise self._error(exc) from exc
        self._save_audio(session_id, page_id, page, audio_wav)
        return page_id

    def record_reading(self, reader: str, book_id: str, mode: str, page: int, lang: str,
                       state: AlignmentState, score: PageScore, audio_wav: bytes | None = None
                       ) -> int:
        """One page read in one sitting, all or nothing (a failed write can be retried
        without leaving a half-recorded session). Returns the session id."""
        name = check_reader_name(reader)
        now = time.time()
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT OR IGNORE INTO readers(name, created_at) VALUES (?, ?)",
                           (name, now))
                rid = int(db.execute("SELECT id FROM readers WHERE name = ?",
                                     (name,)).fetchone()[0])
                cur = db.execute("INSERT INTO sessions(reader_id, book_id, mode, started_at, "
                                 "ended_at) VALUES (?, ?, ?, ?, ?)",
                                 (rid, book_id, mode, now - score.reading_time_s, now))
                sid = int(cur.lastrowid or 0)
                page_id = self._insert_page(db, sid, page, lang, state, score, now)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise self._error(exc) from exc
        self._save_audio(sid, page_id, page, audio_wav)
        return sid

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left to roll back (SQLite already did, e.g. disk full)

    @staticmethod
    def _insert_page(db: sqlite3.Connection, session_id: int, page: int, lang: str,
                     state: AlignmentState, score: PageScore, now: float) -> int:
        cur = db.execute(
            "INSERT INTO pages(session_id, page, lang, words_total, words_correct, "
            "accuracy, wcpm, reading_time_s, miscues, hard_words, created_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (session_id, page, lang, score.words_total, score.words_correct,
             score.accuracy, score.wcpm, score.reading_time_s, score.miscues,
             json.dumps(score.hard_words, ensure_ascii=False), now))
        page_id = int(cur.lastrowid or 0)
        db.executemany(
            "INSERT INTO word_outcomes(page_id, word_index, token_index, word, outcome,"
            " heard, hesitation, forgiven, told, start_s, end_s) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(page_id, w.index, w.token, w.expected, w.outcome, w.heard,
              int(w.hesitation), w.forgiven, int(w.told), w.start_s, w.end_s)
             for w in state.words])
        return page_id

    def _save_audio(self, session_id: int, page_id: int, page: int,
                    audio_wav: bytes | None) -> None:
        if audio_wav is None or not self.store_audio:
            return
        folder = self.path.parent / "audio" / str(session_id)
        try:
            # Children's voices are the owner's alone, as the database is, whatever the umask
            # and the rights of the folder the database was put in.
            folder.parent.mkdir(mode=0o700, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
            audio_path = folder / f"page-{page_id}.wav"
            fd = os.open(audio_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(audio_wav)
        except OSError as exc:
            raise RecordingNotSaved(f"{folder}: the recording could not be saved ({exc}); the "
                                    "scores were saved") from exc
        self._q("UPDATE pages SET audio_path = ? WHERE id = ?", (str(audio_path), page_id))

    def last_page(self, reader: str, book_id: str, page: int) -> dict[str, Any] | None:
        """The reader's previous reading of this page done alone ({"wcpm", "accuracy",
        "hard_words", "created_at"}), or None. Not a "Together" one: repeating after the robot
        is no speed to compare with ("faster than last time")."""
        echo = ", ".join("?" * len(ECHO_MODES))
        rows = self._q(
            "SELECT p.wcpm, p.accuracy, p.hard_words, p.created_at FROM pages p JOIN sessions s"
            " ON p.session_id = s.id JOIN readers r ON s.reader_id = r.id WHERE r.name = ? AND "
            f"s.book_id = ? AND p.page = ? AND s.mode NOT IN ({echo}) "
            "ORDER BY p.created_at DESC, p.id DESC LIMIT 1",
            (check_reader_name(reader), book_id, page, *ECHO_MODES))
        if not rows:
            return None
        wcpm, accuracy, hard, created = rows[0]
        return {"wcpm": float(wcpm), "accuracy": float(accuracy),
                "hard_words": json.loads(hard), "created_at": float(created)}

    # -- reading -----------------------------------------------------------------------------
    # -- speaker adaptation (adaptation.py) -----------------------------------------------------
    def adaptation(self, name: str, model: str) -> bytes | None:
        """The reader's speaker-adaptation statistics for `model`, or None (no such reader,
        or none collected yet)."""
        if not self._has_adaptation_table():
            return None
        rows = self._q("SELECT v.stats FROM voice_adaptation v JOIN readers r ON "
                       "r.id = v.reader_id WHERE r.name = ? AND v.model = ?",
                       (check_reader_name(name), model))
        return bytes(rows[0][0]) if rows else None

    def _has_adaptation_table(self) -> bool:
        """False for a database made before adaptation existed and opened read-only (nothing
        is created then)."""
        return bool(self._q("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                            "name = 'voice_adaptation'")[0][0])

    def update_adaptation(self, name: str, model: str,
                          update: Callable[[bytes | None], tuple[bytes, int]]) -> bool:
        """Replace the reader's statistics for `model` by `update(old)` -> (new, frames), in
        one transaction (two pages finishing at once both count). A reader who is not in
        the store (deleted meanwhile) is not created again: returns False."""
        name = check_reader_name(name)
        with self._lock:
            db = self._conn()
            try:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute("SELECT id FROM readers WHERE name = ?", (name,)).fetchone()
                if row is None:
                    db.execute("ROLLBACK")
                    return False
                rid = int(row[0])
                old = db.execute("SELECT stats FROM voice_adaptation WHERE reader_id = ? AND "
                                 "model = ?", (rid, model)).fetchone()
                stats, frames = update(bytes(old[0]) if old else None)
                db.execute("INSERT INTO voice_adaptation(reader_id, model, stats, frames, "
                           "pages, updated_at) VALUES (?, ?, ?, ?, 1, ?) ON CONFLICT(reader_id,"
                           " model) DO UPDATE SET stats = excluded.stats, frames = "
                           "excluded.frames, pages = pages + 1, updated_at = excluded.updated_at",
                           (rid, model, stats, frames, time.time()))
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(db)
                raise self._error(exc) from exc
            except BaseException:
                self._rollback(db)
                raise
        return True

    def readers(self) -> list[str]:
        return [str(r[0]) for r in self._q("SELECT name FROM readers ORDER BY name")]

    def export(self, name: str) -> dict[str, Any]:
        rid = self.reader_id(name, create=False)
        out: dict[str, Any] = {"reader": check_reader_name(name), "sessions": []}
        for s in self._q("SELECT id, book_id, mode, started_at, ended_at FROM sessions "
                         "WHERE reader_id = ? ORDER BY started_at, id", (rid,)):
            session: dict[str, Any] = {"id": s[0], "book": s[1], "mode": s[2],
                                       "started_at": s[3], "ended_at": s[4], "pages": []}
            for p in self._q("SELECT id, page, lang, words_total, words_correct, accuracy, wcpm,"
                             " reading_time_s, miscues, hard_words, created_at, audio_path "
                             "FROM pages WHERE session_id = ? ORDER BY id", (s[0],)):
                words = [{"index": w[0], "token": w[1], "word": w[2], "outcome": w[3],
                          "heard": w[4], "hesitation": bool(w[5]), "forgiven": w[6],
                          "told": bool(w[7]), "start_s": w[8], "end_s": w[9]}
                         for w in self._q("SELECT word_index, token_index, word, outcome, heard,"
                                          " hesitation, forgiven, told, start_s, end_s FROM "
                                          "word_outcomes WHERE page_id = ? ORDER BY word_index",
                                          (p[0],))]
                session["pages"].append({
                    "page": p[1], "lang": p[2], "words_total": p[3], "words_correct": p[4],
                    "accuracy": p[5], "wcpm": p[6], "reading_time_s": p[7], "miscues": p[8],
                    "hard_words": json.loads(p[9]), "created_at": p[10],
                    "audio_path": p[11], "words": words})
            out["sessions"].append(session)
        # Derived from the child's voice (docs/reading.md, "Speaker adaptation"): exported
        # with the rest, deleted with the rest.
        has_table = self._has_adaptation_table()
        out["voice_adaptation"] = [
            {"model": a[0], "frames": a[1], "pages": a[2], "updated_at": a[3],
             "stats_npz_base64": base64.b64encode(bytes(a[4])).decode("ascii")}
            for a in (self._q("SELECT model, frames, pages, updated_at, stats FROM "
                              "voice_adaptation WHERE reader_id = ? ORDER BY model", (rid,))
                      if has_table else [])]
        return out

    def delete(self, name: str) -> int:
        """Delete a reader and everything recorded for them (and stored audio), leaving
        nothing recoverable in the file: rows are zeroed (secure_delete), the file is
        rebuilt (VACUUM) and the write-ahead log emptied. Returns the number of pages
        deleted."""
        rid = self.reader_id(name, create=False)
        sessions = [int(r[0]) for r in self._q("SELECT id FROM sessions WHERE reader_id = ?",
                                               (rid,))]
        pages = self._q("SELECT count(*) FROM pages WHERE session_id IN (SELECT id FROM sessions"
                        " WHERE reader_id = ?)", (rid,))[0][0]
        self._q("DELETE FROM readers WHERE id = ?", (rid,))
        left: list[str] = []  # recordings that could not be removed: said, not ignored
        for sid in sessions:
            folder = self.path.parent / "audio" / str(sid)
            try:
                shutil.rmtree(folder)
            except FileNotFoundError:
                pass  # no recording kept for that session
            except OSError as exc:
                left.append(f"{folder} ({exc.strerror or exc})")
        # Free pages and the WAL may still hold the old bytes: rebuild, then truncate the WAL.
        self._q("PRAGMA wal_checkpoint(TRUNCATE)")
        self._q("VACUUM")
        self._q("PRAGMA wal_checkpoint(TRUNCATE)")
        if left:
            raise ProgressStoreError(
                f"reader '{check_reader_name(name)}' was deleted from {self.path}, but some of "
                f"their recordings could not be removed: {'; '.join(left)}. Remove these "
                "folders by hand (they hold the child's voice).")
        return int(pages)


REPORT_TEXT = {
    "en": {"title": "Reading progress", "reader": "Reader", "date": "Date", "book": "Book",
           "page": "Page", "wcpm": "Words correct per minute", "accuracy": "Accuracy (%)",
           "hard": "Words that were hard", "none": "No reading recorded yet.",
           "sessions": "Session date", "mode": "How",
           "chart_note": "The chart shows the readings done alone; readings after the robot "
                         "(Together) are only in the table.",
           "no_chart": "No chart yet: it shows the readings done alone, and there is none; "
                       "readings after the robot (Together) are only in the table."},
    "fr": {"title": "Progrès de lecture", "reader": "Lecteur", "date": "Date", "book": "Livre",
           "page": "Page", "wcpm": "Mots corrects par minute", "accuracy": "Exactitude (%)",
           "hard": "Mots difficiles", "none": "Aucune lecture enregistrée.",
           "sessions": "Date de la séance", "mode": "Comment",
           "chart_note": "Le graphique montre les lectures faites seul ; les lectures après "
                         "le robot (Ensemble) ne sont que dans le tableau.",
           "no_chart": "Pas encore de graphique : il montre les lectures faites seul, et il "
                       "n'y en a aucune ; les lectures après le robot (Ensemble) ne sont que "
                       "dans le tableau."},
}


MODE_NAMES = {
    "en": {"i_read": "read alone", "offline": "recording",
           "together": "after the robot (Together)"},
    "fr": {"i_read": "lu seul", "offline": "enregistrement",
           "together": "après le robot (Ensemble)"},
}
#: Modes where the child repeats what the robot read (not in the progress chart).
ECHO_MODES = ("together",)


def chart_points(data: dict[str, Any]) -> list[tuple[datetime, float, float]]:
    """One point per session with pages, in date order: (start, WCPM, accuracy 0..1). WCPM is
    pooled over the session's pages (words correct / reading time), as a fluency probe. Only
    readings done alone: in "Together" the child repeats a sentence the robot just read,
    which is no measure of their fluency."""
    points = []
    for s in data["sessions"]:
        pages = s["pages"]
        if not pages or s["mode"] in ECHO_MODES:
            continue
        reading_s = sum(p["reading_time_s"] for p in pages)
        correct = sum(p["words_correct"] for p in pages)
        wcpm = 60.0 * correct / reading_s if reading_s > 0 else 0.0
        accuracy = correct / max(1, sum(p["words_total"] for p in pages))
        points.append((datetime.fromtimestamp(s["started_at"]), wcpm, accuracy))
    return sorted(points, key=lambda p: p[0])


def chart_figure(points: list[tuple[datetime, float, float]], lang: str = "en") -> Any:
    """The progress chart (a matplotlib Figure): WCPM and accuracy per session over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    t = REPORT_TEXT.get(lang, REPORT_TEXT["en"])
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    xs = mdates.date2num([p[0] for p in points])
    ax.plot(xs, [p[1] for p in points], "o-", color="#1f5fa8", label=t["wcpm"])
    ax.set_xlabel(t["sessions"])
    ax.set_ylabel(t["wcpm"])
    if xs.max() - xs.min() < 1 / 24:
        # A first session (or sessions minutes apart): show the day around it; on a range
        # of a few seconds matplotlib's date ticks warn (3 UserWarnings in the librarian's
        # terminal) and pick odd ticks.
        middle = (xs.max() + xs.min()) / 2
        ax.set_xlim(middle - 0.5, middle + 0.5)
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    # Several sessions in one visit: ticks hours or minutes apart show the time too (a plain
    # date format printed the same date under every tick). Numbers only: no English month
    # names in a French report.
    formatter = mdates.AutoDateFormatter(locator, defaultfmt="%Y-%m-%d")
    formatter.scaled = {365.0: "%Y", 30.0: "%Y-%m", 1.0: "%Y-%m-%d",
                        1 / 24: "%Y-%m-%d %H:%M", 1 / 1440: "%Y-%m-%d %H:%M",
                        1 / 86400: "%H:%M:%S"}
    ax.xaxis.set_major_formatter(formatter)
    ax2 = ax.twinx()
    ax2.plot(xs, [100 * p[2] for p in points], "s--", color="#b04a00", label=t["accuracy"])
    ax2.set_ylim(0, 105)
    ax2.set_ylabel(t["accuracy"])
    fig.autofmt_xdate()
    fig.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def report_language(book_langs: Iterable[str], environ: Mapping[str, str] | None = None
                    ) -> str:
    """The language a report is written in when the librarian chose none: that of the
    reader's books when they are all in one language the report is written in, else the
    system's (the first of LC_ALL, LC_MESSAGES, LANG that is set: "fr..." -> French), else
    English."""
    langs = set(book_langs)
    if len(langs) == 1 and next(iter(langs)) in REPORT_TEXT:
        return next(iter(langs))
    env = os.environ if environ is None else environ
    system = next((env[k] for k in ("LC_ALL", "LC_MESSAGES", "LANG") if env.get(k)), "")
    return "fr" if system.lower().startswith("fr") else "en"


def write_report(store: ProgressStore, name: str, out: Path, lang: str | None = None,
                 book_title: Callable[[str], str] | None = None) -> Path:
    """An HTML page (chart embedded as PNG) of a reader's WCPM and accuracy over time, in
    `lang` ("fr" or "en"; else report_language() of the books read), each book named by
    `book_title(book_id)` (default: its id). Raises ProgressStoreError when `out` cannot be
    written (the message names it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = store.export(name)
    rows = [(p["created_at"], s["book"], p, s["mode"]) for s in data["sessions"]
            for p in s["pages"]]
    if lang is None or lang not in REPORT_TEXT:
        lang = report_language(p["lang"] for _, _, p, _ in rows)
    t = REPORT_TEXT[lang]
    modes = MODE_NAMES[lang]
    titles = {book: (book_title or str)(book) for book in {r[1] for r in rows}}
    rows.sort(key=lambda r: r[0])
    hard = Counter(w for _, _, p, _ in rows for w in p["hard_words"])
    chart = ""
    points = chart_points(data)
    if points:
        fig = chart_figure(points, lang)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        chart = (f'<img alt="{html.escape(t["wcpm"])} / {html.escape(t["accuracy"])}, '
                 f'{html.escape(t["sessions"])}" '
                 f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">')
    table = "".join(
        f"<tr><td>{time.strftime('%Y-%m-%d %H:%M', time.localtime(ts))}</td>"
        f"<td{_lang_attribute(p['lang'], lang)}>{html.escape(titles[book])}</td>"
        f"<td>{p['page']}</td>"
        f"<td>{html.escape(modes.get(mode, mode))}</td><td>{p['wcpm']:.0f}</td>"
        f"<td>{100 * p['accuracy']:.0f}</td><td>{html.escape(', '.join(p['hard_words']))}</td>"
        "</tr>" for ts, book, p, mode in rows)
    if any(mode in ECHO_MODES for *_, mode in rows):
        # Only "Together" readings: there is no chart to speak of.
        chart += f"<p>{html.escape(t['chart_note' if points else 'no_chart'])}</p>"
    hard_list = ", ".join(f"{html.escape(w)} ({n})" for w, n in hard.most_common(15))
    body = (f"<h1>{t['title']}: {html.escape(data['reader'])}</h1>" + (chart or "")
            + (f"<table><thead><tr><th>{t['date']}</th><th>{t['book']}</th><th>{t['page']}</th>"
               f"<th>{t['mode']}</th><th>{t['wcpm']}</th><th>{t['accuracy']}</th>"
               f"<th>{t['hard']}</th></tr></thead>"
               f"<tbody>{table}</tbody></table><h2>{t['hard']}</h2><p>{hard_list}</p>"
               if rows else f"<p>{t['none']}</p>"))
    page = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8"><title>'
            f"{t['title']}: {html.escape(data['reader'])}</title><style>body{{font-family:"
            "sans-serif;max-width:60rem;margin:2rem auto;line-height:1.5}table{border-collapse:"
            "collapse}td,th{border:1px solid #999;padding:.3rem .6rem}</style></head><body>"
            f"{body}</body></html>")
    out = Path(out)
    write_output(out, page, "report")
    return out


def _lang_attribute(text_lang: str, page_lang: str) -> str:
    # A French title in an English report (or the reverse) is read by screen readers with
    # the book's pronunciation.
    return f' lang="{html.escape(text_lang)}"' if text_lang != page_lang else ""


def write_output(path: Path, text: str, what: str) -> None:
    """Write a report or an export for the librarian; a place that cannot be written is a
    ProgressStoreError naming it (not a traceback)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ProgressStoreError(f"{path}: cannot write the {what} ({exc.strerror or exc}); "
                                 "choose another place (--out)") from exc
