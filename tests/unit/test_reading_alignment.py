"""Alignment and miscue classification on synthetic recogniser output (timings chosen)."""

from __future__ import annotations

from passeur.reading.alignment import (
    CORRECT,
    OMISSION,
    PENDING,
    REPETITION,
    SELF_CORRECTION,
    SUBSTITUTION,
    Aligner,
    score,
)
from passeur.reading.asr import Hypothesis, RecognizedWord
from passeur.reading.text import tokenize

TEXT = "The little boat sails on the pond.\nTom runs after it."


def hyp(words: str, gaps: dict[int, float] | None = None, dur: float = 0.4) -> Hypothesis:
    out, t = [], 0.5
    for i, w in enumerate(words.split()):
        t += (gaps or {}).get(i, 0.1)
        out.append(RecognizedWord(w, t, t + dur))
        t += dur
    return Hypothesis(out, t + 0.5)


def outcomes(state) -> list[str]:  # type: ignore[no-untyped-def]
    return [w.outcome for w in state.words]


def test_correct_reading_all_correct_and_position_streams() -> None:
    aligner = Aligner(tokenize(TEXT, "en"))
    partial = aligner.update(hyp("the little boat"))
    assert partial.position == 3
    assert outcomes(partial)[:3] == [CORRECT] * 3 and outcomes(partial)[3:] == [PENDING] * 8
    assert partial.current_token == 2
    final = aligner.update(hyp("the little boat sails on the pond tom runs after it"),
                           finished=True)
    assert outcomes(final) == [CORRECT] * 11
    s = score(aligner.page, final)
    assert s.accuracy == 1.0 and s.words_correct == 11 and s.miscues == 0


def test_substitution_omission_insertion_repetition() -> None:
    aligner = Aligner(tokenize(TEXT, "en"))
    state = aligner.update(hyp("the little bat sails the pond big tom tom runs after it"),
                           finished=True)
    res = {w.expected: w for w in state.words}
    assert res["boat"].outcome == SUBSTITUTION and res["boat"].heard == "bat"
    assert res["on"].outcome == OMISSION and res["on"].forgiven == "function word"
    kinds = [(e.kind, e.heard) for e in state.extras]
    assert ("insertion", "big") in kinds
    assert (REPETITION, "tom") in kinds
    assert score(aligner.page, state).miscues == 1  # only "boat" ("on" is forgiven)


def test_a_recent_word_heard_alone_out_of_place_is_an_insertion() -> None:
    """A page-following recogniser names an added word with a page word, often "the": heard
    alone two words after the page's own (here "tom"), it is an insertion; re-saying the words
    just read ("tom runs tom runs") or the last one ("runs runs") is a repetition."""
    def extras(words: str) -> list[tuple[str, str, int]]:
        state = Aligner(tokenize(TEXT, "en")).update(hyp(words), finished=True)
        assert all(w.outcome == CORRECT for w in state.words if w.expected != "on")
        return [(e.kind, e.heard, e.before) for e in state.extras]

    page = "the little boat sails on the pond "
    assert extras(page + "tom runs tom after it") == [("insertion", "tom", 9)]
    # (which copy is the page's reading is a tie: the extras may come first)
    assert [e[:2] for e in extras(page + "tom runs tom runs after it")] == [
        (REPETITION, "tom"), (REPETITION, "runs")]
    assert [e[:2] for e in extras(page + "tom runs runs after it")] == [(REPETITION, "runs")]


def test_content_word_omission_is_a_miscue() -> None:
    aligner = Aligner(tokenize(TEXT, "en"))
    state = aligner.update(hyp("the little boat on the pond tom runs after it"), finished=True)
    assert [w.expected for w in state.words if w.is_miscue] == ["sails"]


def test_self_correction_counts_correct() -> None:
    aligner = Aligner(tokenize(TEXT, "en"))
    state = aligner.update(hyp("the little bat boat sails on the pond tom runs after it"),
                           finished=True)
    boat = state.words[2]
    assert boat.outcome == SELF_CORRECTION and boat.attempts == ["bat"]
    assert boat.counted_correct and not state.extras


