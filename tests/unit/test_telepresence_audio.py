"""Audio pieces without a network: the microphone track's pacing, the shared Opus encoder."""

from __future__ import annotations

import asyncio
import time

import av
import pytest

from passeur.telepresence.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    EncodedAudioTrack,
    FileAudio,
    SharedAudioEncoder,
)


async def test_shared_audio_encoder_encodes_once_for_every_viewer() -> None:
    audio = FileAudio()
    encoder = SharedAudioEncoder(audio.microphone_track())
    a, b = encoder.subscribe(), encoder.subscribe()
    decoders = [av.CodecContext.create("libopus", "r") for _ in range(2)]
    stamps = []
    for _ in range(5):
        pa = await asyncio.wait_for(a.recv(), 5)
        pb = await asyncio.wait_for(b.recv(), 5)
        assert pa is pb  # one encoding, the same packet for both viewers
        stamps.append(pa.pts)
        for dec, pkt in zip(decoders, (pa, pb), strict=True):
            frames = dec.decode(av.Packet(bytes(pkt)))
            assert frames and frames[0].samples == FRAME_SAMPLES
    assert [s - stamps[0] for s in stamps] == [i * FRAME_SAMPLES for i in range(5)]
    assert pa.time_base.denominator == SAMPLE_RATE
    a.stop()
    b.stop()
    await asyncio.sleep(0.1)  # nobody left: the encoder stops reading the microphone
    encoded = encoder.frames_encoded
    await asyncio.sleep(0.2)
    assert encoder.frames_encoded <= encoded + 1
    encoder.close()
    audio.close()


def test_encoded_audio_track_drops_the_oldest_when_behind() -> None:
    class Enc:
        def unsubscribe(self, _t: object) -> None:
            pass

    track = EncodedAudioTrack(Enc())  # type: ignore[arg-type]
    for i in range(EncodedAudioTrack.MAX_QUEUE + 3):
        track.put(i)
    assert list(track._queue)[0] == 3 and track.dropped == 3


async def test_microphone_after_a_pause_starts_from_now() -> None:
    """Read again after nobody listened for a while, the microphone gives live 20 ms frames
    in real time instead of racing through the pause."""
    audio = FileAudio()
    track = audio.microphone_track()
    await track.recv()
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    for _ in range(10):
        await track.recv()
    assert time.monotonic() - t0 > 0.15  # paced (10 x 20 ms), not a burst of 25 stale frames
    audio.close()


class _FakePortAudio:
    """A sounddevice stand-in: PortAudio lists a microphone and a speaker, but opening the
    output fails (as with a sound server that went away: 'Illegal combination of I/O
    devices')."""

    class PortAudioError(Exception):
        pass

    def __init__(self) -> None:
        self.opened: list[_FakeStream] = []

    def query_devices(self) -> list[dict[str, int]]:
        return [{"max_input_channels": 1, "max_output_channels": 0},
                {"max_input_channels": 0, "max_output_channels": 2}]

    def InputStream(self, **_kwargs: object) -> _FakeStream:
        stream = _FakeStream()
        self.opened.append(stream)
        return stream

    def OutputStream(self, **_kwargs: object) -> _FakeStream:
        raise self.PortAudioError("Error opening OutputStream: Illegal combination of I/O "
                                  "devices [PaErrorCode -9993]")


class _FakeStream:
    def __init__(self) -> None:
        self.closed = False

    def start(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_a_listed_sound_device_that_cannot_be_opened(monkeypatch: pytest.MonkeyPatch,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """With 'auto' the robot runs without sound (a warning says so) instead of not starting;
    asked for explicitly, it is a clear configuration error. The microphone stream that did
    open is given back."""
    import sys

    from passeur.telepresence.audio import FileAudio, make_audio
    from passeur.telepresence.exceptions import TelepresenceConfigError

    fake = _FakePortAudio()
    monkeypatch.setitem(sys.modules, "sounddevice", fake)
    with caplog.at_level("WARNING"):
        audio = make_audio("auto", "auto")
    try:
        assert isinstance(audio, FileAudio)
        assert "cannot be opened" in caplog.text and "Illegal combination" in caplog.text
    finally:
        audio.close()
    assert fake.opened and all(s.closed for s in fake.opened)
    with pytest.raises(TelepresenceConfigError, match="cannot open the sound device.*audio_mic"):
        make_audio("device", "device")
