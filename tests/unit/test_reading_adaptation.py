"""Speaker adaptation (adaptation.py): the estimator, its storage and its file, without
decoding (the tests that align real speech are in tests/integration/)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from passeur.reading.adaptation import (
    MIN_FRAMES,
    AdaptationStats,
    AdaptationUnavailable,
    SpeakerAdapter,
    Transform,
    estimate,
    features,
    reader_transform,
    write_mllr,
)
from passeur.reading.progress_store import ProgressStore


def synthetic_stats(a: np.ndarray, b: np.ndarray, n_gauss: int = 400, frames: int = 5000,
                    seed: int = 0) -> AdaptationStats:
    """Statistics of speech whose Gaussians sit exactly at `a @ mean + b` (per stream)."""
    rng = np.random.default_rng(seed)
    streams, dims = b.shape
    stats = AdaptationStats.empty(streams, dims)
    for f in range(streams):
        means = rng.normal(0, 5, (n_gauss, dims))
        var = rng.uniform(0.5, 2.0, (n_gauss, dims))
        occ = rng.uniform(1, 20, n_gauss)
        obs_mean = means @ a[f].T + b[f]  # what the reader's frames average to
        xi = np.concatenate([means, np.ones((n_gauss, 1))], axis=1)
        for i in range(dims):
            w = occ / var[:, i]
            stats.g[f, i] = (xi * w[:, None]).T @ xi
            stats.z[f, i] = (xi * (w * obs_mean[:, i])[:, None]).sum(axis=0)
    stats.frames = frames
    return stats


def test_the_transform_is_recovered_from_a_readers_statistics() -> None:
    rng = np.random.default_rng(1)
    a = np.eye(13)[None].repeat(3, axis=0) + rng.normal(0, 0.05, (3, 13, 13))
    b = rng.normal(0, 1, (3, 13))
    got = estimate(synthetic_stats(a, b), prior_frames=1e-6)
    assert np.allclose(got.a, a, atol=1e-6) and np.allclose(got.b, b, atol=1e-6)


def test_few_frames_move_the_model_little_and_none_not_at_all() -> None:
    a = np.eye(13)[None].repeat(3, axis=0) * 1.2
    b = np.ones((3, 13))
    identity = estimate(AdaptationStats.empty())
    assert np.allclose(identity.a, np.eye(13)) and np.allclose(identity.b, 0)
    full = estimate(synthetic_stats(a, b), prior_frames=1e-6)
    pulled = estimate(synthetic_stats(a, b), prior_frames=1e6)
    assert np.abs(pulled.b).max() < 0.5 * np.abs(full.b).max()
    assert reader_transform(None) is None
    few = synthetic_stats(a, b, frames=MIN_FRAMES - 1)
    assert reader_transform(few) is None
    few.frames = MIN_FRAMES
    assert reader_transform(few) is not None


def test_statistics_add_up_and_survive_storage() -> None:
    a = np.eye(13)[None].repeat(3, axis=0)
    s1 = synthetic_stats(a, np.zeros((3, 13)), seed=1)
    s2 = synthetic_stats(a, np.ones((3, 13)), seed=2)
    total = s1 + s2
    assert total.frames == s1.frames + s2.frames
    assert np.allclose(total.g, s1.g + s2.g)
    back = AdaptationStats.from_bytes(total.to_bytes())
    assert np.array_equal(back.g, total.g) and np.array_equal(back.z, total.z)
    assert back.frames == total.frames
    with pytest.raises(ValueError, match="different models"):
        _ = total + AdaptationStats.empty(2, 13)


@pytest.mark.parametrize("data", [b"", b"not numpy at all", b"PK\x03\x04garbage"])
def test_unreadable_statistics_are_refused_clearly(data: bytes) -> None:
    with pytest.raises(ValueError, match="not adaptation statistics"):
        AdaptationStats.from_bytes(data)


def test_statistics_with_bad_values_are_refused() -> None:
    bad = AdaptationStats.empty()
    bad.g[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="wrong shape or values"):
        AdaptationStats.from_bytes(bad.to_bytes())


def test_the_mllr_file_is_pocketsphinx_s_format(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    t = Transform(rng.normal(size=(3, 13, 13)), rng.normal(size=(3, 13)))
    path = tmp_path / "r.mllr"
    write_mllr(path, t)
    values = path.read_text().split()
    assert values[:3] == ["1", "3", "13"]
    nums = [float(v) for v in values]
    per_stream = 1 + 13 * 13 + 13 + 13
    for f in range(3):
        block = nums[2 + f * per_stream:2 + (f + 1) * per_stream]
        assert block[0] == 13
        assert np.allclose(np.array(block[1:170]).reshape(13, 13), t.a[f], rtol=1e-6)
        assert np.allclose(block[170:183], t.b[f], rtol=1e-6)
        assert block[183:196] == [1.0] * 13  # variances are not adapted
    assert len(nums) == 2 + 3 * per_stream


def test_features_are_cepstra_deltas_and_double_deltas() -> None:
    ramp = np.arange(20, dtype=float)[:, None] * np.ones(13)  # c_t = t
    f = features(ramp)
    assert f.shape == (20, 3, 13)
    assert np.allclose(f[:, 0].mean(axis=0), 0)  # the page's mean removed
    assert np.allclose(f[5:15, 1], 4.0)  # c[t+2] - c[t-2]
    assert np.allclose(f[5:15, 2], 0.0)


def test_a_model_that_cannot_be_adapted_says_why(tmp_path: Path) -> None:
    with pytest.raises(AdaptationUnavailable, match="means, variances, sendump, mdef"):
        SpeakerAdapter(tmp_path, tmp_path / "dict")
    for name in ("means", "variances", "sendump", "mdef"):
        (tmp_path / name).write_bytes(b"s3\nversion 1.0\nendhdr\n" + struct.pack("<I", 0x11223344)
                                      + struct.pack("<3i", 42, 3, 128))
    with pytest.raises(AdaptationUnavailable, match="truncated.*as shipped"):
        SpeakerAdapter(tmp_path, tmp_path / "dict")


def test_the_store_keeps_merges_exports_and_deletes_a_readers_adaptation(tmp_path: Path
                                                                         ) -> None:
    store = ProgressStore(tmp_path / "p.sqlite3")
    assert store.adaptation("Zoé", "en:m") is None
    # Not a reader yet (nothing saved for them): nothing is created.
    assert store.update_adaptation("Zoé", "en:m", lambda old: (b"x", 1)) is False
    assert store.readers() == []
    store.reader_id("Zoé")
    seen: list[bytes | None] = []

    def add(old: bytes | None) -> tuple[bytes, int]:
        seen.append(old)
        return (old or b"") + b"ab", len((old or b"") + b"ab")

    assert store.update_adaptation("Zoé", "en:m", add)
    assert store.update_adaptation("Zoé", "en:m", add)
    assert seen == [None, b"ab"]
    assert store.adaptation("Zoé", "en:m") == b"abab"
    assert store.adaptation("Zoé", "fr:m") is None
    exported = store.export("Zoé")["voice_adaptation"]
    assert [(e["model"], e["frames"], e["pages"]) for e in exported] == [("en:m", 4, 2)]
    # A failing update leaves what was there.
    with pytest.raises(RuntimeError):
        store.update_adaptation("Zoé", "en:m", lambda old: (_ for _ in ()).throw(
            RuntimeError("boom")))
    assert store.adaptation("Zoé", "en:m") == b"abab"
    store.delete("Zoé")
    assert store.adaptation("Zoé", "en:m") is None
    assert store._q("SELECT count(*) FROM voice_adaptation")[0][0] == 0
    store.close()


def test_a_database_from_before_adaptation_exports_read_only(tmp_path: Path) -> None:
    """`readers export` opens the database read-only, creating nothing: one made before the
    adaptation table existed must still export (no adaptation to give)."""
    import sqlite3

    from passeur.reading.alignment import Aligner
    from passeur.reading.text import tokenize

    db = tmp_path / "p.sqlite3"
    store = ProgressStore(db)
    page = tokenize("the cat sat", "en")
    state = Aligner(page).state
    from passeur.reading.alignment import score

    store.record_reading("Léo", "b", "i_read", 1, "en", state, score(page, state))
    store.close()
    old = sqlite3.connect(str(db), isolation_level=None)
    old.execute("DROP TABLE voice_adaptation")
    old.execute("PRAGMA journal_mode=DELETE")
    old.close()
    store = ProgressStore(db, read_only=True)
    assert store.export("Léo")["voice_adaptation"] == []
    assert store.adaptation("Léo", "en:m") is None
    store.close()



def synthetic_adapter(seed: int = 0) -> SpeakerAdapter:
    """An adapter over a random model of the shipped layout (42 codebooks of 128 Gaussians,
    3 streams of 13, 5138 senones), without reading model files."""
    rng = np.random.default_rng(seed)
    adapter = SpeakerAdapter.__new__(SpeakerAdapter)
    adapter.means = rng.normal(0, 3, (42, 3, 128, 13))
    adapter.variances = rng.uniform(0.5, 2.0, (42, 3, 128, 13))
    adapter.inv_var = 1.0 / adapter.variances
    adapter.log_norm = -0.5 * np.log(2.0 * np.pi * adapter.variances).sum(-1)
    weights = rng.dirichlet(np.ones(128), (3, 5138)).transpose(0, 2, 1)
    adapter.log_weights = np.log(weights)
    adapter._xi = np.concatenate([adapter.means, np.ones((42, 3, 128, 1))], axis=-1)
    return adapter


def test_a_long_page_is_adapted_in_bounded_memory() -> None:
    """Each Gaussian's posterior and distance per frame were computed for the whole page at
    once: 2.5 min of speech took ~850 MB (a 5 min page ~1.7 GB, on the robot's computer)."""
    import tracemalloc

    adapter = synthetic_adapter()
    rng = np.random.default_rng(1)
    n = 15000  # speech frames: 2.5 min
    feats = rng.normal(0, 3, (n, 3, 13))
    t = np.arange(n)
    cb = rng.integers(0, 42, n)
    sen = rng.integers(0, 5138, n)
    tracemalloc.start()
    try:
        stats = adapter._statistics(feats, t, cb, sen)
        # fit() scores the same frames (the alignment itself is pocketsphinx's).
        adapter._aligned = lambda pcm, words: (feats, t, cb, sen)  # type: ignore[method-assign]
        fit = adapter.fit(np.zeros(1, np.int16), ["page"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 150e6, f"{peak / 1e6:.0f} MB"
    assert stats.frames == n and np.all(np.isfinite(stats.g))
    assert fit is not None and np.isfinite(fit)
    # The same statistics as two halves of the page added up.
    half = adapter._statistics(feats, t[:7000], cb[:7000], sen[:7000]) \
        + adapter._statistics(feats, t[7000:], cb[7000:], sen[7000:])
    assert np.allclose(stats.g, half.g) and np.allclose(stats.z, half.z)


def test_alignment_folders_left_by_a_stopped_robot_are_removed(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """A robot stopped mid-alignment (power cut) leaves a folder of cepstra, close to the
    child's speech: the next start of adaptation removes it, not a fresh one in use."""
    import os
    import tempfile
    import time

    from passeur.reading import adaptation

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / "passeur-adapt-old"
    stale.mkdir()
    (stale / "000000000.mfc").write_bytes(b"cepstra")
    old = time.time() - 2 * adaptation.STALE_FOLDER_S
    os.utime(stale, (old, old))
    fresh = tmp_path / "passeur-adapt-new"
    fresh.mkdir()
    other = tmp_path / "someone-else"
    other.mkdir()
    os.utime(other, (old, old))
    adaptation._remove_stale_folders()
    assert not stale.exists() and fresh.exists() and other.exists()