def test_cut_off_try_heard_as_the_word_is_a_self_correction_not_a_repetition() -> None:
    def words(spec: list[tuple[str, float]]) -> Hypothesis:
        out, t = [], 0.5
        for w, dur in spec:
            out.append(RecognizedWord(w, t, t + dur))
            t += dur + 0.1
        return Hypothesis(out, t + 0.5)

    page = "the little boat sails on the pond tom runs after it".split()
    # "li... little": the recogniser squeezes the fragment into a (short) "little".
    tried = [("the", 0.3), ("little", 0.15), ("little", 0.45)] + [(w, 0.4) for w in page[2:]]
    state = Aligner(tokenize(TEXT, "en")).update(words(tried), finished=True)
    assert state.words[1].outcome == SELF_CORRECTION and state.words[1].attempts == ["little"]
    assert state.words[1].counted_correct and not state.extras
    # "gar... garden" heard as "garden garden", the first copy 0.29 s, the reading 0.42 s (a
    # benchmark page: a copy at 69 % of the reading's length is a try, not a repetition).
    gar = [("the", 0.3), ("little", 0.29), ("little", 0.42)] + [(w, 0.4) for w in page[2:]]
    state = Aligner(tokenize(TEXT, "en")).update(words(gar), finished=True)
    assert state.words[1].outcome == SELF_CORRECTION and not state.extras
    # "little little", both whole: a repetition.
    twice = [("the", 0.3), ("little", 0.42), ("little", 0.45)] + [(w, 0.4) for w in page[2:]]
    state = Aligner(tokenize(TEXT, "en")).update(words(twice), finished=True)
    assert state.words[1].outcome == CORRECT
    assert [(e.kind, e.heard) for e in state.extras] == [(REPETITION, "little")]
    # "the the" with a short first "the": function words vary in length, a repetition.
    short_the = [("the", 0.1), ("the", 0.3)] + [(w, 0.4) for w in page[1:]]
    state = Aligner(tokenize(TEXT, "en")).update(words(short_the), finished=True)
    assert state.words[0].outcome == CORRECT and not state.words[0].attempts
    assert [(e.kind, e.heard) for e in state.extras] == [(REPETITION, "the")]


def test_copy_that_fits_the_word_worse_than_its_reading_is_a_try() -> None:
    """ "bo... boat" heard as "boat boat", both of a normal length: the first copy's sounds fit
    "boat" clearly worse than the reading right after it, so it is a try, not a repetition."""
    page = "the little boat sails on the pond tom runs after it".split()

    def reading(first_fit: float | None, second_fit: float | None, word: str = "boat"
                ) -> Hypothesis:
        out, t = [], 0.5
        i = page.index(word)
        for k, w in enumerate(page):
            if k == i:
                out.append(RecognizedWord(w, t, t + 0.4, acoustic_per_frame=first_fit))
                t += 0.45
            fit = second_fit if k == i else -3.0
            out.append(RecognizedWord(w, t, t + 0.4, acoustic_per_frame=fit))
            t += 0.45
        return Hypothesis(out, t + 0.5)

    def run(h: Hypothesis):  # type: ignore[no-untyped-def]
        return Aligner(tokenize(TEXT, "en")).update(h, finished=True)

    tried = run(reading(-4.6, -3.1))
    assert tried.words[2].outcome == SELF_CORRECTION and tried.words[2].attempts == ["boat"]
    assert tried.words[2].counted_correct and not tried.extras
    # Fits as well (or better, or nearly as well): a repetition.
    for first in (-3.1, -2.0, -3.5):
        state = run(reading(first, -3.1))
        assert state.words[2].outcome == CORRECT
        assert [(e.kind, e.heard) for e in state.extras] == [(REPETITION, "boat")]
    # No acoustic scores (another engine): a repetition, as before.
    state = run(reading(None, None))
    assert [(e.kind, e.heard) for e in state.extras] == [(REPETITION, "boat")]
    # Function words are never judged by fit ("the the" stays a repetition).
    state = run(reading(-6.0, -3.0, word="the"))
    assert state.words[0].outcome == CORRECT
    assert [(e.kind, e.heard) for e in state.extras] == [(REPETITION, "the")]


