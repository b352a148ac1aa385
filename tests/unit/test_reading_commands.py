"""`passeur read`'s printed report of a page read, in French and English."""

from __future__ import annotations

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
