"""Tutor policy: helps when stuck (word, then sentence), praises, never nags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from passeur.reading.alignment import Aligner, score
from passeur.reading.asr import Hypothesis, RecognizedWord
from passeur.reading.exceptions import ReadingError
from passeur.reading.text import tokenize
from passeur.reading.tutor import Tutor, TutorPolicy, load_reading_config

TEXT = "The cat sat on the mat. Then it slept in the sun."


def words(text: str, start: float = 0.5, dur: float = 0.4) -> list[RecognizedWord]:
    out, t = [], start
    for w in text.split():
        out.append(RecognizedWord(w, t, t + dur))
        t += dur + 0.1
    return out


def run(tutor: Tutor, aligner: Aligner, heard: list[RecognizedWord], until_s: float,
        step_s: float = 0.1) -> list[tuple[float, str, str]]:
    said = []
    t = 0.0
    while t <= until_s:
        state = aligner.update(Hypothesis([w for w in heard if w.end_s <= t], t))
        for action in tutor.update(state, t):
            said.append((round(t, 1), action.kind, action.text))
        t += step_s
    return said


@pytest.fixture
def config():  # type: ignore[no-untyped-def]
    return load_reading_config()


def test_stuck_says_word_then_sentence_then_stops(config) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = config
    page = tokenize(TEXT, "en")
    tutor = Tutor(page, phrases, TutorPolicy(stuck_s=3, sentence_after_s=4, min_gap_s=2))
    said = run(tutor, Aligner(page), words("the cat"), until_s=40)
    kinds = [k for _, k, _ in said]
    assert kinds == ["say_word", "say_sentence"]  # and then silence: never nags
    (t1, _, text1), (t2, _, text2) = said
    assert "sat" in text1 and t1 == pytest.approx(0.5 + 0.9 + 3.0, abs=0.15)
    assert "The cat sat on the mat." in text2 and t2 >= t1 + 4


def test_no_help_while_reading_fluently(config) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = config
    page = tokenize(TEXT, "en")
    tutor = Tutor(page, phrases, TutorPolicy(stuck_s=3, praise_min_gap_s=0, min_gap_s=0))
    said = run(tutor, Aligner(page), words("the cat sat on the mat then it slept in the sun"),
               until_s=6.5)
    assert [k for _, k, _ in said] == ["praise_sentence"]


def test_robot_speech_holds_the_stuck_timer(config) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = config
    page = tokenize(TEXT, "en")
    tutor = Tutor(page, phrases, TutorPolicy(stuck_s=3))
    aligner = Aligner(page)
    state = aligner.update(Hypothesis(words("the cat"), 1.4))
    tutor.robot_spoke(until_s=10.0)
    assert tutor.update(state, 12.0) == []
    assert [a.kind for a in tutor.update(state, 13.1)] == ["say_word"]
    assert tutor.update(state, 13.5, speaking=True) == []


def test_rate_limit_caps_helps_per_page(config) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = config
    page = tokenize("One two three four five six seven.", "en")
    tutor = Tutor(page, phrases, TutorPolicy(stuck_s=1, sentence_after_s=100, min_gap_s=0,
                                             max_helps_per_page=2))
    aligner = Aligner(page)
    helps = 0
    heard: list[RecognizedWord] = []
    t = 0.0
    for w in "one two three four five".split():
        state = aligner.update(Hypothesis(heard, t))
        t += 2.0
        helps += len(tutor.update(aligner.update(Hypothesis(heard, t)), t))
        heard.append(RecognizedWord(w, t, t + 0.3))
        t += 0.4
        del state
    assert helps == 2


def test_page_end_offers_practice_in_french(config) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = config
    page = tokenize("Le chat dort sur le tapis.", "fr")
    aligner = Aligner(page)
    state = aligner.update(Hypothesis(words("le chien dort sur le tapis"), 4.0), finished=True)
    action = Tutor(page, phrases).page_end(score(page, state))
    assert action.kind == "page_end" and "chat" in action.text and action.lang == "fr"
    assert action.words == ("chat",)


def test_bad_reading_config_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "reading.yaml"
    bad.write_text("phrases:\n  en: {}\n", encoding="utf-8")
    with pytest.raises(ReadingError, match=r"reading\.yaml: phrases\.fr\.say_word|"
                                           r"reading\.yaml: phrases\.en\.say_word"):
        load_reading_config(bad)


@pytest.mark.parametrize("edit, problem", [
    # A placeholder misspelt while translating: found at start-up, not when a child practises.
    (lambda text: text.replace("Say after me: {word}.", "Say after me: {wrd}."),
     r"phrases\.en\.practice_say: 'Say after me: \{wrd\}\.' .*\{word\}"),
    (lambda text: text.replace('"Yes! {word}."', "42"), r"phrases\.en\.practice_good: 42 is not text"),
    (lambda text: text.replace("Say after me: {word}.", "Say after me: {word.x}."),
     r"phrases\.en\.practice_say: 'Say after me: \{word\.x\}\.' .*placeholder"),
    (lambda text: text.replace("  stuck_s: 4.0", '  stuck_s: "four"'),
     r"policy: stuck_s must be a number from 1 to 60 s \(got 'four'\)"),
    (lambda text: text.replace("  stuck_s: 4.0", "  stuck_s: -1"),
     r"policy: stuck_s must be a number from 1 to 60 s \(got -1\)"),
    # Timings of 0 let the tutor speak at every audio frame: the robot nags the child.
    (lambda text: text.replace("  stuck_s: 4.0", "  stuck_s: 0"),
     r"policy: stuck_s must be a number from 1 to 60 s \(got 0\)"),
    (lambda text: text.replace("  min_gap_s: 6.0", "  min_gap_s: 0"),
     r"policy: min_gap_s must be a number from 1 to 600 s \(got 0\)"),
    (lambda text: text.replace("  sentence_after_s: 5.0", "  sentence_after_s: .nan"),
     r"policy: sentence_after_s must be a number from 1 to 60 s \(got nan\)"),
    (lambda text: text.replace("  praise_min_gap_s: 20.0", "  praise_min_gap_s: 0"),
     r"policy: praise_min_gap_s must be a number from 1 to 3600 s"),
    (lambda text: text.replace("  praise_quiet_s: 0.5", "  praise_quiet_s: 0"),
     r"policy: praise_quiet_s must be a number from 0.2 to 10 s"),
    (lambda text: text.replace("  stuck_s: 4.0", "  stuck_s: 4000"),  # milliseconds by mistake
     r"policy: stuck_s must be a number from 1 to 60 s \(got 4000\)"),
    (lambda text: text.replace("  max_helps_per_page: 6", "  max_helps_per_page: 2.5"),
     r"policy: max_helps_per_page must be a whole number from 0 to 50 \(got 2.5\)"),
    (lambda text: text.replace("  max_helps_per_page: 6", "  max_helps_per_page: 1000"),
     r"policy: max_helps_per_page must be a whole number from 0 to 50"),
    (lambda text: text.replace("  praise_sentence_min_accuracy: 0.9",
                               "  praise_sentence_min_accuracy: 90"),
     r"policy: praise_sentence_min_accuracy must be a number from 0 to 1 \(got 90\)"),
    # The reader page practises 3 words at most: the robot must not offer more.
    (lambda text: text.replace("  practice_words_max: 3", "  practice_words_max: 5"),
     r"policy: practice_words_max must be a whole number from 0 to 3 \(got 5\)"),
    (lambda text: text.replace("  practice_words_max: 3", "  practice_words_max: true"),
     r"policy: practice_words_max must be a whole number from 0 to 3 \(got True\)"),
    (lambda text: "- just a list\n", r"expected a mapping with 'phrases'"),
    (lambda text: "phrases: [1, 2]\n", r"'phrases' must be a mapping"),
], ids=["placeholder-typo", "number-phrase", "attribute-placeholder", "text-policy",
        "negative-policy", "zero-stuck", "zero-gap", "nan-sentence", "zero-praise-gap",
        "zero-praise-quiet", "stuck-in-ms", "fraction-helps", "absurd-helps",
        "accuracy-percent", "too-many-practice-words", "bool-count", "list-file",
        "list-phrases"])
def test_reading_config_mistakes_are_found_at_start_up(tmp_path: Path, edit: Any,
                                                       problem: str) -> None:
    from passeur.paths import share_path

    bad = tmp_path / "reading.yaml"
    bad.write_text(edit(share_path("config", "reading.yaml").read_text(encoding="utf-8")),
                   encoding="utf-8")
    with pytest.raises(ReadingError, match=problem) as info:
        load_reading_config(bad)
    assert str(bad) in str(info.value)


def test_a_placeholder_with_an_index_is_accepted(tmp_path: Path) -> None:
    """`{word[0]}` (the word's first letter, for a phonics hint) is a placeholder the tutor
    can fill: refusing it would be a false alarm."""
    from passeur.paths import share_path

    text = share_path("config", "reading.yaml").read_text(encoding="utf-8")
    good = tmp_path / "reading.yaml"
    good.write_text(text.replace("Say after me: {word}.", "Say after me: {word}, {word[0]}."),
                    encoding="utf-8")
    phrases, _ = load_reading_config(good)
    assert "Say after me: {word}, {word[0]}." in phrases.table["en"]["practice_say"]


def test_reading_config_in_another_encoding_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "reading.yaml"
    bad.write_bytes("phrases:\n  fr: {and: \"\u00e0\"}\n".encode("latin-1"))
    with pytest.raises(ReadingError, match="reading.yaml: not UTF-8 text"):
        load_reading_config(bad)


def test_sentence_praise_waits_for_a_pause_and_never_talks_over_the_reader(config) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = config
    page = tokenize(TEXT, "en")

    def praise_times(heard: list[RecognizedWord]) -> list[float]:
        tutor = Tutor(page, phrases, TutorPolicy(stuck_s=30, praise_min_gap_s=0, min_gap_s=0))
        aligner = Aligner(page)
        out, t = [], 0.0
        while t <= 12:
            state = aligner.update(Hypothesis([w for w in heard if w.end_s <= t], t))
            voiced = [w for w in heard if w.start_s <= t]
            quiet = t - max(min(w.end_s, t) for w in voiced) if voiced else t
            out += [round(t, 1) for a in tutor.update(state, t, reader_quiet_s=quiet)
                    if a.kind == "praise_sentence"]
            t += 0.1
        return out

    # Reading straight on into the next sentence: no praise (it would talk over the child).
    assert praise_times(words("the cat sat on the mat then it slept in the sun")) == []
    # A pause after "mat.": praised once the reader has been quiet for 0.5 s.
    first = words("the cat sat on the mat")
    rest = words("then it slept in the sun", start=first[-1].end_s + 2.0)
    assert praise_times(first + rest) == [pytest.approx(first[-1].end_s + 0.5, abs=0.15)]


def test_sentence_help_comes_sentence_after_s_after_the_robot_said_the_word(config) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = config
    page = tokenize(TEXT, "en")
    tutor = Tutor(page, phrases, TutorPolicy(stuck_s=3, sentence_after_s=4, min_gap_s=1))
    aligner = Aligner(page)
    state = aligner.update(Hypothesis(words("the cat"), 1.4))
    t, said = 1.4, []
    while t < 20:
        for action in tutor.update(state, t):
            said.append((round(t, 1), action.kind))
            if action.kind == "say_word":
                tutor.robot_spoke(until_s=t + 2.0)  # the robot talks for 2 s
        t += 0.1
    (t1, k1), (t2, k2) = said
    assert (k1, k2) == ("say_word", "say_sentence")
    assert t2 == pytest.approx(t1 + 2.0 + 4.0, abs=0.15)


def test_page_praise_names_something_specific(config) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = config
    page = tokenize("The dragon flew over the castle.", "en")
    state = Aligner(page).update(Hypothesis(words("the dragon flew over the castle"), 4.0),
                                 finished=True)
    s = score(page, state)
    # A word read perfectly: the longest one (or the one that was hard last time).
    assert '"dragon" perfectly' in Tutor(page, phrases).page_end(s, state).text
    again = Tutor(page, phrases, previous={"wcpm": s.wcpm, "hard_words": ["castle"]})
    assert '"castle" was hard last time' in again.page_end(s, state).text
    # Faster than last time on this page.
    faster = Tutor(page, phrases, previous={"wcpm": s.wcpm / 2, "hard_words": []})
    text = faster.page_end(s, state).text
    assert "faster than last time" in text and f"{s.wcpm:.0f} words a minute" in text
    # In French too.
    fr = tokenize("Le dragon vole vers le château.", "fr")
    st = Aligner(fr).update(Hypothesis(words("le dragon vole vers le château"), 4.0),
                            finished=True)
    assert "« château »" in Tutor(fr, phrases).page_end(score(fr, st), st).text


def test_page_end_does_not_say_the_page_was_finished_when_the_reader_stopped(  # type: ignore[no-untyped-def]
        config) -> None:
    """A child who read one sentence and pressed "I'm done" heard "You finished the page.
    Good effort!" or "Well done for reading to the end!"."""
    phrases, _ = config
    page = tokenize(TEXT, "en")
    state = Aligner(page).update(Hypothesis(words("the cat sat on the mat"), 4.0),
                                 finished=True)
    tutor = Tutor(page, phrases)  # phrasings rotate: every one of them is checked
    texts = {tutor.page_end(score(page, state), state).text for _ in range(4)}
    for text in texts:
        assert "finished the page" not in text and "to the end" not in text, text
        assert "whole page" not in text, text
    # Read to the end: the page is praised as finished.
    state = Aligner(page).update(Hypothesis(words(TEXT.replace(".", "").lower()), 9.0),
                                 finished=True)
    assert "page" in Tutor(page, phrases).page_end(score(page, state), state).text


def test_a_word_the_reader_is_stuck_on_is_named_as_it_is_read(config) -> None:  # type: ignore[no-untyped-def]
    """Stuck on "M." of "M. Dupont", the robot said "Ce mot, c'est M." (the letter, "èm")
    where the page expects "monsieur"; a time is named as shown and spelt out when said."""
    from passeur.reading.text import speakable

    phrases, _ = config
    for text, heard, named in [("Alors M. Dupont arrive.", "alors", "monsieur"),
                               ("Alors à 14h30 il arrive.", "alors à", "quatorze heures trente")]:
        page = tokenize(text, "fr")
        tutor = Tutor(page, phrases, TutorPolicy(stuck_s=3, sentence_after_s=4, min_gap_s=2))
        said = run(tutor, Aligner(page), words(heard), until_s=6)
        assert [k for _, k, _ in said] == ["say_word"]
        assert named in speakable(said[0][2], "fr"), said


def test_page_end_names_an_abbreviation_as_the_page_reads_it(config) -> None:  # type: ignore[no-untyped-def]
    """'M.' of 'M. Dupont' is 'monsieur' on the page (expected, and said by "Read to me"),
    but the end-of-page offer named the hard word as shown: "On s'entraîne sur M ?", which
    the robot said as the letter ("èm")."""
    from passeur.reading.text import speakable

    phrases, _ = config
    page = tokenize("M. Dupont dort sur le tapis.", "fr")
    state = Aligner(page).update(Hypothesis(words("le dupont dort sur le tapis"), 4.0),
                                 finished=True)
    action = Tutor(page, phrases).page_end(score(page, state))
    assert action.words == ("M",)  # the page and the practice show the word as written
    said = speakable(action.text, "fr")
    assert "monsieur" in said and " M " not in said and " M ?" not in said, said
