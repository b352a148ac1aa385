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
