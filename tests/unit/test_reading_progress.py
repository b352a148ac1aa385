"""Progress store: per-reader records, export, delete, report; corrupt files kept intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from passeur.reading.alignment import Aligner, score
from passeur.reading.asr import Hypothesis, RecognizedWord
from passeur.reading.exceptions import ProgressStoreError
from passeur.reading.progress_store import ProgressStore, write_report
from passeur.reading.text import tokenize


def reading_result(heard: str):  # type: ignore[no-untyped-def]
    page = tokenize("The cat sat on the mat.", "en")
    words, t = [], 0.5
    for w in heard.split():
        words.append(RecognizedWord(w, t, t + 0.3))
        t += 0.4
    state = Aligner(page).update(Hypothesis(words, t), finished=True)
    return state, score(page, state)


def test_record_export_report_delete(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / "p.sqlite3")
    for heard in ("the cat sat on the mat", "the cap sat on the mat"):
        sid = store.start_session("Léo", "little-red-boat")
        state, s = reading_result(heard)
        store.record_page(sid, 1, "en", state, s, audio_wav=b"RIFF....")
        store.end_session(sid)
    store.start_session("Ana", "sam-and-the-moon")
    assert store.readers() == ["Ana", "Léo"]
    data = store.export("Léo")
    pages = [p for s in data["sessions"] for p in s["pages"]]
    assert [p["words_correct"] for p in pages] == [6, 5]
    assert pages[1]["hard_words"] == ["cat"]
    assert pages[1]["words"][1] == {**pages[1]["words"][1], "word": "cat",
                                    "outcome": "substitution", "heard": "cap"}
    # Audio is not stored unless enabled.
    assert all(p["audio_path"] is None for p in pages)
    assert not (tmp_path / "audio").exists()
    report = write_report(store, "Léo", tmp_path / "report.html", "fr")
    html = report.read_text(encoding="utf-8")
    assert "Progrès de lecture" in html and "data:image/png;base64," in html and "cat" in html
    assert store.delete("Léo") == 2
    assert store.readers() == ["Ana"]
    with pytest.raises(ProgressStoreError, match="no reader named 'Léo'"):
        store.export("Léo")
    store.close()
    store.close()  # idempotent


def test_audio_only_when_enabled(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / "p.sqlite3", store_audio=True)
    sid = store.start_session("Zoé", "b")
    state, s = reading_result("the cat sat on the mat")
    store.record_page(sid, 1, "en", state, s, audio_wav=b"RIFFdata")
    path = Path(store.export("Zoé")["sessions"][0]["pages"][0]["audio_path"])
    assert path.read_bytes() == b"RIFFdata"
    store.delete("Zoé")
    assert not path.exists()


def test_wal_mode_and_names(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path / "p.sqlite3")
    assert store._q("PRAGMA journal_mode")[0][0] == "wal"
    from passeur.reading.exceptions import ReaderNameError

    with pytest.raises(ReaderNameError, match="not valid"):
        store.start_session("../../etc", "b")
    store.close()


def test_corrupt_database_is_reported_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    store = ProgressStore(db)
    store.start_session("Léo", "b")
    store.close()
    raw = bytearray(db.read_bytes())
    raw[100:4000] = b"\xff" * 3900  # damage the page headers, keep the SQLite header
    db.write_bytes(bytes(raw))
    before = db.read_bytes()
    with pytest.raises(ProgressStoreError, match=r"p\.sqlite3: the progress database is corrupt"):
        ProgressStore(db)
    assert db.read_bytes() == before
    json.dumps({"ok": True})


def test_errors_say_what_happened(tmp_path: Path) -> None:
    import sqlite3

    from passeur.reading.exceptions import (
        ProgressStoreBusy,
        ProgressStoreClosed,
        ProgressStoreFull,
        ProgressStoreReadOnly,
    )

    db = tmp_path / "p.sqlite3"
    store = ProgressStore(db, busy_timeout_s=0.2)
    state, s = reading_result("the cat sat on the mat")
    # Locked by another program: "locked", not "corrupt"; nothing half-written.
    other = sqlite3.connect(str(db), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    with pytest.raises(ProgressStoreBusy, match=r"p\.sqlite3: .*locked by another program"):
        store.record_reading("Léo", "b", "i_read", 1, "en", state, s)
    other.execute("ROLLBACK")
    other.close()
    store.record_reading("Léo", "b", "i_read", 1, "en", state, s)
    assert len(store.export("Léo")["sessions"]) == 1
    # Read-only.
    store._conn().execute("PRAGMA query_only=ON")
    with pytest.raises(ProgressStoreReadOnly, match="cannot be written"):
        store.record_reading("Léo", "b", "i_read", 1, "en", state, s)
    store._conn().execute("PRAGMA query_only=OFF")
    # Disk full (a page-count limit stands in for the disk).
    pages = store._q("PRAGMA page_count")[0][0]
    store._q(f"PRAGMA max_page_count={pages}")
    with pytest.raises(ProgressStoreFull, match="disk holding the progress database is full"):
        for _ in range(200):
            store.record_reading("Léo", "b", "i_read", 1, "en", state, s)
    store.close()
    assert len(ProgressStore(db).export("Léo")["sessions"]) >= 1  # what was saved is kept
    with pytest.raises(ProgressStoreClosed, match="closed"):
        store.record_page(1, 1, "en", state, s)
    with pytest.raises(ProgressStoreClosed, match="closed"):
        store.readers()


def test_deleted_reader_leaves_no_trace_in_the_file(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    store = ProgressStore(db)
    state, s = reading_result("the cat sat on the mat")
    for name in ("Zéphyrine-Secret", "Ana"):
        store.record_reading(name, "little-red-boat", "i_read", 1, "en", state, s)
    store.close()
    store = ProgressStore(db)
    assert "Zéphyrine-Secret".encode() in db.read_bytes() + _wal(db)
    # Debian's SQLite zeroes deleted rows by default; others do not: the rebuild must cover
    # builds where secure_delete is off.
    store._conn().execute("PRAGMA secure_delete=OFF")
    store.delete("Zéphyrine-Secret")
    for raw in (db.read_bytes(), _wal(db)):
        assert "Zéphyrine-Secret".encode() not in raw
    assert store.readers() == ["Ana"]
    store.close()


def _wal(db: Path) -> bytes:
    wal = db.with_name(db.name + "-wal")
    return wal.read_bytes() if wal.exists() else b""


def test_report_chart_has_one_point_per_session_by_date(tmp_path: Path) -> None:
    from datetime import datetime

    from passeur.reading.progress_store import chart_points

    store = ProgressStore(tmp_path / "p.sqlite3")
    for heard in ("the cat sat on the mat", "the cap sat on the mat"):
        state, s = reading_result(heard)
        store.record_reading("Léo", "b", "i_read", 1, "en", state, s)
    # Move the first session a week back: the x axis is the date, not a page counter.
    store._q("UPDATE sessions SET started_at = started_at - 7 * 86400 WHERE id = 1")
    points = chart_points(store.export("Léo"))
    assert [p[0].date() for p in points] == sorted(p[0].date() for p in points)
    assert (points[1][0] - points[0][0]).days == 7 and isinstance(points[0][0], datetime)
    assert points[0][2] == 1.0 and points[1][2] == pytest.approx(5 / 6)
    html = write_report(store, "Léo", tmp_path / "r.html", "fr").read_text(encoding="utf-8")
    assert "Date de la séance" in html
    store.close()


@pytest.mark.parametrize("spacing_s", [300, 3 * 3600, 86400, 7 * 86400])
def test_report_chart_dates_tell_sessions_apart(spacing_s: int) -> None:
    """A visit with several sessions (the reader page saves one per page): every tick of the
    chart said the same date ("2026-12-07" four times), however many hours apart."""
    from datetime import datetime, timedelta

    import matplotlib.pyplot as plt

    from passeur.reading.progress_store import chart_figure

    start = datetime(2026, 12, 7, 14, 0)
    points = [(start + timedelta(seconds=i * spacing_s), 60.0 + i, 0.9) for i in range(4)]
    fig = chart_figure(points, "fr")
    try:
        fig.canvas.draw()
        labels = [label.get_text() for label in fig.axes[0].get_xticklabels()
                  if label.get_text()]
    finally:
        plt.close(fig)
    assert len(labels) >= 2 and len(set(labels)) == len(labels), labels
    assert not any(c.isalpha() for label in labels for c in label), labels  # no "Dec"


def test_report_tells_readings_after_the_robot_from_readings_alone(tmp_path: Path) -> None:
    """'Together' pages (the child repeats each sentence the robot just read) went into the
    progress chart as fluency like any reading, and the table did not say which was which:
    a reader who used 'Together' seemed to jump ahead, then fall back."""
    from passeur.reading.progress_store import chart_points

    store = ProgressStore(tmp_path / "p.sqlite3")
    for mode, heard in (("i_read", "the cap sat on the mat"),
                        ("together", "the cat sat on the mat")):
        state, s = reading_result(heard)
        store.record_reading("Léo", "b", mode, 1, "en", state, s)
    points = chart_points(store.export("Léo"))
    assert [round(p[2], 3) for p in points] == [round(5 / 6, 3)]  # the reading alone only
    html = write_report(store, "Léo", tmp_path / "r.html", "fr").read_text(encoding="utf-8")
    assert "<th>Comment</th>" in html and "lu seul" in html
    assert "après le robot (Ensemble)" in html and "ne sont que dans le tableau" in html
    store.close()


def test_a_first_session_charts_without_warnings() -> None:
    """A reader's first report (one session) printed three matplotlib UserWarnings
    ("AutoDateLocator was unable to pick an appropriate interval") in the terminal."""
    import warnings
    from datetime import datetime

    import matplotlib.pyplot as plt

    from passeur.reading.progress_store import chart_figure

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = chart_figure([(datetime(2026, 12, 7, 14, 0), 60.0, 0.9)], "en")
        try:
            fig.canvas.draw()
            labels = [label.get_text() for label in fig.axes[0].get_xticklabels()]
        finally:
            plt.close(fig)
    assert [str(w.message) for w in caught] == []
    assert any("2026-12-07" in label for label in labels), labels


def test_last_reading_to_compare_with_is_one_done_alone(tmp_path: Path) -> None:
    """The tutor's "You read faster than last time" compared with the last reading of the
    page, a 'Together' one included (repeating after the robot)."""
    store = ProgressStore(tmp_path / "p.sqlite3")
    for mode, heard in (("i_read", "the cap sat on the mat"),
                        ("together", "the cat sat on the mat")):
        state, s = reading_result(heard)
        store.record_reading("Léo", "b", mode, 1, "en", state, s)
    last = store.last_page("Léo", "b", 1)
    assert last is not None and last["hard_words"] == ["cat"]
    store.close()


def test_a_new_progress_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """Children's reading (and, with store_audio, their voices) must not be readable by other
    accounts on the robot's computer: with the usual umask (022) the file, its WAL and its
    folder were created readable by everyone."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        store = ProgressStore(tmp_path / "data" / "p.sqlite3")
        sid = store.start_session("Léo", "little-red-boat")
        state, s = reading_result("the cat sat on the mat")
        store.record_page(sid, 1, "en", state, s, audio_wav=b"RIFF....")
        files = sorted((tmp_path / "data").iterdir())
        assert {f.name for f in files} >= {"p.sqlite3", "p.sqlite3-wal"}
        for f in files:
            assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, (f.name, oct(f.stat().st_mode))
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) & 0o077 == 0
        store.close()
    finally:
        os.umask(old)


