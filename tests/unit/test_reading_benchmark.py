"""The reading benchmark's scoring (benchmarks/reading.py): a miscue counts as detected only
when its own kind is reported at its place, and extra speech reported where nothing was added
is a false alarm, however close it is to an injected miscue."""

from __future__ import annotations

from benchmarks.reading import Case, detected, false_alarms, page_word_times

from passeur.reading.alignment import (
    CORRECT,
    INSERTION,
    OMISSION,
    REPETITION,
    SELF_CORRECTION,
    SUBSTITUTION,
    UNCLEAR,
    AlignmentState,
    Extra,
    WordResult,
)

PAGE = ["tom", "saw", "a", "green", "frog", "near", "the", "river"]


def state(outcomes: dict[int, str] | None = None, extras: list[Extra] | None = None,
          hesitation: int | None = None) -> AlignmentState:
    words = []
    for i, w in enumerate(PAGE):
        outcome = (outcomes or {}).get(i, CORRECT)
        words.append(WordResult(i, i, w, outcome, None if outcome == OMISSION else w,
                                0.5 + 0.4 * i, 0.8 + 0.4 * i, hesitation=i == hesitation))
    return AlignmentState(words, extras or [], len(PAGE), 4.0, 5.0, True)


def test_each_kind_needs_its_own_label_at_its_place() -> None:
    # A self-correction on "frog" reported only as an insertion before it is not detected
    # (the old scoring counted any extra word within one word of it).
    assert not detected("self_correction", 4, state(extras=[Extra(INSERTION, "fog", 4, 2, 2.2)]))
    assert detected("self_correction", 4, state({4: SELF_CORRECTION}))
    # An insertion before "frog": an insertion or unclear extra right there.
    assert detected("insertion", 4, state(extras=[Extra(UNCLEAR, "?", 4, 2, 2.2)]))
    assert not detected("insertion", 4, state(extras=[Extra(INSERTION, "big", 3, 1.6, 1.8)]))
    assert not detected("insertion", 4, state(extras=[Extra(REPETITION, "frog", 5, 2.4, 2.6)]))
    # A repetition of "frog": a repetition (or insertion) just before or after it.
    assert detected("repetition", 4, state(extras=[Extra(REPETITION, "frog", 5, 2.4, 2.6)]))
    assert not detected("repetition", 4, state(extras=[Extra(UNCLEAR, "?", 5, 2.4, 2.6)]))
    assert not detected("repetition", 4, state({4: SELF_CORRECTION}))
    # Substitution: the word counted wrong; omission: labelled omission; hesitation: the flag.
    assert detected("substitution", 4, state({4: SUBSTITUTION}))
    assert detected("substitution", 4, state({4: OMISSION}))
    assert not detected("substitution", 4, state(extras=[Extra(INSERTION, "dog", 4, 2, 2.2)]))
    assert detected("omission", 4, state({4: OMISSION}))
    assert not detected("omission", 4, state({4: SUBSTITUTION}))
    assert detected("hesitation", 4, state(hesitation=4))
    assert not detected("hesitation", 4, state({4: SELF_CORRECTION}))


def test_extra_speech_where_none_was_added_is_a_false_alarm() -> None:
    # "frog" omitted: nothing was added, so an unclear extra next to it is a false alarm
    # (the old scoring ignored any extra within one word of an injected miscue).
    case = Case(" ".join(PAGE), [w for i, w in enumerate(PAGE) if i != 4], {4: "omission"},
                [i for i in range(len(PAGE)) if i != 4], {})
    spans: list[tuple[float, float] | None] = [(0.5 + 0.4 * k, 0.8 + 0.4 * k)
                                              for k in range(len(case.spoken))]
    alarms, correct = false_alarms(case, state({4: OMISSION},
                                               [Extra(UNCLEAR, "?", 5, 2.1, 2.3)]), spans)
    assert correct == 7 and len(alarms) == 1 and alarms[0].startswith("unclear")
    # A wrongly labelled correct word is one too.
    alarms, _ = false_alarms(case, state({4: OMISSION, 6: SELF_CORRECTION}), spans)
    assert len(alarms) == 1 and "'the'" in alarms[0]


def test_extra_speech_over_the_added_word_is_not_a_false_alarm() -> None:
    # "big" inserted before "frog", spoken from 2.0 to 2.3 s: an extra reported over it is the
    # detection, not a false alarm; another one elsewhere is.
    spoken = PAGE[:4] + ["big"] + PAGE[4:]
    said_for: list[int | None] = [0, 1, 2, 3, None, 4, 5, 6, 7]
    case = Case(" ".join(PAGE), spoken, {4: "insertion"}, said_for, {4: [4]})
    spans: list[tuple[float, float] | None] = [(0.4 * k, 0.4 * k + 0.3)
                                              for k in range(len(spoken))]
    s = state(extras=[Extra(INSERTION, "a", 4, 1.65, 1.9), Extra(UNCLEAR, "?", 7, 2.9, 3.1)])
    alarms, correct = false_alarms(case, s, spans)
    assert correct == 7 and len(alarms) == 1 and "before word 7" in alarms[0]
    assert detected("insertion", 4, s)
    # The true time of a page word is its right reading, not the added word.
    assert page_word_times(case, spans)[4] == spans[5]


def test_voices_option_gives_a_differently_generated_set() -> None:
    import pytest
    from benchmarks.reading import parse_voices

    assert parse_voices("en-gb:145, en-us+f4:125") == [("en-gb", 145), ("en-us+f4", 125)]
    for bad in ("en-gb", "en-gb:fast", ":140", "en-us:20"):
        with pytest.raises(SystemExit):
            parse_voices(bad)


def test_readers_pause_between_sentences() -> None:
    # "Tom saw a frog. The frog ran." read with "frog" repeated at the end of the first
    # sentence and a word added before "The": the pause comes after the repeated copy (it
    # belongs to the first sentence) and before the added word (said for the second).
    from benchmarks.reading import SENTENCE_PAUSE_S, sentence_breaks

    text = "Tom saw a frog. The frog ran."
    spoken = ["tom", "saw", "a", "frog", "frog", "big", "the", "frog", "ran"]
    said_for: list[int | None] = [0, 1, 2, 3, None, None, 4, 5, 6]
    case = Case(text, spoken, {3: "repetition", 4: "insertion"}, said_for, {3: [4], 4: [5]})
    assert sentence_breaks(case) == {4}
    # A hesitation before the first word of a sentence comes after the sentence pause.
    case = Case(text, ["tom", "saw", "a", "frog", "<pause>", "the", "frog", "ran"],
                {4: "hesitation"}, [0, 1, 2, 3, None, 4, 5, 6], {})
    assert sentence_breaks(case) == {3}
    assert 0 < SENTENCE_PAUSE_S[0] < SENTENCE_PAUSE_S[1] < 2.0  # never a hesitation
