"""The reading companion's engine, without ROS: books, live reading sessions, robot speech.

The ROS node (`reading_node.py`) and the web feature (`web_reader.py`) are thin adapters
around one `ReadingService`. Heavy work runs in worker threads owned here, never in an
executor callback or on the web server's event loop:

- one *speech* thread synthesises (espeak-ng) and plays what the robot says, in order; while
  it speaks, every session's microphone is gated (`MicGate`) and `on_speaking(True/False)`
  tells the node to publish `speech/speaking`;
- one *listening* thread per live session runs ASR + alignment + tutor on its audio frames.

Events for the reader page (position, robot speech, end of page) go to the session's listeners
(callables added with `add_listener`, called from worker threads: the web feature hops onto
its loop). Events emitted before any listener is attached (the robot saying a practice word
while the page is still connecting) are kept, bounded, and given to the first listener.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from passeur.reading.adaptation import SpeakerAdapter, Transform, save_page, stored_transform
from passeur.reading.alignment import CORRECT, SELF_CORRECTION, AlignmentState
from passeur.reading.asr import ASRBackend, create_backend
from passeur.reading.audio_in import (
    FRAME_BYTES,
    FRAME_MS,
    FrameBuffer,
    MicGate,
    Microphone,
    write_wav,
)
from passeur.reading.books import Book, Library
from passeur.reading.exceptions import (
    ASRUnavailable,
    AudioFormatError,
    ProgressStoreClosed,
    ProgressStoreCorrupt,
    ProgressStoreError,
    ProgressStoreUnavailable,
    ReadingError,
    RecordingNotSaved,
    SessionsFull,
    SpeakerBusy,
    UnknownAudio,
    UnknownSession,
)
from passeur.reading.progress_store import ProgressStore, check_reader_name
from passeur.reading.session import SENTENCE_ENDPOINT_MS, ReadingSession, SessionResult
from passeur.reading.speaker import HOLD_SLACK_S, SpeakerFloor
from passeur.reading.text import LANGUAGES, Page, SpokenText, speakable, tokenize
from passeur.reading.tts import Speech, Synthesizer, TextToSpeech, play_wav, token_timings
from passeur.reading.tutor import Action, Phrases, Tutor, TutorPolicy, load_reading_config

log = logging.getLogger(__name__)

MODES = ("read_to_me", "i_read", "together", "practice")
LISTENING_MODES = ("i_read", "together", "practice")
UNHEARD_MAX = 200  # events kept for a page that has not connected yet
#: Modes whose pages adapt the recogniser to the reader (a practised word is too short).
ADAPTING_MODES = ("i_read", "together")
#: Audio of one page kept in memory for speaker adaptation (s); beyond, it is not kept.
MAX_ADAPT_S = 300.0
#: Pages waiting for their adaptation statistics (one worker thread); beyond, dropped.
MAX_ADAPT_QUEUE = 8
MAX_QUEUED_S = 600.0  # audio a session holds before decoding (an upload may not exceed it)
#: "Read to me" pages queued for the robot's speaker (one reading, one waiting): the page API
#: is public, and each holds a whole synthesised page until the robot has read it aloud.
MAX_QUEUED_PAGE_READINGS = 2
#: Announcements (`speech/say`, staff's POST /api/reading/say: speech for no session) queued
#: or being said. Any node may publish `speech/say`: without a bound, a flooding publisher
#: grew the queue (and the robot's backlog of things to say) without limit. When it is full,
#: the NEWEST is refused, not the oldest dropped: what was accepted is said, whole and in
#: order (a patrol's French then English announcement, a message staff were told was
#: queued), and the refusal goes to whoever can act on it now (429 to staff; a throttled
#: warning for the topic), not to one who believes it said already.
MAX_QUEUED_ANNOUNCEMENTS = 8
#: Pause after the robot's words before the tutor's stuck clock runs again (s).
AFTER_SPEECH_S = 0.5
#: Time the speaker's player may take beyond the audio's own length before it is stopped (s).
PLAYER_MARGIN_S = 30.0
Listener = Callable[[dict[str, Any]], None]


@dataclass
class ServiceConfig:
    books_dir: Path | None = None
    asr_backend: str = "pocketsphinx"
    asr_settings: dict[str, Any] = field(default_factory=dict)
    progress_db: Path | None = None
    store_audio: bool = False
    reading_config: Path | None = None
    hesitation_s: float = 2.0
    tts_rate_wpm: int = 140
    play_on_speaker: bool = False
    speaker_device: str | None = None
    echo_tail_s: float = 0.3
    max_sessions: int = 4
    #: A session whose child was heard (or which began, or for which the robot spoke) within
    #: this many seconds is in use: it is not ended to make room for a new one, which is
    #: refused instead (SessionsFull). Older ones (a tablet left open) make room.
    busy_s: float = 30.0
    endpoint_ms: int = 600  # a pause this long ends an utterance (VAD)
    #: a shorter pause ends it at the last word of a sentence (session.SENTENCE_ENDPOINT_MS)
    sentence_endpoint_ms: int = SENTENCE_ENDPOINT_MS
    vad_aggressiveness: int = 2  # webrtcvad 0 (lenient) .. 3 (strict)
    #: Local microphone (sounddevice/PortAudio device name or index) for sessions whose
    #: audio comes from the robot itself instead of the page; None = no local microphone.
    microphone_device: str | None = None
    audio_keep: int = 32  # robot speech WAVs kept for the page to fetch
    validate_models: bool = True  # check configured model paths at start-up
    #: Adapt the recogniser to each named reader from their own saved readings (speaker
    #: adaptation, adaptation.py): statistics kept with their progress, never audio.
    adapt_to_reader: bool = True


def _audio_key(prefix: str) -> str:
    """A key for robot speech the page fetches without a login (GET /api/reading/audio/KEY.wav):
    unguessable, since what the robot tells a child can carry their progress."""
    return prefix + secrets.token_urlsafe(12)


def page_payload(book: Book, number: int) -> dict[str, Any]:
    page = book.page(number)
    return {"book": book.id, "title": book.title, "lang": book.lang, "page": number,
            "pages": len(book.pages), "text": page.text,
            "tokens": [{"i": t.index, "text": t.text, "start": t.start, "end": t.end,
                        "sentence": t.sentence, "line_end": t.line_end} for t in page.tokens]}


def state_payload(state: AlignmentState) -> dict[str, Any]:
    return {"type": "position", "position": state.position,
            "token": state.current_token,
            "words": [{"i": w.index, "token": w.token, "outcome": w.outcome,
                       "hesitation": w.hesitation, "told": w.told,
                       "miscue": w.is_miscue} for w in state.words if w.outcome != "pending"],
            "audio_s": round(state.audio_s, 2)}


@dataclass
class AudioItem:
    """One queued piece of a session's audio: a 16 kHz frame, or raw samples at `rate`."""

    frame: bytes | None
    samples: np.ndarray | None
    rate: int
    live: bool


