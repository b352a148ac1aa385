"""Audio in: a WAV file, a local microphone (sounddevice), or frames from WebRTC; all become
16 kHz mono int16 PCM cut into 20 ms frames, with webrtcvad deciding speech / silence.

The microphone is ignored while the robot speaks (`MicGate`): frames that arrive while the
speaker is on, and for a short tail after it stops (room echo), are replaced by silence so that
the recogniser never hears the robot's own voice but timings stay continuous.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from passeur.reading.asr import SAMPLE_RATE
from passeur.reading.exceptions import AudioFormatError

log = logging.getLogger(__name__)

FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
MIN_INPUT_RATE = 8000
#: The highest input rate accepted. A WAV header can claim any rate up to 4.29 GHz, and the
#: polyphase resampler's filter grows with the rate: a claimed 100 MHz asked for 15 GB and
#: minutes of CPU (an upload to the public reader API, or `passeur read`).
MAX_INPUT_RATE = 384_000


def _check_rate(rate: int) -> None:
    if rate < MIN_INPUT_RATE:
        raise AudioFormatError(f"sample rate {rate} Hz is too low: speech needs at least "
                               f"{MIN_INPUT_RATE} Hz (16000 Hz recommended)")
    if rate > MAX_INPUT_RATE:
        raise AudioFormatError(f"sample rate {rate} Hz is too high: at most {MAX_INPUT_RATE} "
                               "Hz (16000 Hz recommended); convert it, e.g. "
                               "`sox IN -r 16000 -c 1 -b 16 OUT.wav`")


def mix_to_mono(samples: np.ndarray) -> np.ndarray:
    """int/float samples (n,) or (n, channels) -> mono float64 in int16 units (no resampling)."""
    raw = np.asarray(samples)
    # Scale to int16 units by the *input* sample type, then mix channels down.
    if raw.dtype.kind == "f":
        data = np.clip(raw.astype(np.float64), -1.0, 1.0) * 32767.0
    elif raw.dtype == np.uint8:
        data = (raw.astype(np.float64) - 128.0) * 256.0
    elif raw.dtype == np.int32:
        data = raw.astype(np.float64) / 65536.0
    else:
        data = raw.astype(np.float64)
    if data.ndim == 2:
        data = data.mean(axis=1)
    return data


def to_mono_int16(samples: np.ndarray, rate: int) -> np.ndarray:
    """A whole recording: any-rate int/float samples (n,) or (n, channels) -> 16 kHz mono
    int16. (Streams arriving in chunks go through `FrameBuffer`, which keeps the resampler's
    state across chunks.)"""
    _check_rate(rate)
    data = mix_to_mono(samples)
    if rate != SAMPLE_RATE:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(rate, SAMPLE_RATE)
        data = resample_poly(data, SAMPLE_RATE // g, rate // g)
    return np.clip(np.round(data), -32768, 32767).astype(np.int16)


def read_wav(path: Path | BinaryIO) -> np.ndarray:
    """A WAV file (path or binary file object) as 16 kHz mono int16 (resampled if needed).
    Clear errors for bad files."""
    source: str | BinaryIO = str(path) if isinstance(path, (str, Path)) else path
    path = Path(path) if isinstance(path, (str, Path)) else Path("<upload>")
    try:
        with wave.open(source, "rb") as wav:
            rate = wav.getframerate()
            width = wav.getsampwidth()
            channels = wav.getnchannels()
            raw = wav.readframes(wav.getnframes())
    except FileNotFoundError as exc:
        raise AudioFormatError(f"{path}: audio file not found") from exc
    except OSError as exc:  # a folder, no permission
        raise AudioFormatError(f"{path}: cannot read the audio file ({exc.strerror})") from exc
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"{path}: not a PCM WAV file ({exc}); convert it, e.g. "
                               "`sox IN -r 16000 -c 1 -b 16 OUT.wav`") from exc
    dtypes = {1: np.uint8, 2: np.int16, 4: np.int32}
    if width not in dtypes:
        raise AudioFormatError(f"{path}: {8 * width}-bit samples are not supported "
                               "(use 16-bit PCM)")
    samples = np.frombuffer(raw, dtype=dtypes[width])
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels)
    if samples.size == 0:
        raise AudioFormatError(f"{path}: the file holds no audio")
    try:
        return to_mono_int16(samples, rate)
    except AudioFormatError as exc:
        raise AudioFormatError(f"{path}: {exc}") from exc


def write_wav(path: Path, pcm: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(pcm, dtype=np.int16).tobytes())


def frames(pcm: np.ndarray) -> Iterator[bytes]:
    """20 ms frames of bytes (the last one zero-padded)."""
    data = np.asarray(pcm, dtype=np.int16)
    for i in range(0, len(data), FRAME_SAMPLES):
        chunk = data[i:i + FRAME_SAMPLES]
        if len(chunk) < FRAME_SAMPLES:
            chunk = np.concatenate([chunk, np.zeros(FRAME_SAMPLES - len(chunk), np.int16)])
        yield chunk.tobytes()


def is_silent(pcm: np.ndarray, threshold_dbfs: float = -50.0) -> bool:
    if len(pcm) == 0:
        return True
    rms = float(np.sqrt(np.mean(np.asarray(pcm, dtype=np.float64) ** 2)))
    return rms < 32768.0 * 10 ** (threshold_dbfs / 20.0)


def frame_level_db(frame: bytes) -> float:
    """Level of a frame of int16 PCM in dB (power about the frame's mean, so that a
    microphone's DC offset does not hide a rise; digital silence 0 dB, full scale about
    90 dB): what a stretch's syllables are found by (alignment.NUCLEUS_RISE_DB)."""
    x = np.frombuffer(frame, dtype=np.int16).astype(np.float64)
    return 10.0 * math.log10(max(float(np.var(x)) if len(x) else 0.0, 1.0))