def test_stored_recordings_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    """With store_audio, children's recordings were written with the umask's rights (folder
    0755, files 0644) next to a database made 0600: in a shared folder (progress_db set to
    /srv/passeur/..., say) every account on the robot could play the children's voices."""
    import os
    import stat

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    old = os.umask(0o022)
    try:
        store = ProgressStore(shared / "p.sqlite3", store_audio=True)
        state, s = reading_result("the cat sat on the mat")
        store.record_reading("Léo", "little-red-boat", "i_read", 1, "en", state, s,
                             b"RIFF....")
        store.close()
    finally:
        os.umask(old)
    made = [shared / "audio", *(shared / "audio").rglob("*")]
    assert any(f.suffix == ".wav" for f in made)
    for f in made:
        assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, (f, oct(f.stat().st_mode))


def _record(store: ProgressStore, reader: str, book: str, lang: str) -> None:
    state, s = reading_result("the cat sat on the mat")
    store.record_reading(reader, book, "i_read", 1, lang, state, s)


def test_report_names_books_by_title_even_when_one_was_removed(tmp_path: Path) -> None:
    """The librarian's report listed 'le-petit-bateau-rouge' (the file name) where the reader
    page shows "Le petit bateau rouge"; a book removed since keeps its id, without error."""
    from passeur.reading.books import Library

    books = tmp_path / "books"
    books.mkdir()
    (books / "le-bateau.md").write_text("---\ntitle: Le petit bateau\nlanguage: fr\n---\n"
                                        "Tom a un bateau.\n", encoding="utf-8")
    store = ProgressStore(tmp_path / "p.sqlite3")
    _record(store, "Léo", "le-bateau", "fr")
    _record(store, "Léo", "parti", "fr")  # its file was removed since
    html = write_report(store, "Léo", tmp_path / "r.html", "fr",
                        Library(books).title).read_text(encoding="utf-8")
    assert "<td>Le petit bateau</td>" in html and "<td>parti</td>" in html
    assert "<td>le-bateau</td>" not in html
    store.close()


