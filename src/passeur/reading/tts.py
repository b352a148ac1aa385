"""Speech out: espeak-ng through pyttsx3's libespeak-ng binding, to PCM with word timings.

pyttsx3's engine API (`save_to_file`) gives no timing of words in the audio; its espeak driver
wraps libespeak-ng with ctypes (`pyttsx3.drivers._espeak`, private: pinned pyttsx3==2.99, used
only here behind `TextToSpeech`, with a clear TTSError if missing), whose synthesis callback reports
a WORD event (character position in the text, position in the audio in ms) for every word.
That is what "Read to me" needs to highlight each word as it is heard. Synthesis is
synchronous (AUDIO_OUTPUT_SYNCHRONOUS): no sound card is needed; playback is separate
(`play_wav`, or the reader page plays the WAV).

libespeak-ng is one global engine per process: every call holds a module lock.
"""

from __future__ import annotations

import ctypes
import io
import logging
import shutil
import subprocess
import threading
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from passeur.errors import ConfigError
from passeur.reading.exceptions import TTSError

log = logging.getLogger(__name__)

VOICES = {"en": "en-us", "fr": "fr", "ko": "ko"}
_LOCK = threading.Lock()
_STATE: dict[str, int] = {}


@dataclass(frozen=True)
class SpokenTiming:
    start_char: int  # 0-based character span in the synthesised text
    end_char: int
    start_s: float
    end_s: float


@dataclass
class Speech:
    text: str
    lang: str
    sample_rate: int
    pcm: np.ndarray  # int16 mono
    words: list[SpokenTiming] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate

    def wav_bytes(self) -> bytes:
        buf = io.BytesIO()
        with wave.open(buf, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.sample_rate)
            wav.writeframes(self.pcm.astype(np.int16).tobytes())
        return buf.getvalue()

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.wav_bytes())


#: What we use of pyttsx3's espeak driver module. It is private API (`pyttsx3.drivers._espeak`,
#: a ctypes binding of libespeak-ng): pyttsx3 is pinned to 2.99 in requirements.txt for it;
#: nothing outside this module imports it.
_ESPEAK_API = ("Initialize", "SetVoiceByName", "SetParameter", "SetSynthCallback", "Synth",
               "Synchronize", "EVENT_WORD", "EVENT_LIST_TERMINATED",
               "AUDIO_OUTPUT_SYNCHRONOUS", "RATE", "CHARS_UTF8", "EE_OK")
PYTTSX3_PIN = "pyttsx3==2.99"


def _espeak():  # type: ignore[no-untyped-def]
    try:
        from pyttsx3.drivers import _espeak
    except (ImportError, OSError, RuntimeError) as exc:
        raise TTSError(f"speech synthesis unavailable: pyttsx3 / libespeak-ng not usable ({exc});"
                       f" install {PYTTSX3_PIN} and Debian libespeak-ng1 espeak-ng-data"
                       ) from exc
    missing = [name for name in _ESPEAK_API if not hasattr(_espeak, name)]
    if missing:
        raise TTSError(f"speech synthesis unavailable: this pyttsx3's private espeak binding "
                       f"(pyttsx3.drivers._espeak) lacks {', '.join(missing)}; Passeur needs "
                       f"{PYTTSX3_PIN} (pinned in requirements.txt)")
    return _espeak


class TextToSpeech(Protocol):
    """What the reading companion needs from a speech synthesiser (swap it in tests)."""

    def synthesize(self, text: str, lang: str, rate_wpm: int | None = None) -> Speech: ...


class Synthesizer:
    """Text -> `Speech` (PCM + word timings) in French or English."""

    def __init__(self, rate_wpm: int = 150, voices: dict[str, str] | None = None) -> None:
        if not 60 <= rate_wpm <= 400:
            raise TTSError(f"tts rate {rate_wpm} words/min out of range 60..400")
        self.rate_wpm = rate_wpm
        self.voices = {**VOICES, **(voices or {})}

    def synthesize(self, text: str, lang: str, rate_wpm: int | None = None) -> Speech:
        if lang not in self.voices:
            raise TTSError(f"no voice for language '{lang}' (known: {', '.join(self.voices)})")
        es = _espeak()
        text = text.strip()
        chunks: list[np.ndarray] = []
        events: list[tuple[int, int]] = []  # (text_position 1-based, audio ms)
        state = {"samples": 0}

        def on_synth(wav, numsamples, evts):  # type: ignore[no-untyped-def]
            if numsamples > 0 and wav:
                chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
            i = 0
            while evts[i].type != es.EVENT_LIST_TERMINATED:
                if evts[i].type == es.EVENT_WORD:
                    events.append((evts[i].text_position, evts[i].audio_position))
                i += 1
            state["samples"] += max(numsamples, 0)
            return 0

        with _LOCK:
            if "rate" not in _STATE:
                rate = es.Initialize(es.AUDIO_OUTPUT_SYNCHRONOUS, 500)
                if rate <= 0:
                    raise TTSError("libespeak-ng failed to initialise (is espeak-ng-data "
                                   "installed?)")
                _STATE["rate"] = rate
            sample_rate = _STATE["rate"]
            if es.SetVoiceByName(self.voices[lang].encode()) != es.EE_OK:
                raise TTSError(f"espeak-ng voice '{self.voices[lang]}' not found (install "
                               "espeak-ng-data)")
            es.SetParameter(es.RATE, int(rate_wpm or self.rate_wpm), 0)
            es.SetSynthCallback(on_synth)
            try:
                if text:
                    es.Synth(text, flags=es.CHARS_UTF8)
                    es.Synchronize()
            finally:
                es.SetSynthCallback(lambda *_: 0)
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return Speech(text, lang, sample_rate, pcm.astype(np.int16),
                      _word_timings(text, events, len(pcm) / sample_rate, pcm, sample_rate))


