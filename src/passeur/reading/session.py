"""One reader on one page: audio frames in; position, miscues and tutor actions out.

Used the same way by the offline command (`passeur read`), the reading node (live audio from
the reader page or a microphone) and the benchmark. Every 20 ms frame goes to the recogniser
(silence included, so timings stay on one clock); webrtcvad decides when a pause ends an
utterance; the aligner re-reads the hypothesis whenever it changes; the tutor is asked what to
say on the audio clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from passeur.reading.adaptation import Transform
from passeur.reading.alignment import Aligner, AlignmentState, PageScore, score
from passeur.reading.asr import SAMPLE_RATE, ASRBackend, Hypothesis, StreamingRecognizer
from passeur.reading.audio_in import (
    FRAME_BYTES,
    FRAME_MS,
    MicGate,
    Segmenter,
    frame_level_db,
    frames,
    is_silent,
)
from passeur.reading.exceptions import AudioFormatError
from passeur.reading.text import Page, speakable
from passeur.reading.tutor import Action, Tutor

#: A pause this long (ms of no voice) ends the utterance when the reader is at the last word
#: of a sentence and has said something for it: the recogniser's streaming (first-pass)
#: result often names that word wrongly (as "the", "to", another page word) and only its
#: second pass, at the end of the utterance, names it right. With the regular endpoint
#: (600 ms) the highlight of a sentence's last word waited for it, or for the next
#: sentence's first word: benchmarks/reading.py, five other voices (seed 3), 25 of 104
#: sentence-final words highlighted over 300 ms late (p95 1.1 s). 0 turns it off.
SENTENCE_ENDPOINT_MS = 160
#: Voice heard after the end of the word before a sentence's last word: the reader has
#: begun the last word (a pause before it, without voice, is a hesitation, not its end).
SENTENCE_WORD_VOICED_S = 0.1


@dataclass
class SessionResult:
    page: Page
    state: AlignmentState
    score: PageScore
    actions: list[tuple[float, Action]] = field(default_factory=list)
    #: audio time (s) at which each page word was first passed by the position
    reached_at_s: dict[int, float] = field(default_factory=dict)
    decode_s: float = 0.0  # wall-clock time spent decoding
    audio_s: float = 0.0
    #: the recogniser's final hypothesis, word by word (speaker adaptation aligns it)
    heard: list[str] = field(default_factory=list)


class ReadingSession:
    def __init__(self, page: Page, recognizer: StreamingRecognizer, *,
                 tutor: Tutor | None = None, hesitation_s: float = 2.0,
                 endpoint_ms: int = 600, vad_aggressiveness: int = 2,
                 sentence_endpoint_ms: int = SENTENCE_ENDPOINT_MS,
                 gate: MicGate | None = None,
                 on_update: Callable[[AlignmentState], None] | None = None,
                 on_action: Callable[[Action], None] | None = None) -> None:
        self.page = page
        self.recognizer = recognizer
        self.aligner = Aligner(page, hesitation_s=hesitation_s)
        self.tutor = tutor
        self.segmenter = Segmenter(vad_aggressiveness, endpoint_ms)
        if sentence_endpoint_ms < 0:
            raise ValueError(f"sentence_endpoint_ms must be >= 0 (0 = off), got "
                             f"{sentence_endpoint_ms}")
        self.sentence_endpoint_ms = sentence_endpoint_ms
        self.gate = gate
        self.on_update = on_update
        self.on_action = on_action
        self.actions: list[tuple[float, Action]] = []
        self.reached_at_s: dict[int, float] = {}
        self.audio_s = 0.0
        self.decode_s = 0.0
        self._last_texts: list[str] = []
        self.speech: list[bool] = []  # voice activity per frame
        self.levels: list[float] = []  # level per frame, dB (of int16 full scale ~90 dB)
        self.muted: list[bool] = []  # per frame: microphone muted while the robot spoke
        self._frames = 0
        self._last_voice_s: float | None = None  # audio time of the last frame with voice
        self._finished: SessionResult | None = None

    @property
    def state(self) -> AlignmentState:
        return self.aligner.state

    @property
    def quiet_s(self) -> float:
        """How long (audio seconds) no voice has been heard: since the last voiced frame, or
        since the start when none was. Muted frames (the robot speaking) are no voice."""
        return self.audio_s - (self._last_voice_s if self._last_voice_s is not None else 0.0)

    def feed(self, frame: bytes, live: bool = True) -> list[Action]:
        """One 20 ms frame of 16 kHz mono int16 PCM. `live=False` for recordings (faster
        than real time): the wall-clock microphone gate does not apply to them."""
        if self._finished is not None:
            return []
        if len(frame) != FRAME_BYTES:
            raise AudioFormatError(f"expected {FRAME_MS} ms frames of {FRAME_BYTES} bytes "
                                   f"(16 kHz mono 16-bit), got {len(frame)} bytes")
        t0 = time.perf_counter()
        speaking = False
        if self.gate is not None and live:
            frame, speaking = self.gate.filter(frame)
        vad = self.segmenter.push(frame)
        self.speech.append(vad.speech)
        self.levels.append(frame_level_db(frame))
        self.muted.append(speaking)
        hyp = self.recognizer.accept(frame)
        if vad.endpoint:
            hyp = self.recognizer.endpoint()
        elif self._sentence_pause():
            hyp = self.recognizer.endpoint()
            self.segmenter.end_utterance()
        self._frames += 1
        self.audio_s = self._frames * FRAME_MS / 1000.0
        if vad.speech:
            self._last_voice_s = self.audio_s
        actions = self._after(hyp, speaking)
        self.decode_s += time.perf_counter() - t0
        return actions

    def _sentence_pause(self) -> bool:
        """The reader paused (`sentence_endpoint_ms`) after voicing the last word of a
        sentence that the hypothesis has not placed yet: time to end the utterance."""
        if self.sentence_endpoint_ms <= 0 or not self.segmenter.in_utterance \
                or self.segmenter.silence_ms < self.sentence_endpoint_ms:
            return False
        state = self.aligner.state
        p = state.position
        words = self.page.words
        if p >= len(words) or not self.page.tokens[words[p].token].sentence_end \
                or (p + 1 < len(words) and words[p + 1].token == words[p].token):
            return False
        before_end = state.words[p - 1].end_s if p > 0 else None
        voice_s = self._last_voice_s
        return voice_s is not None and (
            before_end is None or voice_s > before_end + SENTENCE_WORD_VOICED_S)

    def _after(self, hyp: Hypothesis, speaking: bool, finished: bool = False) -> list[Action]:
        texts = hyp.texts()
        state = self.aligner.state
        if texts != self._last_texts or finished:
            self._last_texts = texts
            state = self.aligner.update(Hypothesis(hyp.words, self.audio_s), finished=finished,
                                        speech=self.speech, frame_s=FRAME_MS / 1000.0,
                                        muted=self.muted, levels=self.levels)
            for i in range(state.position):
                self.reached_at_s.setdefault(i, self.audio_s)
            if self.on_update is not None:
                self.on_update(state)
        else:
            state.audio_s = self.audio_s
        actions: list[Action] = []
        if self.tutor is not None and not finished:
            actions = self.tutor.update(state, self.audio_s, speaking,
                                        reader_quiet_s=self.quiet_s)
            for action in actions:
                if action.kind == "say_word" and action.word_index is not None:
                    self.aligner.mark_told(action.word_index)
                self.actions.append((self.audio_s, action))
                if self.on_action is not None:
                    self.on_action(action)
        return actions

    def robot_spoke(self, duration_s: float) -> None:
        if self.tutor is not None:
            self.tutor.robot_spoke(self.audio_s + duration_s)

    def finish(self, announce: bool = True) -> SessionResult:
        """Score what was heard. `announce=False`: no end-of-page words from the tutor (the
        reader has already left the page)."""
        if self._finished is not None:
            return self._finished
        t0 = time.perf_counter()
        hyp = self.recognizer.finish()
        self._after(hyp, False, finished=True)
        self.decode_s += time.perf_counter() - t0
        state = self.aligner.state
        result = SessionResult(self.page, state,
                               score(self.page, state, self.muted, FRAME_MS / 1000.0),
                               list(self.actions),
                               dict(self.reached_at_s), self.decode_s, self.audio_s,
                               hyp.texts())
        # Nothing heard: no "Good effort! Shall we practise...?" for a page nobody read.
        if self.tutor is not None and announce and times_heard(state):
            end = self.tutor.page_end(result.score, state)
            result.actions.append((self.audio_s, end))
            if self.on_action is not None:
                self.on_action(end)
        self.recognizer.close()
        self._finished = result
        return result

    def close(self) -> None:
        """Release the recogniser (idempotent; `finish()` still scores what was heard)."""
        self.recognizer.close()


def times_heard(state: AlignmentState) -> bool:
    """Whether any page word was heard."""
    return any(w.start_s is not None for w in state.words)


def read_pcm(page: Page, pcm: np.ndarray, backend: ASRBackend, *, tutor: Tutor | None = None,
             hesitation_s: float = 2.0, tail_silence_s: float = 0.0,
             simulate_tutor_speech: bool = False, adaptation: Transform | None = None
             ) -> SessionResult:
    """Run a whole recording (16 kHz mono int16) through a session, as if live.
    `adaptation`: the reader's speaker transform (adaptation.py), if any."""
    if len(pcm) == 0:
        raise AudioFormatError("the audio is empty")
    if is_silent(pcm):
        raise AudioFormatError("the audio is silent: nothing was heard (check the microphone "
                               "or the file)")
    recognizer = backend.recognizer(page.lang, [w.lex for w in page.words], page.text,
                                    adaptation=adaptation)
    session = ReadingSession(page, recognizer, tutor=tutor, hesitation_s=hesitation_s)
    data = np.asarray(pcm, dtype=np.int16)
    if tail_silence_s > 0:
        data = np.concatenate([data, np.zeros(int(tail_silence_s * SAMPLE_RATE), np.int16)])
    try:
        for frame in frames(data):
            actions = session.feed(frame)
            if simulate_tutor_speech:
                for action in actions:
                    # The robot's words take about 0.4 s each to say (as said: numbers
                    # and times spelt out).
                    spoken = speakable(action.text, action.lang)
                    session.robot_spoke(0.4 * max(1, len(spoken.split())))
        return session.finish()
    finally:
        recognizer.close()
