"""Audio pieces without a network: the microphone track's pacing, the shared Opus encoder."""

from __future__ import annotations

import asyncio
import time

import av

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