def _word_timings(text: str, events: list[tuple[int, int]], duration_s: float,
                  pcm: np.ndarray, rate: int) -> list[SpokenTiming]:
    # Word events in audio order; events past the text (end of input) only close the last word.
    ordered = sorted({(ms, pos) for pos, ms in events})
    # The text is spoken in order: an event pointing back into it is spurious (after an
    # earlier synthesis, libespeak-ng reports a stray word event at position 1 at some clause
    # boundaries; the first word was then "read" again, and highlighted over the next ones).
    in_order: list[tuple[int, int]] = []
    for ms, pos in ordered:
        if not in_order or pos >= in_order[-1][1]:
            in_order.append((ms, pos))
    ordered = in_order
    out: list[SpokenTiming] = []
    speech_end = _speech_end(pcm, rate, duration_s)
    for k, (ms, pos) in enumerate(ordered):
        start_char = max(0, pos - 1)
        if start_char >= len(text):
            continue
        end_char = start_char
        while end_char < len(text) and not text[end_char].isspace():
            end_char += 1
        start_s = ms / 1000.0
        end_s = ordered[k + 1][0] / 1000.0 if k + 1 < len(ordered) else speech_end
        out.append(SpokenTiming(start_char, end_char, start_s, max(start_s, min(end_s,
                                                                                 speech_end))))
    return out


def token_timings(spans: list[tuple[int, int]], speech: Speech) -> list[tuple[float, float]]:
    """(start_s, end_s) for each display token span (character offsets in `speech.text`).

    espeak-ng reports one event per word it speaks: a token read as several words ("21")
    gets the union of its events; a short word it merged into its neighbour ("on the") gets
    an even share of the neighbour's interval.
    """
    times: list[tuple[float, float] | None] = []
    for start, end in spans:
        inside = [w for w in speech.words if start <= w.start_char < end]
        times.append((min(w.start_s for w in inside), max(w.end_s for w in inside))
                     if inside else None)
    out: list[tuple[float, float]] = []
    i = 0
    while i < len(times):
        if times[i] is not None:
            out.append(times[i])  # type: ignore[arg-type]
            i += 1
            continue
        j = i
        while j < len(times) and times[j] is None:
            j += 1
        # Share the previous token's interval with the missing ones.
        if out:
            s0, e0 = out.pop()
            parts = j - i + 1
            step = (e0 - s0) / parts
            out.extend((s0 + k * step, s0 + (k + 1) * step) for k in range(parts))
        else:
            nxt = times[j][0] if j < len(times) and times[j] is not None else 0.0  # type: ignore[index]
            out.extend((nxt, nxt) for _ in range(j - i))
        i = j
    return out


def _speech_end(pcm: np.ndarray, rate: int, duration_s: float) -> float:
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    return float(loud[-1] + 1) / rate if loud.size else duration_s


def audio_player() -> str | None:
    """The player play_wav() uses: aplay, else PulseAudio's paplay; None if neither."""
    return shutil.which("aplay") or shutil.which("paplay")


def speaker_wanted(setting: str, sound_card: bool, player: str | None) -> bool:
    """Whether robot speech plays on the robot's speaker (reading node `play_on_speaker`:
    "auto", "true" or "false"). "auto" needs a sound card AND a player: with a card but no
    player, the reader page would play "Read to me" muted (the robot reading it) and nothing
    would be heard anywhere. "true" without a player is a ConfigError saying what to install."""
    if setting not in ("auto", "true", "false"):
        raise ConfigError("reading parameter 'play_on_speaker' must be auto, true or false")
    if setting == "true" and player is None:
        raise ConfigError("reading parameter 'play_on_speaker' is true but no audio player is "
                          "installed: install Debian alsa-utils (aplay) or pulseaudio-utils "
                          "(paplay), or set it to auto (the tablet then plays robot speech)")
    return setting == "true" or (setting == "auto" and sound_card and player is not None)


def play_wav(path: Path, device: str | None = None, timeout_s: float = 120.0,
             stop: threading.Event | None = None) -> bool:
    """Play on the robot's speaker (aplay, else paplay). False (logged) if there is no sound
    card or player, if playing takes longer than `timeout_s`, or if `stop` is set meanwhile
    (the node shuts down): the player is then stopped. Never an exception, so one failure
    does not silence the robot's voice for good."""
    exe = audio_player()
    if exe is None:
        log.warning("no audio player (aplay/paplay): robot speech not played")
        return False
    # paplay has no -q, and names the device with -d (aplay: -D).
    if Path(exe).name == "aplay":
        cmd = [exe, "-q"] + (["-D", device] if device is not None else []) + [str(path)]
    else:
        cmd = [exe] + (["-d", device] if device is not None else []) + [str(path)]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    except OSError as exc:
        log.warning("playing speech failed: %s", exc)
        return False
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, stderr = proc.communicate(timeout=0.1)
            break
        except subprocess.TimeoutExpired:
            stopping = stop is not None and stop.is_set()
            if not stopping and time.monotonic() < deadline:
                continue
            # A shutdown must not wait for the end of a page read aloud, nor leave the
            # robot talking once its node is gone.
            proc.kill()
            proc.communicate()
            if not stopping:
                log.warning("playing speech took over %.0f s: stopped (%s)", timeout_s, cmd[0])
            return False
    if proc.returncode != 0:
        log.warning("playing speech failed: %s", (stderr or "").strip()[:200])
        return False
    return True


__all__ = ["Speech", "SpokenTiming", "Synthesizer", "TextToSpeech", "play_wav", "ctypes"]
