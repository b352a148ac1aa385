"""Test recordings for the reading companion, generated with the espeak-ng command line
(several voices and rates) and numpy silence; written to a temp folder, never committed."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from passeur.reading.audio_in import read_wav, write_wav


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(text: str, voice: str = "en-us", rate_wpm: int = 140) -> np.ndarray:
    """espeak-ng speech as 16 kHz mono int16."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-w", str(path), text],
                       check=True, capture_output=True, timeout=60)
        return read_wav(path)


def reading(parts: Sequence[str | float], voice: str = "en-us", rate_wpm: int = 140,
            lead_s: float = 0.3, tail_s: float = 0.8) -> np.ndarray:
    """Concatenate spoken parts (str) and silences (float seconds)."""
    pieces = [np.zeros(int(lead_s * 16000), np.int16)]
    for part in parts:
        if isinstance(part, str):
            pieces.append(speak(part, voice, rate_wpm))
        else:
            pieces.append(np.zeros(int(part * 16000), np.int16))
    pieces.append(np.zeros(int(tail_s * 16000), np.int16))
    return np.concatenate(pieces)


def save(pcm: np.ndarray, path: Path, rate: int = 16000) -> Path:
    if rate != 16000:
        from scipy.signal import resample_poly

        pcm = np.clip(resample_poly(pcm.astype(np.float64), rate, 16000), -32768, 32767
                      ).astype(np.int16)
    write_wav(path, pcm, rate)
    return path


def silent_robot_microphone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for sounddevice (not installed here, no sound card): a robot microphone
    (`source: robot` sessions) that starts and stays silent."""
    import sys
    import types

    class Stream:
        def __init__(self, **_kwargs: object) -> None:
            pass

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(
        PortAudioError=OSError, RawInputStream=Stream,
        check_input_settings=lambda **_kwargs: None))