def test_hesitation_is_a_pause_before_the_word() -> None:
    aligner = Aligner(tokenize(TEXT, "en"), hesitation_s=2.0)
    state = aligner.update(hyp("the little boat sails on the pond tom runs after it",
                               gaps={3: 3.0}), finished=True)
    flagged = [w.expected for w in state.words if w.hesitation]
    assert flagged == ["sails"]
    assert state.words[3].pause_before_s is not None and state.words[3].pause_before_s > 2.9
    assert state.words[3].outcome == CORRECT


def test_line_end_cut_word_is_forgiven_but_not_elsewhere() -> None:
    aligner = Aligner(tokenize(TEXT, "en"))
    state = aligner.update(hyp("the little boat sails on the po tom runs after it"),
                           finished=True)
    pond = state.words[6]
    assert pond.outcome == SUBSTITUTION and pond.forgiven == "line end" and pond.counted_correct
    state = aligner.update(hyp("the little bo sails on the pond tom runs after it"),
                           finished=True)
    assert state.words[2].is_miscue


def test_unread_tail_is_pending_until_finished() -> None:
    aligner = Aligner(tokenize(TEXT, "en"))
    state = aligner.update(hyp("the little boat sails"))
    assert outcomes(state)[4:] == [PENDING] * 7
    state = aligner.update(hyp("the little boat sails"), finished=True)
    assert outcomes(state)[4:] == [OMISSION] * 7


def test_french_elisions_and_numbers_align() -> None:
    page = tokenize("J'ai vu 21 oiseaux sur l'arbre.", "fr")
    aligner = Aligner(page)
    state = aligner.update(hyp("j'ai vu vingt et un oiseaux sur l' arbre"), finished=True)
    assert all(w.outcome == CORRECT for w in state.words)
    s = score(page, state)
    assert s.words_total == 6 and s.words_correct == 6


def test_told_word_is_not_counted_correct() -> None:
    aligner = Aligner(tokenize(TEXT, "en"))
    aligner.mark_told(3)
    state = aligner.update(hyp("the little boat sails on the pond tom runs after it"),
                           finished=True)
    assert state.words[3].told and not state.words[3].counted_correct
    assert "sails" in score(aligner.page, state).hard_words


def test_speech_without_a_recognised_word_is_unclear() -> None:
    from passeur.reading.alignment import UNCLEAR

    page = tokenize(TEXT, "en")
    h = hyp("the little boat sails on the pond tom runs after it", gaps={2: 0.5})
    speech = [False] * 400
    start = int(h.words[1].end_s / 0.02)
    end = int(h.words[2].start_s / 0.02)
    for k in range(start, end):  # the voice went on between "little" and "boat"
        speech[k] = True
    state = Aligner(page).update(h, finished=True, speech=speech)
    assert [(e.kind, e.before) for e in state.extras] == [(UNCLEAR, 2)]
    assert all(w.outcome == CORRECT for w in state.words)
    # The same gap in silence is just a pause.
    state = Aligner(page).update(h, finished=True, speech=[False] * 400)
    assert state.extras == []
    # A pause whose edges are voiced (the ends of the words around it, 0.18 s each: 0.36 s
    # in all, over `unclear_min_s`, but in two pieces) is a pause too.
    speech = [False] * 400
    for k in [*range(start, start + 9), *range(end - 9, end)]:
        speech[k] = True
    assert Aligner(page).update(h, finished=True, speech=speech).extras == []


