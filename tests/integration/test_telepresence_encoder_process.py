"""The shared video encoder's child process, for real: a real `python -m
passeur.telepresence.encoder_process`, real VP8/H264 packets decoded back with libvpx/ffmpeg."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import av
import numpy as np
import pytest

from passeur.telepresence.encoder_process import EncoderProcess, EncoderProcessError, main
from passeur.telepresence.video import CameraSource, SharedEncoder, decode_stamp

DECODERS = {"VP8": "libvpx", "H264": "h264"}


def _image(i: int) -> np.ndarray:
    img = np.zeros((480, 640, 3), np.uint8)
    img[:, : 60 * (i + 1)] = (200, 120, 40)
    return img


@pytest.mark.parametrize("codec", ["VP8", "H264"])
def test_child_encodes_decodable_stamped_frames(codec: str) -> None:
    proc = EncoderProcess(codec, 1_000_000)
    decoder = av.CodecContext.create(DECODERS[codec], "r")
    try:
        for i in range(5):
            packet, keyframe = proc.encode(_image(i), counter=100 + i, pts=3000 * i,
                                           keyframe=i == 0, stamp=True)
            assert packet and keyframe == (i == 0)
            frames = decoder.decode(av.Packet(packet))
            if codec == "VP8":  # x264 may hold a frame back; libvpx never does
                assert len(frames) == 1
            for frame in frames:
                assert (frame.width, frame.height) == (640, 480)
                assert decode_stamp(frame.to_ndarray(format="rgb24")) in range(100, 105)
        frames = decoder.decode(None) if codec == "H264" else []
        assert all(f.width == 640 for f in frames)
    finally:
        proc.close()
        proc.close()  # twice is fine


def test_size_change_restarts_on_a_keyframe_and_bad_images_are_refused() -> None:
    proc = EncoderProcess("VP8", 1_000_000)
    try:
        proc.encode(_image(0), 1, 0, keyframe=True, stamp=False)
        _packet, keyframe = proc.encode(_image(1), 2, 3000, keyframe=False, stamp=False)
        assert not keyframe
        _packet, keyframe = proc.encode(np.zeros((240, 320, 3), np.uint8), 3, 6000,
                                        keyframe=False, stamp=False)
        assert keyframe  # a new size: a new encoder, which starts on a keyframe
        with pytest.raises(ValueError, match="rgb24"):
            proc.encode(np.zeros((480, 640), np.uint8), 4, 9000, keyframe=False, stamp=False)
        # The child is still there after a refused image.
        assert proc.encode(_image(2), 5, 12000, keyframe=False, stamp=False)[0]
    finally:
        proc.close()


def test_a_dead_child_is_a_clear_error_and_its_stream_ends() -> None:
    proc = EncoderProcess("VP8", 1_000_000)
    pid = proc.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EncoderProcessError, match="exited|stopped answering"):
        proc.encode(_image(0), 1, 0, keyframe=True, stamp=False)
    with pytest.raises(EncoderProcessError, match="closed"):
        proc.encode(_image(0), 1, 0, keyframe=True, stamp=False)


def test_child_exits_when_its_input_ends() -> None:
    """What happens when the server dies, however it dies: the kernel closes the pipe."""
    child = subprocess.Popen([sys.executable, "-m", "passeur.telepresence.encoder_process",
                              "VP8", "800000"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.read(4) == b"PVE1"
    child.stdin.close()
    assert child.wait(timeout=10) == 0


def test_usage_errors() -> None:
    assert main([]) == 2
    assert main(["VP9", "1000"]) == 2
    assert main(["VP8", "fast"]) == 2


async def test_shared_encoder_goes_on_in_process_when_the_child_dies() -> None:
    source = CameraSource(asyncio.get_running_loop(), stamp=True)
    source.viewers = 1
    encoder = SharedEncoder(source, "VP8", keyframe_interval_s=100.0)
    track = encoder.subscribe()
    decoder = av.CodecContext.create("libvpx", "r")
    try:
        source.push_rgb(_image(0))
        await asyncio.wait_for(track.recv(), 30)  # the first frame starts the child
        assert encoder._process is not None and encoder.use_process
        pid = encoder._process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        stamps = []
        for i in range(1, 4):
            await asyncio.sleep(0.4)  # past MIN_KEYFRAME_GAP_S
            source.push_rgb(_image(i))
            packet = await asyncio.wait_for(track.recv(), 30)
            for frame in decoder.decode(av.Packet(bytes(packet))):
                stamps.append(decode_stamp(frame.to_ndarray(format="rgb24")))
        assert not encoder.use_process and encoder._process is None
        assert stamps[-1] == 4  # frames go on, still stamped, after the fallback
    finally:
        encoder.close()
