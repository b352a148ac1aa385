"""`passeur read`'s printed report of a page read, in French and English."""

from __future__ import annotations

from pathlib import Path

import pytest

from passeur.reading.alignment import (
    CORRECT,
    OMISSION,
    UNCLEAR,
    AlignmentState,
    Extra,
    PageScore,
    WordResult,
    score,
)
from passeur.reading.commands import result_lines
from passeur.reading.text import tokenize


def _reading() -> tuple[AlignmentState, PageScore]:
    page = tokenize("Le chat dort sur le tapis.", "fr")
    words = [WordResult(i, w.token, w.lex, CORRECT, w.lex, 0.5 + 0.4 * i, 0.8 + 0.4 * i)
             for i, w in enumerate(page.words)]
    words[3] = WordResult(3, 3, "sur", OMISSION, forgiven="function word")
    state = AlignmentState(words, [Extra(UNCLEAR, "?", 2, 1.2, 1.5)], len(words), 2.8, 3.0,
                           finished=True)
    return state, score(page, state)


@pytest.mark.parametrize(("lang", "unclear", "forgiven"), [
    ("fr", "parole indistincte", "non compté: petit mot outil"),
    ("en", "unclear speech", "not counted: short function word"),
])
def test_unclear_speech_and_forgiven_words_are_said_in_the_output_language(
        lang: str, unclear: str, forgiven: str) -> None:
    """A recording with speech the recogniser could not put a word on ("um", a made-up word)
    ended `passeur read` in a KeyError traceback ('unclear'), and `--lang fr` printed why a
    word was not counted in English ("non compté: function word")."""
    state, result = _reading()
    lines = result_lines("Le chat - page 1", state, result, lang)
    assert lines[0] == "Le chat - page 1"
    assert lines[3].startswith(f"  + {unclear}") and "'?'" not in lines[3]
    assert lines[4].split()[1] == "dort"  # the unclear speech came before "dort"
    assert lines[5].endswith(forgiven)
    assert "(6/6)" in lines[-1]


def test_ctrl_d_at_the_delete_prompt_deletes_nothing_and_ends_quietly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-D at 'Delete all reading data of ...? [y/N]' ended in an EOFError traceback."""
    import sys

    from passeur.cli import main
    from passeur.reading.progress_store import ProgressStore

    db = tmp_path / "p.sqlite3"
    state, s = _reading()
    store = ProgressStore(db)
    store.record_reading("Zoé", "b", "i_read", 1, "fr", state, s)
    store.close()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)

    def no_answer(_prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", no_answer)
    assert main(["readers", "delete", "Zoé", "--db", str(db)]) == 1
    store = ProgressStore(db)
    assert store.readers() == ["Zoé"]
    store.close()


def _read_only_runner(folder: Path) -> list[str]:
    """A command prefix under which `folder` is read-only for Python, even as root (tests
    run as root, for whom chmod stops no write): a read-only bind mount in a private mount
    namespace. As another user, chmod is enough. Skips when neither can be had."""
    import os
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0:
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
        return [sys.executable]
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.skip("root without unshare/mount: no way to make a folder read-only here")
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            f"mount --bind {folder} {folder} && "
                            f"mount -o remount,bind,ro {folder} && ! touch {folder}/x"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind mount here: {probe.stderr.strip()}")
    return ["unshare", "-m", "sh", "-c",
            f"mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && "
            'exec "$0" "$@"', sys.executable]


def test_readers_are_listed_reported_and_exported_from_read_only_media(
        tmp_path: Path) -> None:
    """`passeur readers list/report/export` of a database on read-only media (a backup on a
    locked USB stick) failed "cannot be opened or read": opening it always set WAL mode.
    Reading works; deleting says the database cannot be written, and how to change it."""
    import json
    import os
    import subprocess

    from passeur.reading.progress_store import ProgressStore

    media = tmp_path / "media"
    media.mkdir()
    db = media / "p.sqlite3"
    state, s = _reading()
    store = ProgressStore(db)
    store.record_reading("Zoé", "b", "i_read", 1, "fr", state, s)
    store.close()  # cleanly closed: the file alone, no -wal or -shm beside it
    before = db.read_bytes()
    runner = _read_only_runner(media)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2] / "src"), os.environ.get("PYTHONPATH", "")])}

    def readers(*args: str) -> subprocess.CompletedProcess[str]:
        code = "import sys; from passeur.cli import main; sys.exit(main(sys.argv[1:]))"
        return subprocess.run([*runner, "-c", code, "readers", *args, "--db", str(db)],
                              capture_output=True, text=True, env=env, timeout=120,
                              check=False)

    listed = readers("list")
    assert listed.returncode == 0 and listed.stdout.split() == ["Zoé"], listed.stderr
    exported = readers("export", "Zoé")
    assert exported.returncode == 0, exported.stderr
    assert len(json.loads(exported.stdout)["sessions"]) == 1
    report = tmp_path / "report.html"
    reported = readers("report", "Zoé", "--out", str(report), "--lang", "en")
    assert reported.returncode == 0 and "Zoé" in report.read_text(encoding="utf-8"), \
        reported.stderr
    deleted = readers("delete", "Zoé", "--yes")
    assert deleted.returncode != 0
    assert "cannot be written (read-only file, folder or media)" in deleted.stderr
    assert "Traceback" not in deleted.stderr
    if os.geteuid() != 0:
        media.chmod(0o755)
    assert db.read_bytes() == before
    assert sorted(p.name for p in media.iterdir()) == ["p.sqlite3"]