def test_unclear_speech_holds_a_syllable_of_its_own() -> None:
    """Frame levels given: voice between two words that only fades (the end of "little",
    drawn out and ended early by the recogniser) is no extra speech; voice that rises again
    (a vowel after a consonant: a word added) is."""
    from passeur.reading.alignment import NUCLEUS_RISE_DB, UNCLEAR

    page = tokenize(TEXT, "en")
    h = hyp("the little boat sails on the pond tom runs after it", gaps={2: 0.5})
    start = int(h.words[1].end_s / 0.02)
    end = int(h.words[2].start_s / 0.02)
    speech = [k in range(start, end) for k in range(400)]
    fading = [70.0] * 400
    for k in range(start, end):
        fading[k] = 70.0 - 0.5 * (k - start)
    state = Aligner(page).update(h, finished=True, speech=speech, levels=fading)
    assert state.extras == []
    rising = list(fading)
    mid = (start + end) // 2
    for k in range(mid, end):  # a dip, then a vowel
        rising[k] = rising[mid] + NUCLEUS_RISE_DB + 1.0
    state = Aligner(page).update(h, finished=True, speech=speech, levels=rising)
    assert [(e.kind, e.before) for e in state.extras] == [(UNCLEAR, 2)]
    # A rise just under the threshold is still a fading tail.
    for k in range(mid, end):
        rising[k] = fading[mid] + NUCLEUS_RISE_DB - 0.5
    assert Aligner(page).update(h, finished=True, speech=speech, levels=rising).extras == []
    # The robot spoke in the middle of the gap (the microphone muted: zeros, 0 dB), then room
    # noise: the muted silence is no dip before a vowel.
    muted = [mid - 3 <= k < mid + 3 for k in range(400)]
    noisy = [0.0 if m else level for m, level in zip(muted, fading, strict=True)]
    for k in range(mid + 3, end):
        noisy[k] = 35.0
    assert Aligner(page).update(h, finished=True, speech=speech, levels=noisy,
                                muted=muted).extras == []
    # Without the muted flags, the same zeros would read as a pause before a sound.
    assert Aligner(page).update(h, finished=True, speech=speech, levels=noisy).extras != []


def test_skipped_function_words_are_forgiven_only_inside_reading() -> None:
    page = tokenize(TEXT, "en")
    # "on" skipped between read words: forgiven.
    state = Aligner(page).update(hyp("the little boat sails the pond tom runs after it"),
                                 finished=True)
    assert state.words[4].outcome == OMISSION and state.words[4].forgiven == "function word"
    # Nothing read at all (e.g. the microphone was gated): no word counts as correct.
    state = Aligner(page).update(Hypothesis([], 5.0), finished=True)
    assert score(page, state).words_correct == 0
    # Only the first line read: "it" at the end of the unread line is not forgiven either.
    state = Aligner(page).update(hyp("the little boat sails on the pond"), finished=True)
    assert state.words[-1].forgiven is None and state.words[-1].outcome == OMISSION


def test_near_miss_before_its_word_is_a_try_and_instead_of_it_a_substitution() -> None:
    """With near misses in the page model (words that begin like a page word, `near_misses`),
    "both... boat" is heard as both words: a try, then the word; "both" and no "boat" is a
    misreading of "boat"."""
    rest = " sails on the pond tom runs after it"
    tried = Aligner(tokenize(TEXT, "en")).update(hyp("the little both boat" + rest),
                                                 finished=True)
    assert tried.words[2].outcome == SELF_CORRECTION and tried.words[2].attempts == ["both"]
    assert not tried.extras
    misread = Aligner(tokenize(TEXT, "en")).update(hyp("the little both" + rest), finished=True)
    assert misread.words[2].outcome == SUBSTITUTION and misread.words[2].heard == "both"
    assert not misread.extras


class _Scripted:
    """A recogniser that 'hears' given words once the audio reaches their end."""

    def __init__(self, words: list[RecognizedWord]) -> None:
        self.words = words
        self.t = 0.0

    def _hyp(self) -> Hypothesis:
        return Hypothesis([w for w in self.words if w.end_s <= self.t], self.t)

    def accept(self, pcm: bytes) -> Hypothesis:
        self.t += 0.02
        return self._hyp()

    def endpoint(self) -> Hypothesis:
        return self._hyp()

    def finish(self) -> Hypothesis:
        return Hypothesis(list(self.words), self.t)

    def close(self) -> None:
        pass


