"""Audio input conversions, VAD segmentation and the microphone gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from passeur.reading.audio_in import (
    FRAME_BYTES,
    FrameBuffer,
    MicGate,
    Segmenter,
    read_wav,
    to_mono_int16,
    write_wav,
)
from passeur.reading.exceptions import AudioFormatError


def tone(rate: int, seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)


def test_stereo_int16_at_48k_keeps_its_level() -> None:
    # WebRTC (Opus) frames: 48 kHz interleaved stereo int16.
    mono = tone(48000, 0.5)
    stereo = np.stack([mono, mono], axis=1)
    out = to_mono_int16(stereo, 48000)
    assert len(out) == 8000
    assert abs(np.abs(out).max() - np.abs(mono).max()) < 500


def test_float_input_and_low_rate() -> None:
    out = to_mono_int16(np.array([0.5, -0.5] * 8000, dtype=np.float32), 16000)
    assert out.max() == pytest.approx(16384, abs=2)
    with pytest.raises(AudioFormatError, match="4000 Hz is too low"):
        to_mono_int16(np.zeros(100, np.int16), 4000)


def test_a_claimed_sample_rate_beyond_audio_is_refused_at_once(tmp_path: Path) -> None:
    """A WAV header may claim any rate up to 4.29 GHz: a claimed 100 MHz made the resampler
    ask for a 15 GB filter (minutes of CPU, or the robot's memory) before any check."""
    import time
    import wave

    path = tmp_path / "odd-rate.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(100_000_007)
        wav.writeframes(tone(16000, 1.0).tobytes())
    started = time.monotonic()
    with pytest.raises(AudioFormatError, match=r"odd-rate.wav: sample rate 100000007 Hz is "
                                               r"too high: at most 384000 Hz"):
        read_wav(path)
    assert time.monotonic() - started < 1.0
    with pytest.raises(AudioFormatError, match="too high"):
        FrameBuffer().push(tone(16000, 0.02), 1_000_000)
    assert len(to_mono_int16(tone(384_000, 0.1), 384_000)) == 1600  # the highest accepted


def test_frame_buffer_rechunks_to_20ms() -> None:
    buf = FrameBuffer()
    frames = buf.push(np.stack([tone(48000, 0.05)] * 2, axis=1), 48000)
    assert len(frames) == 2 and all(len(f) == FRAME_BYTES for f in frames)


def test_wav_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFormatError, match="missing.wav: audio file not found"):
        read_wav(tmp_path / "missing.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"hello")
    with pytest.raises(AudioFormatError, match="junk.wav: not a PCM WAV"):
        read_wav(junk)
    with pytest.raises(AudioFormatError, match="cannot read the audio file"):
        read_wav(tmp_path)  # a folder given for the file
    empty = tmp_path / "empty.wav"
    write_wav(empty, np.zeros(0, np.int16))
    with pytest.raises(AudioFormatError, match="holds no audio"):
        read_wav(empty)


def test_segmenter_endpoints_after_speech_pause() -> None:
    seg = Segmenter(aggressiveness=1, endpoint_ms=200)
    noise = (np.random.default_rng(0).normal(0, 6000, 320)).astype(np.int16).tobytes()
    speechy = [seg.push(noise) for _ in range(20)]
    silence = [seg.push(bytes(FRAME_BYTES)) for _ in range(60)]
    assert sum(e.speech for e in speechy) > 10
    assert sum(e.endpoint for e in silence) == 1


def test_mic_gate_mutes_while_speaking_and_for_the_echo_tail() -> None:
    gate = MicGate(tail_s=0.1)
    frame = b"\x10\x00" * 320
    assert gate.filter(frame) == (frame, False)
    gate.set_speaking(True)
    assert gate.filter(frame) == (bytes(640), True)
    gate.set_speaking(False)
    muted = [gate.filter(frame)[1] for _ in range(8)]
    assert muted[:5] == [True] * 5 and muted[-1] is False


def test_live_frames_resample_without_edge_transients() -> None:
    # A 440 Hz sine arriving as WebRTC does (20 ms at 48 kHz) must come out as the same
    # signal as resampling the whole recording: no clicks at the 20 ms frame edges.
    from scipy.signal import resample_poly

    rate = 48000
    t = np.arange(rate) / rate
    sine = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    buf = FrameBuffer()
    out = b"".join(f for i in range(0, len(sine), 960)
                   for f in buf.push(np.stack([sine[i:i + 960]] * 2, axis=1), rate))
    live = np.frombuffer(out, np.int16).astype(np.float64)
    whole = resample_poly(sine.astype(np.float64), 1, 3)
    lag = min(range(48), key=lambda k: float(np.mean((live[k:k + 8000] - whole[:8000]) ** 2)))
    n = len(live) - lag - 320
    diff = np.abs(live[lag:lag + n] - whole[:n])
    # Within 1 % of the amplitude everywhere (each-frame resampling: ~30 % spikes).
    assert n > 15000 and diff[320:].max() < 0.01 * 9830, diff.max()
    # And no jump between consecutive samples beyond what a 440 Hz sine allows.
    steps = np.abs(np.diff(live[lag + 320:lag + n]))
    assert steps.max() < 9830 * 2 * np.pi * 440 / 16000 * 1.05


def test_frame_level_in_db() -> None:
    from passeur.reading.audio_in import FRAME_BYTES, frame_level_db

    assert frame_level_db(bytes(FRAME_BYTES)) == 0.0  # digital silence
    square = np.resize(np.array([1, -1], dtype=np.int16), FRAME_BYTES // 2)
    loud = (square * 10000).astype(np.int16)
    quiet = (square * 1000).astype(np.int16)
    assert abs(frame_level_db(loud.tobytes()) - 80.0) < 1e-6
    assert abs(frame_level_db(loud.tobytes()) - frame_level_db(quiet.tobytes()) - 20.0) < 1e-6
    # A microphone's DC offset changes nothing (a constant is no sound).
    assert abs(frame_level_db((quiet + 3000).astype(np.int16).tobytes())
               - frame_level_db(quiet.tobytes())) < 1e-6
    assert frame_level_db(np.full(FRAME_BYTES // 2, 5000, dtype=np.int16).tobytes()) == 0.0


@pytest.mark.parametrize("failure", ["not installed", "cannot start"])
def test_a_robot_microphone_that_cannot_be_used_is_said_and_leaves_nothing_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    """A session with source 'robot' where the Python package sounddevice was missing (it is
    no dependency of the package) failed with a ModuleNotFoundError (HTTP 500 on the page API,
    a traceback), and one that could not start its stream likewise: each left the session's
    listening thread and recogniser running for ever."""
    import sys
    import threading
    import types

    from passeur.reading.service import ReadingService, ServiceConfig

    if failure == "not installed":
        monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
        expected = "pip install sounddevice"
    else:
        class PortAudioError(Exception):
            pass

        class Stream:
            def __init__(self, **_kwargs: object) -> None:
                pass

            def start(self) -> None:
                raise PortAudioError("Device unavailable")

            def stop(self) -> None:
                pass

            def close(self) -> None:
                pass

        fake = types.SimpleNamespace(PortAudioError=PortAudioError, RawInputStream=Stream,
                                     check_input_settings=lambda **_kwargs: None)
        monkeypatch.setitem(sys.modules, "sounddevice", fake)
        expected = "could not start: Device unavailable"
    service = ReadingService(ServiceConfig(progress_db=tmp_path / "p.sqlite3",
                                           play_on_speaker=False, validate_models=False,
                                           microphone_device="default"))
    try:
        before = {t.name for t in threading.enumerate()}
        with pytest.raises(AudioFormatError, match=expected):
            service.open_session("little-red-boat", 1, "i_read", None, source="robot")
        assert not service.sessions
        started = {t.name for t in threading.enumerate()} - before
        assert not [name for name in started if name.startswith("reading-")], started
    finally:
        service.close()


def test_closing_a_session_while_its_microphone_is_read_ends_the_pump_quietly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The thread feeding the robot's microphone to a session checked that the microphone was
    still there, then read it: a session closed in between (the page left, a new reader, the
    node stopping) ended that thread in an AttributeError traceback. The close is made to
    come at that very moment: just before the thread reads the microphone's queue."""
    import linecache
    import threading
    import types
    from typing import Any

    from passeur.reading.service import ReadingService, ServiceConfig
    from tests.support.reading_audio import silent_robot_microphone

    silent_robot_microphone(monkeypatch)
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))
    closed_at_read = threading.Event()

    def lines(frame: types.FrameType, event: str, _arg: Any) -> Any:
        if event == "line" and not closed_at_read.is_set() and ".queue.get(" in \
                linecache.getline(frame.f_code.co_filename, frame.f_lineno):
            closed_at_read.set()
            frame.f_locals["self"].close()
        return lines

    def calls(frame: types.FrameType, event: str, _arg: Any) -> Any:
        return lines if event == "call" and frame.f_code.co_name == "_pump_microphone" \
            else None

    service = ReadingService(ServiceConfig(progress_db=tmp_path / "p.sqlite3",
                                           play_on_speaker=False, validate_models=False,
                                           microphone_device="default"))
    threading.settrace(calls)
    try:
        session = service.open_session("little-red-boat", 1, "i_read", None, source="robot")
    finally:
        threading.settrace(None)  # type: ignore[arg-type]
    try:
        assert closed_at_read.wait(10)
        pump = next(t for t in threading.enumerate() if t.name == f"reading-mic-{session.id[:6]}")
        pump.join(10)
        assert not pump.is_alive() and session.closed
        assert failures == []  # a thread's excepthook runs before join() returns
    finally:
        service.close()
