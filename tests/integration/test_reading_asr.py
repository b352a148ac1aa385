"""The page-following recogniser on espeak-ng recordings: correct reading, each kind of miscue,
a 3 s hesitation that makes the tutor say the word, a self-correction; checked word by word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from passeur.reading.alignment import CORRECT, REPETITION, SELF_CORRECTION
from passeur.reading.asr import create_backend
from passeur.reading.books import Library
from passeur.reading.exceptions import ASRUnavailable, AudioFormatError
from passeur.reading.session import SessionResult, read_pcm
from passeur.reading.tutor import Tutor, TutorPolicy, load_reading_config
from tests.support.reading_audio import espeak_available, reading, save

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")

S1 = "Tom has a small red boat."
S2 = "He takes it to the pond every day."
S3 = "The boat can sail from one side to the other."

CASES: dict[str, tuple[list[str | float], str, int]] = {
    "correct_f3": ([S1, S2, S3], "en-us+f3", 130),
    "correct_m3": ([S1, S2, S3], "en-us+m3", 160),
    "substitution": (["Tom has a small red cup.", S2, S3], "en-us+f3", 130),
    "omission": (["Tom has a red boat.", S2, S3], "en-us+f3", 130),
    "insertion": ([S1, "He takes it to the other pond every day.", S3], "en-us+f3", 130),
    "repetition": ([S1, "He takes it to the pond pond every day.", S3], "en-us+f3", 130),
    "hesitation": ([S1, "He takes it to the", 3.0, "pond every day.", S3], "en-us+f3", 130),
    "self_correction": ([S1, S2, "The boat can side sail from one side to the other."],
                        "en-us", 140),
}


@pytest.fixture(scope="module")
def page():  # type: ignore[no-untyped-def]
    return Library().get("little-red-boat").page(1)


@pytest.fixture(scope="module")
def backend():  # type: ignore[no-untyped-def]
    return create_backend("pocketsphinx")


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reading-audio")
    return {name: save(reading(parts, voice, rate), folder / f"{name}.wav")
            for name, (parts, voice, rate) in CASES.items()}


def run(name: str, recordings: dict[str, Path], page, backend,  # type: ignore[no-untyped-def]
        tutor: Tutor | None = None) -> SessionResult:
    from passeur.reading.audio_in import read_wav

    return read_pcm(page, read_wav(recordings[name]), backend, tutor=tutor)


def outcome(result: SessionResult, word: str) -> str:
    return next(w.outcome for w in result.state.words if w.expected == word)


def miscue_words(result: SessionResult) -> list[str]:
    return [w.expected for w in result.state.words if w.is_miscue]


@pytest.mark.parametrize("name", ["correct_f3", "correct_m3"])
def test_correct_reading(name: str, recordings, page, backend) -> None:  # type: ignore[no-untyped-def]
    result = run(name, recordings, page, backend)
    assert result.score.accuracy >= 0.9, [(w.expected, w.outcome, w.heard)
                                          for w in result.state.words]
    assert not result.state.extras
    assert not any(w.hesitation for w in result.state.words)
    # Word timings are in order and inside the audio.
    starts = [w.start_s for w in result.state.words if w.start_s is not None]
    assert starts == sorted(starts) and 0 < starts[0] and starts[-1] < result.audio_s
    assert 60 < result.score.wcpm < 300


def test_substitution(recordings, page, backend) -> None:  # type: ignore[no-untyped-def]
    result = run("substitution", recordings, page, backend)
    assert "boat" in miscue_words(result)
    assert [w for w in miscue_words(result) if w != "boat"] == [] or \
        len(miscue_words(result)) <= 2


def test_omission(recordings, page, backend) -> None:  # type: ignore[no-untyped-def]
    result = run("omission", recordings, page, backend)
    small = next(w for w in result.state.words if w.expected == "small")
    assert small.outcome == "omission" and small.is_miscue
    assert outcome(result, "red") == CORRECT and outcome(result, "boat") == CORRECT


def test_insertion(recordings, page, backend) -> None:  # type: ignore[no-untyped-def]
    result = run("insertion", recordings, page, backend)
    pond = next(w for w in result.state.words if w.expected == "pond")
    assert pond.outcome == CORRECT
    assert [(e.kind, e.heard, e.before) for e in result.state.extras] == [
        ("insertion", "other", pond.index)]


def test_repetition(recordings, page, backend) -> None:  # type: ignore[no-untyped-def]
    result = run("repetition", recordings, page, backend)
    kinds = [(e.kind, e.heard) for e in result.state.extras]
    assert kinds == [(REPETITION, "pond")]
    assert outcome(result, "pond") == CORRECT and outcome(result, "every") == CORRECT


def test_hesitation_and_tutor_says_the_word(recordings, page, backend) -> None:  # type: ignore[no-untyped-def]
    phrases, _ = load_reading_config()
    tutor = Tutor(page, phrases, TutorPolicy(stuck_s=2.5, sentence_after_s=5, min_gap_s=3))
    result = run("hesitation", recordings, page, backend, tutor)
    hesitated = [w.expected for w in result.state.words if w.hesitation]
    assert hesitated == ["pond"]
    pond = next(w for w in result.state.words if w.expected == "pond")
    assert pond.pause_before_s is not None and 2.5 < pond.pause_before_s < 3.8
    helps = [(t, a) for t, a in result.actions if a.kind == "say_word"]
    assert len(helps) == 1 and "pond" in helps[0][1].text
    assert pond.told and "pond" in result.score.hard_words
    # The help came during the pause, not after the word was read.
    assert pond.start_s is not None and helps[0][0] < pond.start_s


def test_self_correction(recordings, page, backend) -> None:  # type: ignore[no-untyped-def]
    result = run("self_correction", recordings, page, backend)
    sail = next(w for w in result.state.words if w.expected == "sail")
    assert sail.outcome == SELF_CORRECTION and sail.attempts == ["side"]
    assert sail.counted_correct


def test_bad_audio_is_refused_clearly(page, backend) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AudioFormatError, match="empty"):
        read_pcm(page, np.zeros(0, np.int16), backend)
    with pytest.raises(AudioFormatError, match="silent"):
        read_pcm(page, np.zeros(16000 * 3, np.int16), backend)


def test_french_page_with_pocketsphinx_says_no_model() -> None:
    page = Library().get("le-petit-bateau-rouge").page(1)
    backend = create_backend("pocketsphinx")
    assert not backend.supports("fr")
    with pytest.raises(ASRUnavailable, match="no French speech model.*vosk_models"):
        backend.recognizer("fr", [w.lex for w in page.words])


def test_optional_fragments_hear_a_false_start_as_a_try() -> None:
    """`fragments: true` (off by default: in smoke runs it cost more false alarms than the
    self-corrections it found) puts each long word's first half in the page model, where the
    word is expected: "gar... garden" is then a self-correction, not "garden garden"."""
    from passeur.reading.alignment import SELF_CORRECTION
    from passeur.reading.asr import create_backend
    from passeur.reading.asr_pocketsphinx import FRAGMENT_PREFIX, build_arpa
    from passeur.reading.session import read_pcm
    from passeur.reading.text import tokenize
    from tests.support.reading_audio import reading

    arpa = build_arpa(["in", "the", "garden"], [FRAGMENT_PREFIX + "garden"],
                      fragments={"garden": FRAGMENT_PREFIX + "garden"})
    assert f"the {FRAGMENT_PREFIX}garden" in arpa and f"{FRAGMENT_PREFIX}garden garden" in arpa
    page = tokenize("The frog hopped in the garden. Then it slept.", "en")
    pcm = reading(["The frog hopped in the gar garden. Then it slept."], "en-us", 150)
    result = read_pcm(page, pcm, create_backend("pocketsphinx", {"fragments": True}))
    garden = next(w for w in result.state.words if w.expected == "garden")
    assert garden.outcome == SELF_CORRECTION, [(w.expected, w.outcome, w.heard)
                                               for w in result.state.words]


def test_page_decoder_has_no_phone_loop_lookahead() -> None:
    """With pocketsphinx's phone-loop lookahead (pl_window 5), the streaming search lost
    every path a second into one benchmark page (en+m2 voice) and heard nothing more of it."""
    page = Library().get("little-red-boat").page(1)
    rec = create_backend("pocketsphinx").recognizer("en", [w.lex for w in page.words])
    try:
        assert rec._decoder.config["pl_window"] == 0
    finally:
        rec.close()


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")
def test_voice_far_from_the_model_is_followed_with_more_gaussians() -> None:
    """With pocketsphinx's default 4 Gaussians per frame, an espeak-ng voice far from the
    model's speakers (en-us+m4) had 8 of 18 words of this page misheard ("cat" as "the",
    "school" lost); the page decoder scores 32 (`topn`) and follows it."""
    from passeur.reading.text import tokenize

    text = "The green cat carried the drum to the school. Tom painted a busy boat in the school."
    page = tokenize(text, "en")
    pcm = reading([text], voice="en-us+m4", rate_wpm=125)

    def misheard(settings: dict[str, int]) -> list[tuple[str, str]]:
        result = read_pcm(page, pcm, create_backend("pocketsphinx", settings))
        return [(w.expected, w.outcome) for w in result.state.words if w.outcome != CORRECT]

    assert len(misheard({"topn": 4})) >= 6  # the control: this voice is hard for the model
    assert len(misheard({})) <= 3


def test_acoustic_fit_is_given_for_final_words_only() -> None:
    """pocketsphinx's partial results carry unshifted scores (~1000x smaller than the same
    word's once final): a partial word must carry none, or the try rule would compare a final
    copy with a partial one and always call the first a try."""
    from passeur.reading.audio_in import frames

    words = ["tom", "has", "a", "small", "red", "boat"]
    rec = create_backend("pocketsphinx").recognizer("en", words, S1)
    try:
        partial_seen = 0
        for frame in frames(reading([S1, 1.0], "en-us+f3", 130)):
            hyp = rec.accept(frame)
            for w in hyp.words:
                if not w.final:
                    assert w.acoustic_per_frame is None
                    partial_seen += 1
        hyp = rec.finish()
        assert partial_seen > 0  # the test saw partial words at all
        fits = [w.acoustic_per_frame for w in hyp.words if w.final]
        assert sum(f is not None and f <= 0.0 for f in fits) >= 4  # final words do carry one
    finally:
        rec.close()


@pytest.mark.parametrize("name", ["correct_f3", "omission"])
def test_a_sentence_pause_is_no_extra_word_with_a_lighter_second_pass(
        name: str, recordings, page) -> None:  # type: ignore[no-untyped-def]
    # With the second pass at weight 4 (asr_settings {"fwdflat_lw": 4}) the stretched end of
    # "every day." before the pause was heard as a "the" of its own, reported as extra speech.
    backend = create_backend("pocketsphinx", {"fwdflat_lw": 4.0})
    result = run(name, recordings, page, backend)
    assert result.state.extras == []


def test_the_last_word_of_a_sentence_is_highlighted_when_the_reader_pauses() -> None:
    """"... a busy kite in the school." then a pause, in a voice far from the model's
    speakers: the streaming (first-pass) result names "school" wrongly until the utterance
    ends, and the highlight of "school" waited for the 600 ms endpoint (0.72 s after the
    voice stopped, measured). A pause after the last word of a sentence now ends the
    utterance sooner (ReadingSession's sentence_endpoint_ms)."""
    from passeur.reading.audio_in import frames
    from passeur.reading.session import ReadingSession
    from passeur.reading.text import tokenize
    from tests.support.reading_audio import speak

    first = "Ben found a busy kite in the school."
    second = "One morning Kate and the dog walked to the river."
    voice, rate = "en-us+m4", 125
    spoken = speak(first, voice, rate)
    lead = np.zeros(4800, np.int16)
    pause = np.zeros(int(0.8 * 16000), np.int16)
    pcm = np.concatenate([lead, spoken, pause, speak(second, voice, rate), pause])
    voice_end_s = (len(lead) + int(np.nonzero(np.abs(spoken) > 300)[0][-1])) / 16000
    page = tokenize(f"{first} {second}", "en")
    school = len(tokenize(first, "en").words) - 1
    session = ReadingSession(page, create_backend("pocketsphinx").recognizer(
        "en", [w.lex for w in page.words], page.text))
    for frame in frames(pcm):
        session.feed(frame, live=False)
    result = session.finish()
    assert result.state.words[school].outcome == CORRECT
    late_s = result.reached_at_s[school] - voice_end_s
    assert late_s <= 0.35, f"'school' highlighted {late_s:.2f} s after the voice stopped"


def test_the_language_weight_setting_reaches_the_first_pass() -> None:
    """The page model was read with `NGramModel.readfile`, which applies no weight: the first
    (streaming) pass ran at weight 1 whatever `language_weight` said, and the setting only
    scaled the second pass (pocketsphinx runs it at fwdflatlw / lw). With the second pass off,
    a different weight must give a different first-pass result."""
    words = ["tom", "has", "a", "small", "red", "boat", "he", "takes", "it", "to", "the",
             "pond", "every", "day"]
    pcm = reading([S1, S2], "en-us+m4", 125)
    heard = []
    for weight in (1.0, 20.0):
        backend = create_backend("pocketsphinx", {
            "language_weight": weight, "decoder_options": {"fwdflat": False, "bestpath": False}})
        rec = backend.recognizer("en", words, f"{S1} {S2}")
        try:
            rec.accept(pcm.tobytes())
            heard.append([(w.text, w.start_s, w.end_s) for w in rec.finish().words])
        finally:
            rec.close()
    assert heard[0] != heard[1], heard[0]