@pytest.mark.parametrize(("langs", "environ", "expected"), [
    (["fr", "fr"], {"LANG": "en_GB.UTF-8"}, "fr"),  # the books' language first
    (["en"], {"LANG": "fr_FR.UTF-8"}, "en"),
    (["fr", "en"], {"LANG": "fr_FR.UTF-8"}, "fr"),  # mixed: the system's
    (["fr", "en"], {"LANG": "fr_FR.UTF-8", "LC_ALL": "C.UTF-8"}, "en"),  # LC_ALL wins
    (["fr", "en"], {"LC_ALL": "", "LC_MESSAGES": "fr_CA.UTF-8", "LANG": "C"}, "fr"),
    ([], {"LC_ALL": "fr_BE.UTF-8"}, "fr"),  # nothing read yet
    (["ko"], {"LANG": "fr_FR.UTF-8"}, "fr"),  # no report in Korean: the system's
    (["fr", "en"], {}, "en"),
])
def test_report_language_default(langs: list[str], environ: dict[str, str],
                                 expected: str) -> None:
    from passeur.reading.progress_store import report_language

    assert report_language(langs, environ) == expected


def test_report_is_in_the_books_language_unless_asked(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`passeur readers report` was in English for a French library unless the librarian
    knew to add --lang fr, and its table showed book ids."""
    from passeur.cli import main

    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    db = tmp_path / "p.sqlite3"
    store = ProgressStore(db)
    _record(store, "Léo", "le-petit-bateau-rouge", "fr")
    _record(store, "Ana", "le-petit-bateau-rouge", "fr")
    _record(store, "Ana", "little-red-boat", "en")
    store.close()
    out = tmp_path / "leo.html"
    assert main(["readers", "report", "Léo", "--db", str(db), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert '<html lang="fr">' in html and "Progrès de lecture" in html
    assert "<td>Le petit bateau rouge</td>" in html
    assert main(["readers", "report", "Léo", "--db", str(db), "--out", str(out),
                 "--lang", "en"]) == 0
    html = out.read_text(encoding="utf-8")
    assert "Reading progress" in html and '<td lang="fr">Le petit bateau rouge</td>' in html
    # Books in both languages: the system's language, else English.
    assert main(["readers", "report", "Ana", "--db", str(db), "--out", str(out)]) == 0
    assert "Reading progress" in out.read_text(encoding="utf-8")
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    assert main(["readers", "report", "Ana", "--db", str(db), "--out", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "Progrès de lecture" in html and '<td lang="en">The Little Red Boat</td>' in html
    # A books folder that does not exist is refused, as `passeur read` does.
    assert main(["readers", "report", "Ana", "--db", str(db), "--out", str(out),
                 "--books-dir", str(tmp_path / "none")]) == 2


@pytest.mark.parametrize("lang, said", [("en", "No chart yet"), ("fr", "Pas encore de graphique")])
def test_a_report_of_together_readings_only_does_not_speak_of_a_chart(
        tmp_path: Path, lang: str, said: str) -> None:
    """A reader who only read 'Together' got a report with no chart at all, saying "The chart
    shows the readings done alone..." above the table."""
    store = ProgressStore(tmp_path / "p.sqlite3")
    state, s = reading_result("the cat sat on the mat")
    store.record_reading("Léo", "b", "together", 1, "en", state, s)
    html = write_report(store, "Léo", tmp_path / "r.html", lang).read_text(encoding="utf-8")
    store.close()
    assert "<img" not in html and said in html
    assert "The chart shows" not in html and "Le graphique montre" not in html


def test_a_database_from_before_private_rights_becomes_private(tmp_path: Path) -> None:
    """A progress database made before new ones were private (2026-12-07) kept its rights when
    the robot was updated: file 0644, recordings folder 0755 and WAVs 0644, so every account
    on the robot could go on reading the children's progress and playing their voices."""
    import os
    import stat

    db = tmp_path / "data" / "p.sqlite3"
    store = ProgressStore(db, store_audio=True)
    state, s = reading_result("the cat sat on the mat")
    store.record_reading("Léo", "b", "i_read", 1, "en", state, s, audio_wav=b"RIFF....")
    store.close()
    audio = db.parent / "audio"
    wav = next(audio.rglob("*.wav"))
    for path, mode in ((db, 0o644), (audio, 0o755), (wav.parent, 0o755), (wav, 0o644)):
        os.chmod(path, mode)  # as an older version left them
    ProgressStore(db).close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert stat.S_IMODE(audio.stat().st_mode) == 0o700  # nothing inside is reachable by others


def test_recordings_that_cannot_be_removed_are_said_when_their_reader_is_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting a reader whose recordings (store_audio) could not be removed (a read-only
    disk, files owned by another account) said "deleted reader ... (1 pages)" and left the
    child's voice on the robot, the failure ignored."""
    import shutil

    from passeur.reading import progress_store

    db = tmp_path / "p.sqlite3"
    store = ProgressStore(db, store_audio=True)
    state, s = reading_result("the cat sat on the mat")
    store.record_reading("Léo", "b", "i_read", 1, "en", state, s, audio_wav=b"RIFF....")

    def cannot_remove(path: object, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(progress_store.shutil, "rmtree", cannot_remove)
    with pytest.raises(ProgressStoreError, match=r"reader 'Léo' was deleted from .*p\.sqlite3, "
                                                 r"but some of their recordings could not be "
                                                 r"removed: .*audio.*Permission denied.*by hand"):
        store.delete("Léo")
    monkeypatch.setattr(progress_store.shutil, "rmtree", shutil.rmtree)
    assert store.readers() == []  # the rows are gone all the same
    store.close()


def test_a_name_typed_with_a_separate_accent_is_the_same_reader(tmp_path: Path) -> None:
    """'Zoé' written as 'e' + a combining accent (pasted from a file name, some keyboards) was
    refused with "reader name 'Zoé' is not valid", which looks like the valid name."""
    from passeur.reading.progress_store import check_reader_name

    assert check_reader_name("Zoe\u0301") == "Zo\u00e9"
    store = ProgressStore(tmp_path / "p.sqlite3")
    state, s = reading_result("the cat sat on the mat")
    store.record_reading("Zo\u00e9", "b", "i_read", 1, "en", state, s)
    assert store.export("Zoe\u0301")["reader"] == "Zo\u00e9"
    store.close()


def test_a_read_only_store_reads_and_changes_nothing(tmp_path: Path) -> None:
    """`passeur readers list/report/export` opened the database as the robot does: it set
    WAL mode and created the tables, which fails on read-only media. Read-only, the store
    reads the readings and leaves the file (and its journal mode) exactly as it was."""
    import sqlite3

    from passeur.reading.exceptions import ProgressStoreReadOnly

    db = tmp_path / "p.sqlite3"
    store = ProgressStore(db)
    state, s = reading_result("the cat sat on the mat")
    store.record_reading("Léo", "b", "i_read", 1, "en", state, s)
    store.close()
    other = sqlite3.connect(str(db), isolation_level=None)
    other.execute("PRAGMA journal_mode=DELETE")  # as a copy made by another tool may be
    other.close()
    before = db.read_bytes()
    store = ProgressStore(db, read_only=True)
    assert store.readers() == ["Léo"]
    assert len(store.export("Léo")["sessions"]) == 1
    assert store._q("PRAGMA journal_mode")[0][0] == "delete"
    with pytest.raises(ProgressStoreReadOnly, match="cannot be written"):
        store.record_reading("Léo", "b", "i_read", 1, "en", state, s)
    store.close()
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.sqlite3"]
    with pytest.raises(ProgressStoreError, match="does not exist"):
        ProgressStore(tmp_path / "missing" / "p.sqlite3", read_only=True)
    assert not (tmp_path / "missing").exists()