@dataclass
class VadEvent:
    speech: bool  # this frame is speech
    endpoint: bool  # a pause long enough to end the utterance just completed


class Segmenter:
    """webrtcvad on 20 ms frames with hangover: `push(frame)` says speech/silence and when a
    pause (`endpoint_ms` of non-speech after speech) ends an utterance."""

    def __init__(self, aggressiveness: int = 2, endpoint_ms: int = 600) -> None:
        import webrtcvad

        if not 0 <= aggressiveness <= 3:
            raise ValueError("vad aggressiveness must be 0..3")
        self._vad = webrtcvad.Vad(aggressiveness)
        self._endpoint_frames = max(1, endpoint_ms // FRAME_MS)
        self._silence_run = 0
        self._had_speech = False

    def push(self, frame: bytes) -> VadEvent:
        if len(frame) != FRAME_BYTES:
            raise AudioFormatError(f"VAD frames must be {FRAME_MS} ms at {SAMPLE_RATE} Hz "
                                   f"({FRAME_BYTES} bytes), got {len(frame)} bytes")
        speech = self._vad.is_speech(frame, SAMPLE_RATE)
        if speech:
            self._had_speech = True
            self._silence_run = 0
            return VadEvent(True, False)
        self._silence_run += 1
        if self._had_speech and self._silence_run == self._endpoint_frames:
            self._had_speech = False
            return VadEvent(False, True)
        return VadEvent(False, False)

    @property
    def silence_ms(self) -> int:
        """How long the current pause has lasted (0 while the voice is on)."""
        return self._silence_run * FRAME_MS

    @property
    def in_utterance(self) -> bool:
        """Voice was heard since the last endpoint."""
        return self._had_speech

    def end_utterance(self) -> None:
        """The utterance was ended by the caller: no endpoint for this pause."""
        self._had_speech = False


class MicGate:
    """Silences microphone frames while the robot speaks (plus an echo tail)."""

    def __init__(self, tail_s: float = 0.3) -> None:
        self._lock = threading.Lock()
        self._speaking = False
        self._tail_frames = int(tail_s * 1000 / FRAME_MS)
        self._tail_left = 0

    def set_speaking(self, speaking: bool) -> None:
        with self._lock:
            if self._speaking and not speaking:
                self._tail_left = self._tail_frames
            self._speaking = speaking

    @property
    def speaking(self) -> bool:
        with self._lock:
            return self._speaking

    def filter(self, frame: bytes) -> tuple[bytes, bool]:
        """(frame or silence, muted?)"""
        with self._lock:
            if self._speaking:
                return bytes(len(frame)), True
            if self._tail_left > 0:
                self._tail_left -= 1
                return bytes(len(frame)), True
        return frame, False


class FrameBuffer:
    """Re-chunks a stream of PCM chunks (e.g. WebRTC's 20 ms 48 kHz frames) into 16 kHz
    20 ms frames. One stateful resampler (libswresample, through PyAV) per stream: its filter
    runs across chunk boundaries, so the edges of the chunks leave no transients (resampling
    each 20 ms chunk on its own would pad every edge with zeros)."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)
        self._resampler: Any = None
        self._rate: int | None = None

    def _resample(self, mono: np.ndarray, rate: int) -> np.ndarray:
        import av

        if rate != self._rate:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            self._rate = rate
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = None
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)

    def push(self, samples: np.ndarray, rate: int) -> list[bytes]:
        _check_rate(rate)
        mono = np.clip(np.round(mix_to_mono(samples)), -32768, 32767).astype(np.int16)
        if rate != SAMPLE_RATE:
            mono = self._resample(mono, rate)
        self._pending = np.concatenate([self._pending, mono])
        out = []
        while len(self._pending) >= FRAME_SAMPLES:
            out.append(self._pending[:FRAME_SAMPLES].tobytes())
            self._pending = self._pending[FRAME_SAMPLES:]
        return out


class Microphone:
    """A local microphone through sounddevice (PortAudio); frames land in a queue."""

    def __init__(self, device: str | int | None = None) -> None:
        try:
            import sounddevice as sd
        except ImportError as exc:  # not a dependency of the package: only this source uses it
            raise AudioFormatError("the robot's microphone needs the Python package "
                                   "sounddevice: pip install sounddevice (and Debian "
                                   "libportaudio2)") from exc
        except OSError as exc:  # libportaudio2 missing
            raise AudioFormatError(f"no audio library for the microphone ({exc}); install "
                                   "Debian libportaudio2") from exc
        self._sd = sd
        self.queue: queue.Queue[bytes] = queue.Queue(maxsize=500)
        try:
            sd.check_input_settings(device=device, channels=1, samplerate=SAMPLE_RATE,
                                    dtype="int16")
            self._stream = sd.RawInputStream(samplerate=SAMPLE_RATE, channels=1,
                                             dtype="int16", blocksize=FRAME_SAMPLES,
                                             device=device, callback=self._callback)
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioFormatError(f"microphone '{device}' unusable: {exc} (see "
                                   "`python -m sounddevice` for the devices)") from exc
        self._closed = False

    def _callback(self, indata: bytes, _frames: int, _time: object, status: object) -> None:
        try:
            self.queue.put_nowait(bytes(indata))
        except queue.Full:
            log.warning("microphone queue full: dropping audio (ASR too slow?)")

    def start(self) -> None:
        try:
            self._stream.start()
        except self._sd.PortAudioError as exc:  # the device went away, or is busy
            raise AudioFormatError(f"the microphone could not start: {exc} (see "
                                   "`python -m sounddevice` for the devices)") from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.stop()
            self._stream.close()
