"""When the reader pauses after the last word of a sentence, its highlight must not wait for the
end of the utterance (ReadingSession, with a scripted recogniser and voice-like frames)."""

from __future__ import annotations

import numpy as np

from passeur.reading.asr import Hypothesis, RecognizedWord
from passeur.reading.audio_in import FRAME_BYTES, FRAME_SAMPLES
from passeur.reading.session import ReadingSession
from passeur.reading.text import tokenize

FRAME_S = 0.02
VOICE_END_S = 1.0  # the reader says "The cat sat." from 0.1 s to 1.0 s, then pauses


def _voice_frame(n: int) -> bytes:
    return np.random.default_rng(n).normal(0, 6000, FRAME_SAMPLES).astype(np.int16).tobytes()


class _FirstPassMishears:
    """A recogniser whose streaming result names the sentence's last word wrongly ("the", as
    pocketsphinx's first pass does for some voices) and whose end of utterance names it right
    (its second pass). Words appear once the audio reaches their end."""

    PARTIAL = [("the", 0.1, 0.3), ("cat", 0.3, 0.6), ("the", 0.6, 1.0)]
    FINAL = [("the", 0.1, 0.3), ("cat", 0.3, 0.6), ("sat", 0.6, 1.0)]

    def __init__(self, voice_end_s: float) -> None:
        self.voice_end_s = voice_end_s  # what was said: the words up to there
        self.t = 0.0
        self.ended_at_s: float | None = None
        self.final: list[RecognizedWord] = []

    def _hyp(self) -> Hypothesis:
        partial = [] if self.ended_at_s is not None else [
            RecognizedWord(w, a, b) for w, a, b in self.PARTIAL if b <= self._heard_s]
        return Hypothesis(self.final + partial, self.t)

    @property
    def _heard_s(self) -> float:
        return min(self.t, self.voice_end_s) + 1e-9

    def accept(self, pcm: bytes) -> Hypothesis:
        self.t += FRAME_S
        return self._hyp()

    def endpoint(self) -> Hypothesis:
        if self.ended_at_s is None:
            self.ended_at_s = self.t
            self.final = [RecognizedWord(w, a, b, final=True) for w, a, b in self.FINAL
                          if b <= self._heard_s]
        return self._hyp()

    def finish(self) -> Hypothesis:
        return self.endpoint()

    def close(self) -> None:
        pass


def _read(voice_end_s: float, seconds: float = 2.0, **kwargs: int
          ) -> tuple[ReadingSession, _FirstPassMishears]:
    page = tokenize("The cat sat. Tom ran.", "en")
    rec = _FirstPassMishears(voice_end_s)
    session = ReadingSession(page, rec, **kwargs)
    for n in range(int(seconds / FRAME_S)):
        t = (n + 1) * FRAME_S
        session.feed(_voice_frame(n) if 0.1 < t <= voice_end_s else bytes(FRAME_BYTES),
                     live=False)
    return session, rec


def test_the_last_word_of_a_sentence_is_highlighted_soon_after_the_reader_pauses() -> None:
    """"The cat sat." and a pause: "sat" was highlighted only once the regular endpoint
    (600 ms of silence) ended the utterance, or once the next sentence was read."""
    session, rec = _read(VOICE_END_S)
    assert rec.ended_at_s is not None and rec.ended_at_s - VOICE_END_S <= 0.3, rec.ended_at_s
    reached = session.reached_at_s.get(2)
    assert reached is not None and reached - VOICE_END_S <= 0.3, reached
    assert [w.outcome for w in session.state.words[:3]] == ["correct"] * 3


def test_a_pause_before_the_last_word_does_not_end_the_utterance_early() -> None:
    """The reader stops after "The cat" (stuck on "sat"): no voice after "cat", so only the
    regular endpoint ends the utterance, and "sat" is not highlighted."""
    session, rec = _read(0.6)
    assert rec.ended_at_s is not None and rec.ended_at_s - 0.6 >= 0.55, rec.ended_at_s
    assert 2 not in session.reached_at_s


def test_off_the_highlight_waits_for_the_regular_endpoint() -> None:
    session, rec = _read(VOICE_END_S, sentence_endpoint_ms=0)
    assert rec.ended_at_s is not None and rec.ended_at_s - VOICE_END_S >= 0.55


class _Heard:
    """A recogniser that hears fixed words (text, start, end) once the audio reaches them."""

    def __init__(self, words: list[tuple[str, float, float]]) -> None:
        self.words = words
        self.t = 0.0

    def _hyp(self) -> Hypothesis:
        return Hypothesis([RecognizedWord(w, a, b, final=True) for w, a, b in self.words
                           if b <= self.t + 1e-9], self.t)

    def accept(self, pcm: bytes) -> Hypothesis:
        self.t += FRAME_S
        return self._hyp()

    def endpoint(self) -> Hypothesis:
        return self._hyp()

    def finish(self) -> Hypothesis:
        return self._hyp()

    def close(self) -> None:
        pass


def test_voice_between_two_words_is_unclear_speech_only_with_a_syllable() -> None:
    """The session gives the aligner each frame's level: voice heard between "the" and "cat"
    that only fades (the end of a word drawn out) is no extra speech; voice that dips and
    rises again (a word the recogniser could not name) is."""

    def run(amplitudes: list[float]) -> list[str]:
        page = tokenize("The cat sat on the mat.", "en")
        rec = _Heard([("the", 0.1, 0.3), ("cat", 0.9, 1.1), ("sat", 1.1, 1.4), ("on", 1.4, 1.5),
                      ("the", 1.5, 1.6), ("mat", 1.6, 2.0)])
        session = ReadingSession(page, rec, sentence_endpoint_ms=0)  # type: ignore[arg-type]
        for n in range(120):
            t = n * FRAME_S
            if 0.1 <= t < 2.0:
                gap = int((t - 0.3) / FRAME_S) if 0.3 <= t < 0.9 else None
                amp = amplitudes[gap] if gap is not None else 6000.0
                frame = (np.random.default_rng(n).normal(0, amp, FRAME_SAMPLES)
                         .astype(np.int16).tobytes())
            else:
                frame = bytes(FRAME_BYTES)
            session.feed(frame, live=False)
        assert len(session.levels) == len(session.speech) == 120
        return [e.kind for e in session.finish().state.extras]

    fading = [6000.0 * 0.93 ** k for k in range(30)]  # -19 dB over 0.6 s, never rising
    assert run(fading) == []
    rising = [6000.0 * 0.85 ** k for k in range(15)] + [6000.0] * 15  # a dip, then a vowel
    assert run(rising) == ["unclear"]