def test_time_the_robot_spoke_is_neither_hesitation_nor_reading_time() -> None:
    """"Together": the robot reads each sentence, then the child repeats it. The 3 s the robot
    spoke before the second sentence were counted as the child's pause (its first word became
    a 'hard word' to practise, on a page read perfectly) and as reading time (WCPM halved)."""
    from passeur.reading.audio_in import FRAME_BYTES, MicGate
    from passeur.reading.session import ReadingSession

    page = tokenize("The boat is red.\nTom runs after it.", "en")
    words, t = [], 0.5
    for i, w in enumerate("the boat is red tom runs after it".split()):
        t += 3.6 if i == 4 else 0.1  # the robot speaks from 2.6 s to 5.6 s (muted), then Tom
        words.append(RecognizedWord(w, t, t + 0.4))
        t += 0.4
    gate = MicGate(tail_s=0.0)
    session = ReadingSession(page, _Scripted(words), gate=gate)
    for n in range(int(t / 0.02) + 25):
        gate.set_speaking(2.6 <= n * 0.02 < 5.6)
        session.feed(bytes(FRAME_BYTES))
    result = session.finish()
    tom = result.state.words[4]
    assert tom.outcome == CORRECT and not tom.hesitation, tom
    assert tom.pause_before_s is not None and tom.pause_before_s < 1.0
    assert result.score.hard_words == []
    # 7.4 s from the first word to the last, 3 s of which the robot spoke.
    assert abs(result.score.reading_time_s - 4.4) < 0.1, result.score.reading_time_s
    assert abs(result.score.wcpm - 8 / 4.4 * 60) < 2.0


def test_without_the_robot_speaking_a_long_pause_stays_a_hesitation() -> None:
    page = tokenize("The boat is red.\nTom runs after it.", "en")
    state = Aligner(page).update(hyp("the boat is red tom runs after it", gaps={4: 3.6}),
                                 finished=True, muted=[False] * 500)
    assert [w.expected for w in state.words if w.hesitation] == ["tom"]
    assert score(page, state, [False] * 500).reading_time_s > 6.5


def test_a_page_nobody_read_has_no_hard_words() -> None:
    page = tokenize(TEXT, "en")
    state = Aligner(page).update(Hypothesis([], 5.0), finished=True)
    result = score(page, state)
    assert result.words_correct == 0 and result.hard_words == []


def test_words_after_where_the_reader_stopped_are_not_hard_words() -> None:
    """A child who read one line and stopped got "Words to practise: Tom, runs, after, it"
    (every word not reached), offered for practice and listed as hard for the librarian."""
    page = tokenize(TEXT, "en")
    state = Aligner(page).update(hyp("the little boat sails on the pond"), finished=True)
    result = score(page, state)
    assert [w.outcome for w in state.words][7:] == [OMISSION] * 4  # still counted
    assert result.accuracy == 7 / 11 and result.hard_words == []
    state = Aligner(page).update(hyp("the little boat on the pond tom"), finished=True)
    assert score(page, state).hard_words == ["sails"]


def test_the_stretched_end_of_a_sentence_heard_as_a_short_word_is_not_extra_speech() -> None:
    # "... pond." then a pause, "Tom runs ...": the recogniser named the end of "pond",
    # stretched before the pause, as a short word joined to it ("every day *the*" in
    # tests/integration with fwdflat_lw 4).
    page = tokenize(TEXT, "en")
    tail = hyp("the little boat sails on the pond a tom runs after it", gaps={8: 0.5},
               dur=0.3)
    assert tail.words[7].start_s == tail.words[6].end_s + 0.1  # made joined below
    words = list(tail.words)
    words[7] = RecognizedWord("a", words[6].end_s, words[6].end_s + 0.3)
    state = Aligner(page).update(Hypothesis(words, tail.audio_s), finished=True)
    assert state.extras == [] and outcomes(state) == [CORRECT] * 11
    # Streaming: the tail is the last word heard, nothing after it yet.
    state = Aligner(page).update(Hypothesis(words[:8], tail.audio_s), finished=False)
    assert state.extras == []
    # A word added after the pause, before the next sentence, is still an insertion; so is
    # one said on without a pause, and a copy of the sentence's last word a repetition.
    after_pause = list(words)
    after_pause[7] = RecognizedWord("a", words[6].end_s + 0.5, words[6].end_s + 0.7)
    state = Aligner(page).update(Hypothesis(after_pause, tail.audio_s), finished=True)
    assert [e.heard for e in state.extras] == ["a"]
    no_pause = hyp("the little boat sails on the pond a tom runs after it", gaps={7: 0.0})
    assert [e.heard for e in Aligner(page).update(no_pause, finished=True).extras] == ["a"]
    again = list(words)
    again[7] = RecognizedWord("pond", words[6].end_s, words[6].end_s + 0.3)
    state = Aligner(page).update(Hypothesis(again, tail.audio_s), finished=True)
    assert [(e.kind, e.heard) for e in state.extras] == [(REPETITION, "pond")]
