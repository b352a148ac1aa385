"""Sound between the robot and the visitor, behind a small interface.

`AudioIO` gives the robot's microphone as an aiortc audio track (Opus-encoded once for every
viewer by `SharedAudioEncoder`) and plays the pilot's microphone on the robot's speaker. Implementations:
- `DeviceAudio`: sounddevice / PortAudio, when a sound device exists;
- `FileAudio`: a WAV file (looped) or silence as the microphone, and a WAV recorder (or nothing)
  as the speaker, for tests and machines without sound.
Both sides can be muted: a muted microphone sends silence, a muted speaker drops what it gets.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
import wave
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from passeur.telepresence.packet_track import PacketTrack

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
#: A source read again after a pause longer than this starts from now (no catching up).
MAX_BEHIND_S = 0.2
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)


class AudioIO(Protocol):
    mic_muted: bool
    speaker_muted: bool

    def microphone_track(self) -> MediaStreamTrack: ...

    async def play(self, track: MediaStreamTrack) -> None:
        """Consume a remote audio track until it ends, playing (or recording) it."""
        ...

    def close(self) -> None: ...


class PcmSourceTrack(MediaStreamTrack):
    """20 ms mono s16 frames at 48 kHz, paced in real time, from a `read(n) -> int16[n]`."""

    kind = "audio"

    def __init__(self, owner: _AudioBase) -> None:
        super().__init__()
        self._owner = owner
        self._start: float | None = None
        self._samples = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._samples / SAMPLE_RATE
        delay = due - now
        if delay < -MAX_BEHIND_S:
            # Nobody read for a while (no viewer): live sound starts now; racing through the
            # pause would burst stale frames at the next viewer.
            self._start = now - self._samples / SAMPLE_RATE
        elif delay > 0:
            await asyncio.sleep(delay)
        pcm = self._owner.read_mic(FRAME_SAMPLES)
        if self._owner.mic_muted:
            pcm = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = AUDIO_TIME_BASE
        self._samples += FRAME_SAMPLES
        return frame


class SharedAudioEncoder:
    """Opus-encode the robot's microphone ONCE for every viewer and hand each viewer's sender
    the same packets (aiortc packs pre-encoded `av.Packet`s). With a MediaRelay each sender
    encodes on its own, through a thread hop every 20 ms per viewer. The viewers' transceivers
    must negotiate Opus (the server sets the codec preference)."""

    def __init__(self, source: MediaStreamTrack) -> None:
        self.source = source
        self._subscribers: set[EncodedAudioTrack] = set()
        self._task: asyncio.Future[None] | None = None
        self.frames_encoded = 0

    def subscribe(self) -> EncodedAudioTrack:
        """Loop thread only."""
        track = EncodedAudioTrack(self)
        self._subscribers.add(track)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        return track

    def unsubscribe(self, track: EncodedAudioTrack) -> None:
        self._subscribers.discard(track)

    async def _run(self) -> None:
        from aiortc.codecs.opus import OpusEncoder

        encoder = OpusEncoder()
        while self._subscribers:
            try:
                frame = await self.source.recv()
            except MediaStreamError:
                for track in list(self._subscribers):
                    track.put(None)
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            # On the loop: ~0.25 ms per 20 ms frame, cheaper than a thread hop.
            payloads, timestamp = encoder.encode(frame)
            for i, payload in enumerate(payloads):
                packet = av.Packet(payload)
                packet.pts = timestamp + i * FRAME_SAMPLES
                packet.time_base = AUDIO_TIME_BASE
                self.frames_encoded += 1
                for track in list(self._subscribers):
                    track.put(packet)

    def close(self) -> None:
        for track in list(self._subscribers):
            track.stop()
        if self._task is not None:
            self._task.cancel()


class EncodedAudioTrack(PacketTrack):
    """One viewer's view of the shared Opus stream; a viewer that falls behind loses the
    oldest packets (late sound is dropped, not delayed)."""

    kind = "audio"
    MAX_QUEUE = 10  # 200 ms

    def __init__(self, encoder: SharedAudioEncoder) -> None:
        super().__init__(encoder, maxlen=self.MAX_QUEUE)

    def put(self, packet: Any) -> None:
        if len(self._queue) == self.MAX_QUEUE:
            self.dropped += 1
        self._push(packet)


class _AudioBase:
    def __init__(self) -> None:
        self.mic_muted = False
        self.speaker_muted = False
        self._track: PcmSourceTrack | None = None
        self.frames_played = 0

    def microphone_track(self) -> MediaStreamTrack:
        if self._track is None or self._track.readyState != "live":
            self._track = PcmSourceTrack(self)
        return self._track

    def read_mic(self, n: int) -> np.ndarray:
        return np.zeros(n, dtype=np.int16)

    def write_speaker(self, pcm: np.ndarray) -> None:
        """Mono int16 at SAMPLE_RATE."""

    async def play(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if self.speaker_muted:
                continue
            for out in resampler.resample(frame):  # type: ignore[arg-type]
                self.write_speaker(out.to_ndarray().reshape(-1).astype(np.int16))
                self.frames_played += 1

    def close(self) -> None:
        if self._track is not None:
            self._track.stop()


class FileAudio(_AudioBase):
    """Microphone from a WAV file (looped; silence if None); speaker to a WAV file (or nowhere)."""

    def __init__(self, mic_wav: Path | None = None, speaker_wav: Path | None = None) -> None:
        super().__init__()
        self._mic = np.zeros(0, dtype=np.int16)
        self._pos = 0
        if mic_wav is not None:
            self._mic = _load_wav_mono48k(mic_wav)
        self._speaker_path = speaker_wav
        self._speaker: wave.Wave_write | None = None
        self._lock = threading.Lock()

    def read_mic(self, n: int) -> np.ndarray:
        if self._mic.size == 0:
            return np.zeros(n, dtype=np.int16)
        idx = (np.arange(n) + self._pos) % self._mic.size
        self._pos = (self._pos + n) % self._mic.size
        return self._mic[idx]

    def write_speaker(self, pcm: np.ndarray) -> None:
        if self._speaker_path is None:
            return
        with self._lock:
            if self._speaker is None:
                self._speaker = wave.open(str(self._speaker_path), "wb")
                self._speaker.setnchannels(1)
                self._speaker.setsampwidth(2)
                self._speaker.setframerate(SAMPLE_RATE)
            self._speaker.writeframes(pcm.tobytes())

    def close(self) -> None:
        super().close()
        with self._lock:
            if self._speaker is not None:
                self._speaker.close()
                self._speaker = None


class DeviceAudio(_AudioBase):
    """The robot's real microphone and speaker through sounddevice (PortAudio)."""

    def __init__(self, input_device: str | int | None = None,
                 output_device: str | int | None = None) -> None:
        super().__init__()
        import sounddevice as sd

        self._lock = threading.Lock()
        self._mic_buf: list[np.ndarray] = []
        self._mic_len = 0

        def on_input(indata: np.ndarray, frames: int, _t: Any, _status: Any) -> None:
            with self._lock:
                self._mic_buf.append(indata[:, 0].copy())
                self._mic_len += frames
                while self._mic_len > SAMPLE_RATE:  # keep at most 1 s
                    self._mic_len -= self._mic_buf.pop(0).size

        # The speaker is fed from a buffer by PortAudio's callback: writing never blocks the
        # web server's loop. At most 0.5 s is kept (late sound is dropped, not delayed).
        self._out_buf = np.zeros(0, dtype=np.int16)
        self._out_lock = threading.Lock()

        def on_output(outdata: np.ndarray, frames: int, _t: Any, _status: Any) -> None:
            with self._out_lock:
                take = self._out_buf[:frames]
                self._out_buf = self._out_buf[frames:]
            outdata[: take.size, 0] = take
            outdata[take.size:, 0] = 0

        self._in = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                                  device=input_device, callback=on_input)
        try:
            self._out = sd.OutputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16",
                                        device=output_device, callback=on_output)
            self._in.start()
            self._out.start()
        except BaseException:
            self._in.close()  # the microphone opened, the speaker did not: give it back
            raise

    def read_mic(self, n: int) -> np.ndarray:
        with self._lock:
            data = np.concatenate(self._mic_buf) if self._mic_buf else np.zeros(0, np.int16)
            take, rest = data[:n], data[n:]
            self._mic_buf = [rest] if rest.size else []
            self._mic_len = rest.size
        if take.size < n:
            take = np.concatenate([take, np.zeros(n - take.size, dtype=np.int16)])
        return take

    def write_speaker(self, pcm: np.ndarray) -> None:
        with self._out_lock:
            self._out_buf = np.concatenate([self._out_buf, pcm.astype(np.int16)])[
                -SAMPLE_RATE // 2:]

    def close(self) -> None:
        super().close()
        for stream in (self._in, self._out):
            try:
                stream.stop()
                stream.close()
            except Exception:
                log.debug("closing an audio stream failed", exc_info=True)


def _load_wav_mono48k(path: Path) -> np.ndarray:
    from passeur.telepresence.exceptions import TelepresenceConfigError

    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:
        raise TelepresenceConfigError(f"cannot read audio file ({exc})", path) from exc
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    with container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise TelepresenceConfigError("the audio file holds no sound", path)
    return np.concatenate(chunks).astype(np.int16)


def make_audio(mic: str, speaker: str) -> AudioIO:
    """From parameters: mic = "device" | "silence" | path.wav; speaker = "device" | "none" |
    path.wav. "auto" picks the device when PortAudio lists one, else silence / none."""
    want_device = False
    if "auto" in (mic, speaker):
        try:
            import sounddevice as sd

            devices = sd.query_devices()
            want_device = any(d["max_input_channels"] > 0 for d in devices) and \
                any(d["max_output_channels"] > 0 for d in devices)
        except (OSError, ImportError):
            want_device = False
    explicit = mic == "device" or speaker == "device"
    if explicit or want_device:
        import sounddevice as sd

        try:
            return DeviceAudio()
        except (sd.PortAudioError, OSError) as exc:
            # Listed is not usable (a sound server gone, a busy or odd device): with "auto" the
            # robot runs without sound rather than not at all; asked for, it is an error.
            if explicit:
                from passeur.telepresence.exceptions import TelepresenceConfigError

                raise TelepresenceConfigError(
                    f"cannot open the sound device ({exc}); check it, or set audio_mic: "
                    "silence and audio_speaker: none to run without sound") from exc
            log.warning("a sound device is listed but cannot be opened (%s): the robot's "
                        "microphone is silent and its speaker off (audio_mic / audio_speaker)",
                        exc)
    mic_path = None if mic in ("silence", "auto", "") else Path(mic)
    speaker_path = None if speaker in ("none", "auto", "") else Path(speaker)
    return FileAudio(mic_path, speaker_path)
