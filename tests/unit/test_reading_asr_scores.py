"""The per-frame acoustic fit taken from pocketsphinx's segment scores (pure arithmetic)."""

from __future__ import annotations

import math

from passeur.reading.asr_pocketsphinx import acoustic_per_frame


def test_log_of_the_probability_spread_over_the_frames() -> None:
    assert math.isclose(acoustic_per_frame(math.exp(-120.0), 40) or 0.0, -3.0)
    # A better fit over the same frames scores higher.
    assert (acoustic_per_frame(math.exp(-80.0), 40) or -99) > (
        acoustic_per_frame(math.exp(-120.0), 40) or 0.0)


def test_underflow_and_empty_segments_give_no_score() -> None:
    assert acoustic_per_frame(0.0, 30) is None
    assert acoustic_per_frame(1e-5, 0) is None
    assert acoustic_per_frame(float("inf"), 10) is None
