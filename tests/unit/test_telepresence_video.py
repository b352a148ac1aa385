"""Video pieces without a network: stamp code, newest-frame track, shared encoder queues."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest

from passeur.telepresence.video import (
    CameraSource,
    EncodedTrack,
    SharedEncoder,
    decode_stamp,
    draw_stamp,
    rgb_to_frame,
)


@pytest.mark.parametrize("counter", [0, 1, 12345, 2**20 - 1, 2**20 + 7])
def test_stamp_roundtrip_survives_yuv_conversion(counter: int) -> None:
    rgb = np.random.default_rng(counter).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    draw_stamp(rgb, counter)
    back = rgb_to_frame(rgb).to_ndarray(format="rgb24")
    assert decode_stamp(back) == counter % 2**20


async def test_track_yields_only_the_newest_frame() -> None:
    source = CameraSource(asyncio.get_running_loop(), stamp=True)
    source.viewers = 1
    for i in range(5):
        source.push_rgb(np.full((480, 640, 3), i * 40, np.uint8))
    await asyncio.sleep(0.05)  # the hand-offs run on this loop
    frame = await asyncio.wait_for(source.track.recv(), 2)
    assert decode_stamp(frame.to_ndarray(format="rgb24")) == 5
    assert source.track.frames_out == 1
    waiter = asyncio.ensure_future(source.track.recv())
    await asyncio.sleep(0.05)
    assert not waiter.done()  # nothing new: no stale frame is repeated
    source.push_rgb(np.zeros((48, 64, 3), np.uint8))
    assert (await asyncio.wait_for(waiter, 2)).pts > frame.pts


async def test_no_viewers_no_conversion() -> None:
    source = CameraSource(asyncio.get_running_loop())
    source.push_rgb(np.zeros((48, 64, 3), np.uint8))
    await asyncio.sleep(0.05)
    waiter = asyncio.ensure_future(source.track.recv())
    await asyncio.sleep(0.05)
    assert not waiter.done() and source.frames_in == 1
    waiter.cancel()


async def test_shared_encoder_encodes_once_for_all_and_starts_on_keyframes() -> None:
    source = CameraSource(asyncio.get_running_loop())
    source.viewers = 2
    encoder = SharedEncoder(source, "VP8", keyframe_interval_s=100.0)
    a, b = encoder.subscribe(), encoder.subscribe()
    decoders = [av.CodecContext.create("libvpx", "r") for _ in range(2)]
    for i in range(6):
        img = np.zeros((480, 640, 3), np.uint8)
        img[:, : 100 * (i + 1)] = 200
        source.push_rgb(img)
        pa = await asyncio.wait_for(a.recv(), 5)
        pb = await asyncio.wait_for(b.recv(), 5)
        assert pa is pb  # the same packet for both viewers
        for dec, pkt in zip(decoders, (pa, pb), strict=True):
            frames = dec.decode(av.Packet(bytes(pkt)))
            assert frames and frames[0].width == 640
    assert encoder.frames_encoded == 6
    encoder.close()


def test_encoded_track_falls_back_to_a_keyframe_when_behind() -> None:
    class Enc:
        requested = 0

        def request_keyframe(self) -> None:
            Enc.requested += 1

        def unsubscribe(self, _t: object) -> None:
            pass

    track = EncodedTrack(Enc())  # type: ignore[arg-type]
    track.put("p0", False)  # not a keyframe: a new viewer cannot start here
    assert len(track._queue) == 0
    track.put("k1", True)
    for i in range(EncodedTrack.MAX_QUEUE):
        track.put(f"p{i}", False)
    assert len(track._queue) == 0 and Enc.requested == 1  # too far behind: wait for a keyframe
    track.put("p9", False)
    assert len(track._queue) == 0
    track.put("k2", True)
    assert list(track._queue) == ["k2"]


def test_shared_encoder_keeps_only_the_newest_image_waiting() -> None:
    """Images arriving while the encoder is busy replace each other: the encoder never works
    through a backlog (and never converts an image it would drop)."""
    source = CameraSource(stamp=True)
    encoder = SharedEncoder(source, "VP8")
    for counter in (1, 2, 3):
        encoder.feed(np.zeros((480, 640, 3), np.uint8), counter, 0.0)
    assert encoder.skipped == 2 and encoder._pending is not None
    assert encoder._pending[1] == 3
    encoder.close()
    encoder.close()  # twice is fine