class LiveSession:
    """One reader, one page, one mode: audio frames in (any thread), events out."""

    def __init__(self, service: ReadingService, book: Book, number: int, mode: str,
                 reader: str | None, source: str = "page", word: str | None = None,
                 previous: dict[str, Any] | None = None) -> None:
        self.id = uuid.uuid4().hex[:16]
        self.service = service
        self.book = book
        self.number = number
        book_page = book.page(number)
        #: "practice": one hard word of the page, said by the robot, then by the child
        self.word = word
        #: the practised word as it is read, said and expected: "M." of "M. Dupont" is
        #: "monsieur" on the page, but "M" alone would be the letter
        self._word_read = word
        if word and not word[0].isdigit():
            self._word_read = next((t.said for t in book_page.tokens
                                    if t.text == word and t.said is not None), word)
        self.page: Page = tokenize(self._word_read, book.lang) if self._word_read \
            else book_page
        self.mode = mode
        self.reader = reader
        #: where the child's voice comes from: "page" (WebRTC, uploads) or "robot" (its own
        #: microphone; audio from the page is refused, not mixed with it)
        self.source = source
        self.listeners: list[Listener] = []
        #: events emitted while nobody listened, for the first listener (oldest dropped)
        self._unheard: list[dict[str, Any]] = []
        self._listeners_lock = threading.Lock()
        # 20 ms items: 16 kHz frames (bytes, live?) or raw page audio (samples, rate) that the
        # listening thread resamples; bounded (MAX_QUEUED_S of audio).
        self.frames: queue.Queue[AudioItem | None] = queue.Queue(
            maxsize=int(MAX_QUEUED_S * 1000 / FRAME_MS))
        self._buffer = FrameBuffer()
        self.result: SessionResult | None = None
        self.saved = False  # the result is in the progress store
        self.store_error: str | None = None  # why saving failed (retried by finish())
        #: called once when the session closes (the web feature closes its peer connection)
        self.on_close: list[Callable[[LiveSession], None]] = []
        self.said: list[dict[str, Any]] = []
        self.created_s = time.monotonic()
        #: when this session was last in use (monotonic): created, the child's voice heard,
        #: the robot speaking for it (ReadingService.open_session keeps busy sessions)
        self.active_s = self.created_s
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._session: ReadingSession | None = None
        self._recorded: list[bytes] = []
        # Audio items queued so far and taken in by the listening thread: finishing waits for
        # the audio queued before it, not for audio still streaming in (audio_mark()).
        self._queued = 0
        self._decoded = 0
        self._listening_ended = False
        self._count_lock = threading.Lock()
        self._closed = False
        self._together_sentence = 0
        self._max_position = 0
        self._practice_done = False
        #: the page's audio as fed to the recogniser, kept (in memory, bounded) for the
        #: reader's speaker adaptation once the page is saved; None: not adapting
        self._adapt_frames: list[bytes] | None = None
        if reader and mode in ADAPTING_MODES and service.config.adapt_to_reader:
            self._adapt_frames = []
        if mode in LISTENING_MODES:
            backend = service.backend()
            # Practice: the whole page's words stay in the recogniser's vocabulary, so that
            # a wrong try is heard as another word instead of being forced onto the target.
            vocabulary = [w.lex for w in book_page.words]
            if word:
                vocabulary += [w.lex for w in self.page.words]
            adaptation = None
            if self._adapt_frames is not None and reader:
                adaptation = service.reader_transform(reader, self.page.lang)
            recognizer = backend.recognizer(self.page.lang, vocabulary, book_page.text,
                                            adaptation=adaptation)
            phrases, policy = service.phrases, service.policy
            tutor = None
            if mode == "i_read" and phrases.has(self.page.lang):
                tutor = Tutor(self.page, phrases, policy, previous=previous)
            elif mode == "i_read":
                log.info("no tutor phrases for '%s' (config/reading.yaml): the robot follows "
                         "and scores the reading without speaking", self.page.lang)
            cfg = service.config
            self._session = ReadingSession(self.page, recognizer, tutor=tutor,
                                           hesitation_s=cfg.hesitation_s,
                                           endpoint_ms=cfg.endpoint_ms,
                                           sentence_endpoint_ms=cfg.sentence_endpoint_ms,
                                           vad_aggressiveness=cfg.vad_aggressiveness,
                                           gate=service.gate, on_update=self._on_update,
                                           on_action=self._on_action)
            self._thread = threading.Thread(target=self._listen, daemon=True,
                                            name=f"reading-asr-{self.id[:6]}")
            self._thread.start()
        self._mic: Any = None
        if source == "robot" and mode in LISTENING_MODES:
            self._open_microphone()

    def _open_microphone(self) -> None:
        device = self.service.config.microphone_device
        if device is None:
            self.close()
            raise ReadingError("no local microphone configured: set the reading node's "
                               "'microphone_device' parameter (or read from the page)")
        try:
            self._mic = Microphone(int(device) if device.isdigit() else device)
            self._mic.start()
        except BaseException:
            # Nobody will get this session: its listening thread and recogniser go with it.
            self.close()
            raise
        threading.Thread(target=self._pump_microphone, args=(self._mic,), daemon=True,
                         name=f"reading-mic-{self.id[:6]}").start()

    def _pump_microphone(self, mic: Microphone) -> None:
        # Its own reference to the microphone: close() (any thread) sets self._mic to None,
        # and one closing between a check of self._mic and its use ended this thread in an
        # AttributeError traceback. A closed microphone's queue just runs dry.
        while not self._closed:
            try:
                frame = mic.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self.push_frame(frame)

    # -- events ------------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Attach a listener; it first hears what was emitted while nobody listened."""
        with self._listeners_lock:
            unheard, self._unheard = self._unheard, []
            for event in unheard:
                self._call(listener, event)
            self.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._listeners_lock:
            if listener in self.listeners:
                self.listeners.remove(listener)

    def emit(self, event: dict[str, Any]) -> None:
        with self._listeners_lock:
            listeners = list(self.listeners)
            if not listeners:
                self._unheard.append(event)
                del self._unheard[:-UNHEARD_MAX]
                return
        for listener in listeners:
            self._call(listener, event)

    @staticmethod
    def _call(listener: Listener, event: dict[str, Any]) -> None:
        try:
            listener(event)
        except Exception:
            log.exception("reader event listener failed")

    def _on_update(self, state: AlignmentState) -> None:
        # A partial hypothesis can be revised and step back a word: the highlight does not
        # follow such flickers (re-reading never moves the position back either).
        if state.position < self._max_position:
            return
        self._max_position = state.position
        self.emit(state_payload(state))
        if self.mode == "together":
            self._together_progress(state)
        elif self.mode == "practice":
            self._practice_progress(state)

    def _on_action(self, action: Action) -> None:
        # Hold the tutor's stuck clock (audio time, so recordings fed faster than real time
        # behave like live ones) for as long as the robot will talk: the audio is made now
        # (a phrase takes milliseconds) so that its real length is known. Counting the
        # written words fell short once numbers, times and abbreviations are said in full
        # ("14h30": one word written, three said).
        spoken = speakable(action.text, action.lang)
        speech: Speech | None = None
        try:
            speech = self.service.synth.synthesize(spoken, action.lang)
            duration_s = speech.duration_s
        except ReadingError as exc:  # the speech thread tries again and reports it
            log.warning("reading session %s: could not synthesise the tutor's words in "
                        "advance (%s): estimating their length", self.id, exc)
            duration_s = speech_estimate_s(spoken, self.service.config.tts_rate_wpm)
        self.robot_spoke(duration_s + AFTER_SPEECH_S)
        self.service.say(action.text, action.lang, session=self, kind=action.kind,
                         speech=speech)

    # -- audio -------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def listening(self) -> bool:
        return self._session is not None

    def queue_room_s(self) -> float:
        """How much more audio (s) the queue accepts now."""
        return (self.frames.maxsize - self.frames.qsize()) * FRAME_MS / 1000.0

    def _put(self, item: AudioItem) -> None:
        try:
            self.frames.put_nowait(item)
        except queue.Full:
            log.warning("reading session %s: audio queue full, dropping a frame", self.id)
            return
        with self._count_lock:  # the loop thread and the microphone's both queue audio
            self._queued += 1

    def audio_mark(self) -> int:
        """A mark of the audio queued so far, for decoded()."""
        with self._count_lock:
            return self._queued

    @property
    def decoded_items(self) -> int:
        """Audio items the listening thread has taken in (grows while it makes progress)."""
        return self._decoded

    def decoded(self, mark: int) -> bool:
        """Whether the audio queued up to `mark` has been taken in by the recogniser, or
        never will be (not listening, or the listening thread ended: closed, or an error
        it reported)."""
        return self._decoded >= mark or self._session is None or self._listening_ended

    def push_frame(self, frame: bytes, live: bool = True) -> None:
        """A 20 ms 16 kHz mono int16 frame (called from the WebRTC or microphone thread);
        `live=False` for an uploaded recording (not gated while the robot speaks)."""
        if self._session is None or self._closed:
            return
        if len(frame) != FRAME_BYTES:
            raise ReadingError(f"audio frames must be {FRAME_BYTES} bytes")
        self._put(AudioItem(frame, None, 0, live))

    def push_audio(self, samples: np.ndarray, rate: int) -> None:
        """A chunk of live audio at any rate/channels (a WebRTC frame): queued as is; the
        listening thread resamples it (stateful, off the event loop). Never blocks."""
        if self._session is None or self._closed:
            return
        self._put(AudioItem(None, samples, rate, True))

    def _listen(self) -> None:
        assert self._session is not None
        try:
            while True:
                item = self.frames.get()
                if item is None:
                    break
                try:
                    if item.frame is not None:
                        chunk = [item.frame]
                    else:
                        assert item.samples is not None
                        chunk = self._buffer.push(item.samples, item.rate)
                except AudioFormatError as exc:
                    self.emit({"type": "error", "message": str(exc)})
                    break
                if not self._feed(chunk, item.live):
                    break
                self._decoded += 1  # this thread alone writes it
        finally:
            self._listening_ended = True  # audio still queued will never be decoded

    def _feed(self, chunk: list[bytes], live: bool) -> bool:
        assert self._session is not None
        for frame in chunk:
            if self.service.config.store_audio and self.reader:
                self._recorded.append(frame)
            with self._lock:
                if self._closed:
                    return False
                if self._adapt_frames is not None and self.result is None:
                    if len(self._adapt_frames) < MAX_ADAPT_S * 1000 / FRAME_MS:
                        self._adapt_frames.append(frame)
                    else:  # too long to keep: the page does not adapt (words would not fit)
                        self._adapt_frames = None
                try:
                    self._session.feed(frame, live)
                    if self._session.speech and self._session.speech[-1]:
                        self.active_s = time.monotonic()
                    if self.mode == "together":
                        self._together_pause()
                except ReadingError as exc:
                    self.emit({"type": "error", "message": str(exc)})
                    return False
                except Exception as exc:
                    log.exception("reading session %s: listening failed", self.id)
                    self.emit({"type": "error", "message": f"listening failed: {exc}"})
                    return False
        return True

    def robot_spoke(self, duration_s: float) -> None:
        self.active_s = max(self.active_s, time.monotonic() + duration_s)
        if self._session is not None:
            self._session.robot_spoke(duration_s)

    # -- practice ----------------------------------------------------------------------------
    def start_practice(self) -> None:
        """The robot says the word; the microphone is gated meanwhile, then it listens."""
        assert self.word is not None
        self.service.say(self.service.phrases.pick(self.page.lang, "practice_say",
                                                   word=self._word_read or self.word),
                         self.page.lang, session=self, kind="practice_model")

    def _practice_progress(self, state: AlignmentState) -> None:
        if self._practice_done or not state.words:
            return
        if all(w.outcome in (CORRECT, SELF_CORRECTION) for w in state.words):
            self._practice_done = True
            self.emit({"type": "practice", "word": self.word, "correct": True})
            self.service.say(self.service.phrases.pick(self.page.lang, "practice_good",
                                                       word=self._word_read or ""),
                             self.page.lang, session=self, kind="practice_good")

    def practice_result(self) -> dict[str, Any]:
        """End of one practice word: {"type": "practice", "word", "correct"}."""
        if self._session is not None and not self._practice_done:
            with self._lock:
                state = self._session.finish().state
            self._practice_progress(state)
        payload = {"type": "practice", "word": self.word, "correct": self._practice_done,
                   "final": True}
        self.emit(payload)
        return payload

    # -- together mode ------------------------------------------------------------------------
    def start_together(self) -> None:
        self._say_sentence(0)

    def _say_sentence(self, sentence: int) -> None:
        self._together_sentence = sentence
        text = self.page.sentence_text(sentence)
        if text:
            self.service.say(text, self.page.lang, session=self, kind="model_sentence",
                             highlight_sentence=sentence)
            self.service.say(self.service.phrases.pick(self.page.lang, "your_turn"),
                             self.page.lang, session=self, kind="your_turn")

    def _together_progress(self, state: AlignmentState) -> None:
        tokens = self.page.sentence_tokens(self._together_sentence)
        if not tokens:
            return
        last_word = max(i for i, w in enumerate(self.page.words) if w.token == tokens[-1].index)
        if state.position > last_word and self._together_sentence + 1 < \
                self.page.sentence_count:
            self._say_sentence(self._together_sentence + 1)

    def _together_pause(self) -> None:
        """The child began repeating the sentence, then stopped for the tutor's `stuck_s`
        without its end being heard (a last word skipped, or said too softly): the robot
        goes on with the next sentence instead of waiting for ever. (Called per frame, in the
        listening thread, with the session's lock held.)"""
        assert self._session is not None
        if self._together_sentence + 1 >= self.page.sentence_count \
                or self._session.quiet_s < self.service.policy.stuck_s:
            return
        tokens = self.page.sentence_tokens(self._together_sentence)
        if not tokens:
            return
        first_word = min(i for i, w in enumerate(self.page.words)
                         if w.token == tokens[0].index)
        if self._session.state.position > first_word:
            self._say_sentence(self._together_sentence + 1)

    # -- end ---------------------------------------------------------------------------------
    def finish(self, announce: bool = True) -> dict[str, Any]:
        """Score the page (once) and save it for the reader. The score always reaches the
        child: if saving fails, the payload carries a non-blocking `warning`, the error is
        logged for the librarian, and a later `finish()` tries to save again.
        `announce=False` (the reader left the page, or the session makes room for another):
        the robot says nothing about the page; its words would also hold the microphones
        of the reader's next page shut while it spoke."""
        if self.mode == "practice":
            return self.practice_result()
        with self._lock:
            if self._session is None:
                return {"type": "finished", "mode": self.mode}
            if self.result is None:
                self.result = self._session.finish(announce)
            # A page where no word was heard (the child left, or the microphone gave nothing)
            # is no reading: saved, it would put a 0 in the librarian's progress chart.
            heard = any(w.start_s is not None for w in self.result.state.words)
            if self.reader and not self.saved and heard:
                try:
                    self._store()
                except RecordingNotSaved as exc:
                    # The scores are in the store: only the recording is missing. Told to
                    # the librarian, not to the child; saving again would record it twice.
                    self.saved = True
                    self.store_error = None
                    self.service.storage_failed(self, exc)
                except ProgressStoreError as exc:
                    self.store_error = str(exc)
                    self.service.storage_failed(self, exc)
                else:
                    self.saved = True
                    self.store_error = None
            if self.reader and self.saved and self._adapt_frames:
                # The saved page adapts the recogniser to this reader (in the background);
                # robot speech the microphone picked up is silenced first.
                self.service.adapt_later(self.reader, self.page.lang, self._adapt_frames,
                                         list(self._session.muted[:len(self._adapt_frames)]),
                                         self.result.heard)
                self._adapt_frames = None
        r = self.result
        payload = state_payload(r.state)
        payload.update({
            "type": "finished", "wcpm": round(r.score.wcpm, 1),
            "accuracy": round(r.score.accuracy, 3), "words_correct": r.score.words_correct,
            "words_total": r.score.words_total, "hard_words": r.score.hard_words,
            "reading_time_s": round(r.score.reading_time_s, 2), "saved": self.saved})
        if self.store_error is not None:
            payload["warning"] = {"code": "not_saved", "message": self.store_error}
        self.emit(payload)
        return payload

    def _store(self) -> None:
        if not self.reader or self.result is None:
            return
        store = self.service.store()
        audio = None
        if self.service.config.store_audio and self._recorded:
            import io
            import wave

            buf = io.BytesIO()
            with wave.open(buf, "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(16000)
                wav.writeframes(b"".join(self._recorded))
            audio = buf.getvalue()
        # One transaction: a failed save can be retried without a half-recorded session.
        store.record_reading(self.reader, self.book.id, self.mode, self.number,
                             self.page.lang, self.result.state, self.result.score, audio)

    def close(self) -> None:
        """Stop listening and release the microphone, the recogniser and (through
        `on_close`) the page's peer connection. Safe to call twice, from any thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self.frames.put_nowait(None)
        except queue.Full:
            pass
        if getattr(self, "_mic", None) is not None:
            self._mic.close()
            self._mic = None
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
        with self._lock:
            self._adapt_frames = None  # a page never saved: its audio is not kept
            if self._session is not None:
                self._session.close()
        for callback in list(self.on_close):
            try:
                callback(self)
            except Exception:
                log.exception("reading session %s: close callback failed", self.id)
        self.on_close.clear()
        with self._listeners_lock:
            self.listeners.clear()
            self._unheard.clear()


def speech_estimate_s(spoken: str, rate_wpm: int) -> float:
    """About how long the synthesiser takes to say `spoken` (the words it is given, numbers
    spelt out: `speakable`) at `rate_wpm` words per minute, when its audio is not at hand."""
    return max(1, len(spoken.split())) * 60.0 / rate_wpm


@dataclass
class SpeechItem:
    text: str
    lang: str
    session: LiveSession | None
    kind: str
    key: str
    highlight_sentence: int | None = None
    speech: Speech | None = None  # already synthesised ("Read to me" on the speaker)


def _word_timings(spoken: SpokenText, speech: Speech) -> list[dict[str, Any]]:
    """When each page token of `spoken` is said in `speech`, for the highlight."""
    times = token_timings(spoken.spans, speech)
    return [{"token": i, "start_s": round(a, 3), "end_s": round(b, 3)}
            for i, (a, b) in zip(spoken.tokens, times, strict=True)]


def _spoken(item: SpeechItem) -> SpokenText:
    """What the robot says for `item`. In a reading (the tutor, a sentence modelled in
    Together mode), numbers are spelt out as the page reads them, and a sentence of the page
    also locates its tokens, for the highlight. Announcements (staff, `speech/say`) are no
    page's words: the synthesiser reads them its own way ("14:30", "50 %")."""
    if item.speech is not None:
        return SpokenText(item.speech.text, [], [])  # synthesised already (Read to me, tutor)
    if item.session is None:
        return SpokenText(item.text, [], [])
    if item.highlight_sentence is not None:
        page = item.session.page
        start, end = page.sentence_span(item.highlight_sentence)
        if page.text[start:end].strip() == item.text:
            return page.spoken(start, end)
    return SpokenText(speakable(item.text, item.lang), [], [])


class ReadingService:
    def __init__(self, config: ServiceConfig | None = None,
                 on_speaking: Callable[[bool], None] | None = None) -> None:
        self.config = config or ServiceConfig()
        self.library = Library(self.config.books_dir)
        self.phrases: Phrases
        self.policy: TutorPolicy
        self.phrases, self.policy = load_reading_config(self.config.reading_config)
        self.synth: TextToSpeech = Synthesizer(rate_wpm=self.config.tts_rate_wpm)
        self.gate = MicGate(self.config.echo_tail_s)
        # Whoever uses the robot's voice (speech thread, or a page playing robot speech) holds
        # the floor: microphones gated, speech/speaking true, nothing else spoken meanwhile.
        self.floor = SpeakerFloor(on_change=self._set_speaking)
        self._durations: dict[str, float] = {}  # audio key -> seconds
        self.on_speaking = on_speaking
        self.sessions: dict[str, LiveSession] = {}
        self.spoken: list[dict[str, Any]] = []  # what the robot said (newest last, bounded)
        #: results that could not be saved (newest last, bounded), for the librarian
        self.storage_errors: list[dict[str, Any]] = []
        self.audio: dict[str, bytes] = {}  # key -> WAV, for the page
        self._backend: ASRBackend | None = None
        self._store: ProgressStore | None = None
        self._speech: queue.Queue[SpeechItem | None] = queue.Queue()
        self._page_readings = 0  # read_to_me items queued or being read on the speaker
        self._announcements = 0  # speech for no session queued or being said
        self._lock = threading.Lock()
        self._closed = False
        #: set by close(): the speech thread stops playing or waiting out what it says
        self._stopping = threading.Event()
        if self.config.validate_models:
            self.validate()
        self._adapt_queue: queue.Queue[tuple[str, str, list[bytes], list[bool], list[str]]
                                       | None] = queue.Queue(maxsize=MAX_ADAPT_QUEUE)
        self._adapt_thread: threading.Thread | None = None
        self._speech_thread = threading.Thread(target=self._speak_loop, daemon=True,
                                               name="reading-speech")
        self._speech_thread.start()

    # -- engines ----------------------------------------------------------------------------
    def validate(self) -> None:
        """Start-up checks (the node fails fast, naming the setting): the ASR backend exists
        and every *configured* model path is usable (models are loaded on first use). A
        language with no model configured is not an error: the page says listening is
        unavailable for it and offers "Read to me"."""
        backend = self.backend()
        backend.validate()
        if not any(backend.supports(lang) for lang in LANGUAGES):
            log.warning("reading: no speech-recognition model for French or English (asr_backend"
                        " '%s'): 'I read' and 'Together' are unavailable, 'Read to me' works",
                        self.config.asr_backend)

    def backend(self) -> ASRBackend:
        with self._lock:
            if self._backend is None:
                self._backend = create_backend(self.config.asr_backend,
                                               self.config.asr_settings)
            return self._backend

    def store(self) -> ProgressStore:
        with self._lock:
            return self._open_store()

    def _open_store(self) -> ProgressStore:
        # (with self._lock held)
        if self._store is None:
            from passeur.reading.commands import default_db_path

            self._store = ProgressStore(self.config.progress_db or default_db_path(),
                                        store_audio=self.config.store_audio)
        return self._store

    def storage_failed(self, session: LiveSession, exc: ProgressStoreError) -> None:
        """A result could not be saved: tell the librarian (log, `storage_errors`) and, when
        the file itself is the problem, drop the connection so a retry reopens it (after the
        file was moved away or restored)."""
        what = "recording" if isinstance(exc, RecordingNotSaved) else "reading result"
        log.error("%s of '%s' (%s page %d) NOT saved: %s", what, session.reader,
                  session.book.id, session.number, exc)
        with self._lock:
            self.storage_errors.append({"time": time.time(), "reader": session.reader,
                                        "book": session.book.id, "page": session.number,
                                        "error": str(exc), "kind": type(exc).__name__})
            del self.storage_errors[:-50]
            if isinstance(exc, (ProgressStoreCorrupt, ProgressStoreUnavailable,
                                ProgressStoreClosed)) and self._store is not None:
                self._store.close()
                self._store = None

    # -- speaker adaptation (adaptation.py) ---------------------------------------------------
    def _adapter(self, lang: str) -> SpeakerAdapter | None:
        try:
            return self.backend().adapter(lang)
        except ASRUnavailable:
            return None

    def reader_transform(self, reader: str, lang: str) -> Transform | None:
        """The reader's speaker transform for `lang` from their saved statistics, or None (none
        yet, too few, adaptation off or unavailable). Never stops a reading: a store or data
        problem is logged and the page is decoded with the model as shipped."""
        adapter = self._adapter(lang)
        if adapter is None:
            return None
        try:
            return stored_transform(self.store(), adapter, reader, lang)
        except (ProgressStoreError, ValueError) as exc:
            log.warning("speaker adaptation of '%s' not used (%s): the model as shipped "
                        "decodes this page", reader, exc)
            return None

    def adapt_later(self, reader: str, lang: str, frames: list[bytes], muted: list[bool],
                    heard: list[str]) -> None:
        """Queue a saved page for the reader's adaptation statistics (one worker thread, off
        the listening path). Dropped, with a log line, when too many pages are waiting."""
        if not heard:
            return
        with self._lock:
            if self._closed:  # (under the lock: close() then sees any worker started)
                return
            if self._adapt_thread is None:
                self._adapt_thread = threading.Thread(target=self._adapt_loop, daemon=True,
                                                      name="reading-adapt")
                self._adapt_thread.start()
        try:
            self._adapt_queue.put_nowait((reader, lang, frames, muted, heard))
        except queue.Full:
            log.warning("speaker adaptation: %d pages already waiting, a page of '%s' is not "
                        "used", MAX_ADAPT_QUEUE, reader)

    def _adapt_loop(self) -> None:
        while True:
            item = self._adapt_queue.get()
            try:
                if item is None:
                    return
                self._adapt(*item)
            except Exception:
                log.exception("speaker adaptation failed (the reading was saved)")
            finally:
                self._adapt_queue.task_done()

    def _adapt(self, reader: str, lang: str, frames: list[bytes], muted: list[bool],
               heard: list[str]) -> None:
        adapter = self._adapter(lang)
        if adapter is None:
            return
        silent = bytes(FRAME_BYTES)
        pcm = np.frombuffer(b"".join(silent if k < len(muted) and muted[k] else f
                                     for k, f in enumerate(frames)), np.int16)
        try:
            with self._lock:
                if self._closed:
                    return  # shutting down: the store is closed, not to be opened again
                # Taken now: if close() stops waiting for this page, it closes this store
                # and the statistics are refused (ProgressStoreClosed), not written to a
                # store opened again after shutdown.
                store = self._open_store()
            save_page(store, adapter, reader, lang, pcm, heard)
        except ProgressStoreError as exc:
            log.warning("speaker adaptation of '%s' not saved: %s", reader, exc)

    def can_listen(self, lang: str) -> bool:
        try:
            return self.backend().supports(lang)
        except ASRUnavailable:
            return False

    # -- sessions ----------------------------------------------------------------------------
    def open_session(self, book_id: str, number: int, mode: str, reader: str | None,
                     source: str = "page", word: str | None = None) -> LiveSession:
        """Validate the request and create the session first; only then, if there are too
        many, close the oldest that is not in use (nobody heard for `busy_s`): a bad request
        never ends another child's session, nor does a new one end a child's reading. When
        every other session is in use, the new one is refused (SessionsFull).
        `word` (mode "practice"): a word shown on that page."""
        if mode not in MODES:
            raise ReadingError(f"unknown mode '{mode}' (expected one of {', '.join(MODES)})")
        if source not in ("page", "robot"):
            raise ReadingError(f"audio source must be 'page' or 'robot', not '{source}'")
        if reader:
            reader = check_reader_name(reader)
        book = self.library.get(book_id)
        page = book.page(number)
        if mode in ("together", "practice") and not self.phrases.has(book.lang):
            raise ReadingError(f"'{mode}' needs the robot to speak '{book.lang}': no phrases "
                               "for it in config/reading.yaml (use 'i_read')")
        if mode == "practice":
            shown = {t.text for t in page.tokens}
            if not word or word not in shown:
                raise ReadingError(f"practice needs a word of page {number} "
                                   f"(got {word!r})")
        else:
            word = None
        previous = self._previous_reading(reader, book.id, number) if mode == "i_read" \
            else None
        session = LiveSession(self, book, number, mode, reader, source, word=word,
                              previous=previous)
        evicted: list[LiveSession] = []
        with self._lock:
            excess = len(self.sessions) + 1 - self.config.max_sessions
            now = time.monotonic()
            idle = sorted((s for s in self.sessions.values()
                           if now - s.active_s >= self.config.busy_s),
                          key=lambda s: s.created_s) if excess > 0 else []
            if excess > len(idle):
                session.close()
                raise SessionsFull(
                    f"{len(self.sessions)} children are reading with the robot already "
                    f"(max_sessions), each heard within the last {self.config.busy_s:g} s: "
                    "try again when one has finished")
            self.sessions[session.id] = session
            for oldest in idle[:excess]:
                self.sessions.pop(oldest.id)
                evicted.append(oldest)
        for old in evicted:
            log.info("reading session %s closed: %d sessions at most (max_sessions)", old.id,
                     self.config.max_sessions)
            if old.mode in ("i_read", "together"):
                # What that child read is scored and saved (their page shows the result),
                # not thrown away with the session.
                try:
                    old.finish(announce=False)
                except ReadingError as exc:
                    log.warning("reading session %s: its reading could not be scored: %s",
                                old.id, exc)
            old.emit({"type": "error", "code": "session_replaced",
                      "message": "this reading session was ended to make room for a new one"})
            old.close()
        return session

    def _previous_reading(self, reader: str | None, book_id: str, number: int
                          ) -> dict[str, Any] | None:
        """The reader's last reading of this page (for specific praise), if it can be read."""
        if not reader:
            return None
        try:
            return self.store().last_page(reader, book_id, number)
        except ProgressStoreError as exc:
            log.warning("previous reading of '%s' unavailable: %s", reader, exc)
            return None

    def get_session(self, session_id: str) -> LiveSession:
        with self._lock:
            session = self.sessions.get(session_id)
        if session is None:
            raise UnknownSession(f"no reading session '{session_id}' (expired or finished)")
        return session

    def close_session(self, session_id: str) -> None:
        with self._lock:
            session = self.sessions.pop(session_id, None)
        if session is not None:
            session.close()

    # -- speech ------------------------------------------------------------------------------
    def say(self, text: str, lang: str, *, session: LiveSession | None = None,
            kind: str = "say", highlight_sentence: int | None = None,
            speech: Speech | None = None) -> str:
        """Queue something for the robot to say; returns the key of its audio. `speech`:
        its audio, already synthesised from `speakable(text, lang)` (kept at once).
        SpeakerBusy for an announcement (no `session`) while MAX_QUEUED_ANNOUNCEMENTS wait."""
        if lang not in ("fr", "en"):
            raise ReadingError(f"speech language must be 'fr' or 'en', not '{lang}'")
        text = (text or "").strip()[:2000]
        if not text:
            raise ReadingError("nothing to say (empty text)")
        if session is None:
            with self._lock:
                if self._announcements >= MAX_QUEUED_ANNOUNCEMENTS:
                    raise SpeakerBusy(
                        f"the robot already has {self._announcements} announcements to say "
                        f"(at most {MAX_QUEUED_ANNOUNCEMENTS} wait): this one was not queued; "
                        "send it again once the robot has said the others")
                self._announcements += 1
        key = _audio_key("s")
        if speech is not None:
            self._keep_audio(speech, key)
        self._speech.put(SpeechItem(text, lang, session, kind, key, highlight_sentence,
                                    speech=speech))
        return key

    def synthesize_page(self, book_id: str, number: int) -> tuple[str, dict[str, Any]]:
        """'Read to me': the whole page as one WAV plus each token's timing. With
        `play_on_speaker`, the robot also reads it aloud through its speech thread (in turn
        with everything else it says, microphones gated) and `speaker` is "robot": the page
        then only follows the words. Otherwise (`speaker` "page") the page plays it and
        reports `page_playback()` start/end so that the floor is held meanwhile."""
        book = self.library.get(book_id)
        page = book.page(number)
        speaker = "robot" if self.config.play_on_speaker else "page"
        if speaker == "robot":
            with self._lock:
                if self._page_readings >= MAX_QUEUED_PAGE_READINGS:
                    raise SpeakerBusy("the robot is already reading aloud; wait until it has "
                                      "finished")
                self._page_readings += 1
        try:
            # The page's numbers as its tokens read them (espeak-ng's own reading of "2024
            # 100" is one number), timings mapped back onto the tokens shown.
            spoken = page.spoken()
            speech = self.synth.synthesize(spoken.text, page.lang)
            words = _word_timings(spoken, speech)
            key = self._keep_audio(speech)
        except BaseException:
            if speaker == "robot":
                with self._lock:
                    self._page_readings -= 1
            raise
        if speaker == "robot":
            self._speech.put(SpeechItem(page.text, page.lang, None, "read_to_me", key,
                                        speech=speech))
        return key, {"audio": key, "duration_s": round(speech.duration_s, 3),
                     "speaker": speaker, "words": words}

    def page_playback(self, key: str, state: str) -> dict[str, Any]:
        """A reader page starts/ends playing robot speech `key` on its own speaker: hold the
        floor meanwhile (at most the audio's duration plus a second if 'end' never comes)."""
        with self._lock:
            duration = self._durations.get(key)
        if duration is None:
            raise UnknownAudio(f"no robot speech '{key}' (expired)")
        owner = f"page:{key}"
        if state == "start":
            self.floor.acquire(owner, duration + HOLD_SLACK_S)
        elif state == "end":
            self.floor.release(owner)
        else:
            raise ReadingError(f"playback state must be 'start' or 'end', not '{state}'")
        return {"audio": key, "state": state, "speaking": self.floor.busy}

    def _keep_audio(self, speech: Speech, key: str | None = None) -> str:
        key = key or _audio_key("a")
        with self._lock:
            self.audio[key] = speech.wav_bytes()
            self._durations[key] = speech.duration_s
            while len(self.audio) > self.config.audio_keep:
                old = next(iter(self.audio))
                self.audio.pop(old)
                self._durations.pop(old, None)
        return key

    def _set_speaking(self, speaking: bool) -> None:
        self.gate.set_speaking(speaking)
        if self.on_speaking is not None:
            try:
                self.on_speaking(speaking)
            except Exception:
                log.exception("speaking callback failed")

    def _speak_loop(self) -> None:
        while True:
            try:
                item = self._speech.get(timeout=0.25)
            except queue.Empty:
                self.floor.expire()  # a page that never said "end"
                continue
            if item is None:
                return
            try:
                self._speak(item)
            except ReadingError as exc:
                log.error("robot speech failed: %s", exc)
                if item.session is not None:
                    item.session.emit({"type": "error", "message": str(exc)})
            except Exception:
                # Anything else (a full temporary folder, a bug) loses this one item, not
                # the robot's voice: this thread says everything the robot says.
                log.exception("robot speech failed: %r not said", item.text[:80])
            finally:
                with self._lock:
                    if item.kind == "read_to_me" and item.speech is not None:
                        self._page_readings -= 1
                    elif item.session is None:
                        self._announcements -= 1

    def _speak(self, item: SpeechItem) -> None:
        if item.session is not None and item.session.closed:
            # Said for a reading that has ended (the page left or was closed): nobody hears
            # it, yet it would hold the floor and mute every other reader's microphone.
            return
        spoken = _spoken(item)
        speech = item.speech or self.synth.synthesize(spoken.text, item.lang)
        if item.speech is None:
            self._keep_audio(speech, item.key)
        record: dict[str, Any] = {"type": "say", "kind": item.kind, "text": item.text,
                                  "lang": item.lang, "audio": item.key,
                                  "duration_s": round(speech.duration_s, 3),
                                  "time": time.time()}
        if spoken.tokens:
            record["words"] = _word_timings(spoken, speech)
        # Never talk over a page that is reading aloud (bounded: its hold expires).
        while not self._closed and not self.floor.wait_free(0.5, ignore="robot"):
            pass
        if self._closed or (item.session is not None and item.session.closed):
            return
        with self._lock:
            self.spoken.append(record)
            del self.spoken[:-100]
        self.floor.acquire("robot", speech.duration_s + HOLD_SLACK_S + 120.0)
        try:
            if item.session is not None:
                item.session.emit(record)
            t_end = time.monotonic() + speech.duration_s
            if self.config.play_on_speaker:
                import tempfile

                with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
                    write_wav(Path(tmp.name), speech.pcm, speech.sample_rate)
                    # A long page takes long to read aloud: give the player the audio's
                    # length plus a margin (a fixed 2 min cut such pages short).
                    play_wav(Path(tmp.name), self.config.speaker_device,
                             timeout_s=speech.duration_s + PLAYER_MARGIN_S,
                             stop=self._stopping)
            # The page plays the WAV itself: hold the microphone gate for its duration (a
            # shutdown does not wait for it).
            remaining = t_end - time.monotonic()
            if remaining > 0:
                self._stopping.wait(remaining)
        finally:
            self.floor.release("robot")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        for sid in list(self.sessions):
            self.close_session(sid)
        self._speech.put(None)
        self._speech_thread.join(timeout=5.0)
        with self._lock:
            adapt_thread = self._adapt_thread
        if adapt_thread is not None:
            # A page being adapted finishes (a few seconds at most); pages still waiting are
            # dropped.
            while True:
                try:
                    self._adapt_queue.get_nowait()
                    self._adapt_queue.task_done()
                except queue.Empty:
                    break
            try:
                self._adapt_queue.put(None, timeout=5.0)
            except queue.Full:
                log.warning("speaker adaptation: worker still busy at shutdown")
            adapt_thread.join(timeout=30.0)
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
