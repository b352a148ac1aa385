"""DeviceAudio (sounddevice/PortAudio) against a private PulseAudio null sink: what the robot's
speaker plays comes back on the sink's monitor, which is the default microphone."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from passeur.telepresence.audio import FRAME_SAMPLES, SAMPLE_RATE, DeviceAudio, make_audio


@pytest.fixture
def pulse() -> Iterator[Path]:
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio is not installed (scripts/debian-packages.txt)")
    runtime = Path(tempfile.mkdtemp(prefix="passeur-pulse-"))
    env = {**os.environ, "HOME": str(runtime), "XDG_RUNTIME_DIR": str(runtime),
           "PULSE_RUNTIME_PATH": str(runtime)}
    socket = runtime / "native"
    proc = subprocess.Popen(
        ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
         "-L", "module-null-sink sink_name=robot",
         "-L", f"module-native-protocol-unix socket={socket} auth-anonymous=1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    old = os.environ.get("PULSE_SERVER")
    os.environ["PULSE_SERVER"] = f"unix:{socket}"
    import sounddevice as sd

    sd._terminate()  # PortAudio lists devices once: list them again with the server up
    sd._initialize()
    try:
        yield runtime
    finally:
        sd._terminate()
        sd._initialize()
        if old is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = old
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(runtime, ignore_errors=True)


async def test_device_audio_plays_and_captures(pulse: Path) -> None:
    audio = make_audio("auto", "auto")
    assert isinstance(audio, DeviceAudio)
    try:
        t = np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE
        tone = (0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
        track = audio.microphone_track()
        peak = 0.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and peak < 2000:
            audio.write_speaker(tone[:4800])  # 100 ms on the speaker...
            frame = await asyncio.wait_for(track.recv(), 2)  # ...heard by the microphone
            pcm = frame.to_ndarray().reshape(-1)
            assert pcm.size == FRAME_SAMPLES and frame.sample_rate == SAMPLE_RATE
            peak = max(peak, float(np.abs(pcm).max()))
        assert peak >= 2000, "the speaker's tone never reached the microphone"
        audio.mic_muted = True
        for _ in range(5):
            audio.write_speaker(tone[:4800])
            frame = await asyncio.wait_for(track.recv(), 2)
        assert np.abs(frame.to_ndarray()).max() == 0  # muted: silence is sent
    finally:
        audio.close()
