"""Speaker adaptation of the pocketsphinx acoustic model to one reader (mean-only MLLR).

The page-following recogniser fits voices unlike its model's speakers poorly (children's
voices above all): it hears content words as "the"/"to" and loses words. MLLR (maximum
likelihood linear regression) moves every Gaussian mean of the model through one affine
transform per feature stream, `mean' = A mean + b`, estimated from the reader's own earlier
readings. pocketsphinx applies such a transform (`-mllr` file) but cannot estimate one; this
module does, in numpy:

1. `SpeakerAdapter.accumulate(pcm, words)`: align what the recogniser heard on a page (its
   final hypothesis) to the audio with pocketsphinx's own state alignment (default model),
   take the cepstra pocketsphinx computed (`mfclogdir`, a private temporary folder deleted at
   once), build its 1s_c_d_dd features (cepstral mean removed over the page), and for every
   speech frame the posterior of each Gaussian of the aligned senone's codebook (phonetically
   tied model: one codebook per base phone, its mixture weights from `sendump`). What is kept
   are the sufficient statistics of the transform (`AdaptationStats`: for each stream and
   dimension a 14 x 14 matrix and a 14-vector), which add up over pages and say nothing a
   person could listen to: no audio, no cepstra, no words.
2. `estimate(stats)`: the transform, row by row (`w_i = G_i^-1 z_i`), pulled toward the
   identity by a prior (`PRIOR_FRAMES`), so that one short page moves the model
   little and many pages move it fully.
3. `write_mllr(path, transform)`: pocketsphinx's text format (classes, streams, then per
   stream A, b and the variance scales, all 1: adapting variances too made recognition worse
   on the benchmark, docs/reading.md).

Mean-only, one class, the identity prior: the transform a few pages of speech can support.
Only the phonetically tied (PTM) model layout pocketsphinx ships is read; another model gives
`AdaptationUnavailable` and the reader is simply not adapted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from passeur.reading.exceptions import AdaptationUnavailable

__all__ = ["AdaptationStats", "AdaptationStore", "AdaptationUnavailable", "SpeakerAdapter",
           "Transform", "dictionary_words", "estimate", "features", "model_key",
           "reader_transform", "save_page", "stored_transform", "write_mllr"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: Strength of the pull toward the unadapted model (tau, added as tau * I to each row's
#: normal equations, whose terms are occupancy / variance): more of the reader's speech moves
#: the model further from the shipped one. As the statistics are weighted by the inverse
#: variances, the pull is not the same on every entry (weaker on the low-variance ones).
#: Measured on the benchmark (docs/reading.md): 50 and 200 gave more false alarms than 1000.
PRIOR_FRAMES = 1000.0
#: No transform before this much of the reader's speech (frames of 10 ms): 3 s.
MIN_FRAMES = 300
#: Variance floor of pocketsphinx (`-varfloor`).
VAR_FLOOR = 1e-4
#: Base phones that are not speech (their frames are not used).
NON_SPEECH = frozenset({"SIL", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+NOISE+",
                        "+SMACK+", "+UM+", "+UH+"})
#: pocketsphinx's log base and the 8-bit mixture-weight shift (`logbase`, SENSCR_SHIFT).
_LOG_BASE = 1.0001
_SENSCR_SHIFT = 10
#: Alignment beams, tried in turn: with pocketsphinx's default ones the alignment of a whole
#: page (pauses, extra words) fails on some voices, and with the first wide ones on about one
#: page in ten (benchmarks/reading.py); wider ones cost time, so they are the fallback.
_ALIGN_BEAMS = ({"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80},
                {"beam": 1e-120, "wbeam": 1e-100, "pbeam": 1e-120})
_STATS_VERSION = 1
#: Speech frames scored at once: each Gaussian's posterior and distance take frames x 128 x 13
#: doubles (~13 MB per 1000 frames), so a whole page at once took gigabytes (5 min of speech).
_CHUNK_FRAMES = 1000


@dataclass
class AdaptationStats:
    """Sufficient statistics of a mean-only MLLR transform, summed over a reader's pages:
    per stream f and dimension i, `g[f, i]` (14 x 14) and `z[f, i]` (14), and the number of
    speech frames. Additive: the statistics of two pages are their sum."""

    g: np.ndarray  # (streams, dims, dims + 1, dims + 1)
    z: np.ndarray  # (streams, dims, dims + 1)
    frames: int = 0

    @classmethod
    def empty(cls, streams: int = 3, dims: int = 13) -> AdaptationStats:
        return cls(np.zeros((streams, dims, dims + 1, dims + 1)),
                   np.zeros((streams, dims, dims + 1)), 0)

    def __add__(self, other: AdaptationStats) -> AdaptationStats:
        if self.g.shape != other.g.shape:
            raise ValueError(f"statistics of different models: {self.g.shape} and "
                             f"{other.g.shape}")
        return AdaptationStats(self.g + other.g, self.z + other.z, self.frames + other.frames)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, version=np.array(_STATS_VERSION), g=self.g, z=self.z,
                            frames=np.array(self.frames))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> AdaptationStats:
        """Raises ValueError when `data` is not statistics this version wrote."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                if int(npz["version"]) != _STATS_VERSION:
                    raise ValueError(f"adaptation statistics version {int(npz['version'])}, "
                                     f"expected {_STATS_VERSION}")
                g, z, frames = npz["g"], npz["z"], int(npz["frames"])
        except (OSError, KeyError, EOFError) as exc:
            raise ValueError(f"not adaptation statistics ({exc})") from exc
        except Exception as exc:  # zipfile.BadZipFile and friends
            raise ValueError(f"not adaptation statistics ({exc})") from exc
        if g.ndim != 4 or z.ndim != 3 or g.shape[:2] != z.shape[:2] \
                or g.shape[2] != g.shape[3] or g.shape[2] != z.shape[2] \
                or not np.all(np.isfinite(g)) or not np.all(np.isfinite(z)) or frames < 0:
            raise ValueError("adaptation statistics have the wrong shape or values")
        return cls(g.astype(np.float64), z.astype(np.float64), frames)


@dataclass
class Transform:
    """`mean' = a[f] @ mean + b[f]` for each feature stream f."""

    a: np.ndarray  # (streams, dims, dims)
    b: np.ndarray  # (streams, dims)


def estimate(stats: AdaptationStats, prior_frames: float = PRIOR_FRAMES) -> Transform:
    """The mean transform from the statistics, pulled toward the identity (module doc)."""
    streams, dims = stats.z.shape[:2]
    a = np.zeros((streams, dims, dims))
    b = np.zeros((streams, dims))
    eye = np.eye(dims + 1)
    for f in range(streams):
        for i in range(dims):
            prior = np.zeros(dims + 1)
            prior[i] = 1.0
            w = np.linalg.solve(stats.g[f, i] + prior_frames * eye,
                                stats.z[f, i] + prior_frames * prior)
            a[f, i] = w[:dims]
            b[f, i] = w[dims]
    return Transform(a, b)


def reader_transform(stats: AdaptationStats | None) -> Transform | None:
    """The transform to decode a reader's next page with: None until `MIN_FRAMES` of their
    speech were collected (an unadapted model beats one fitted to a few words)."""
    if stats is None or stats.frames < MIN_FRAMES:
        return None
    return estimate(stats)


def write_mllr(path: str | os.PathLike[str], transform: Transform) -> None:
    """pocketsphinx's MLLR file: one class; per stream its length, A, b, variance scales."""
    streams, dims = transform.b.shape
    lines = ["1", str(streams)]
    for f in range(streams):
        lines.append(str(dims))
        lines.extend(" ".join(f"{v:.7g}" for v in row) for row in transform.a[f])
        lines.append(" ".join(f"{v:.7g}" for v in transform.b[f]))
        lines.append(" ".join("1" for _ in range(dims)))
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii")


# -- a reader's statistics in the progress store ------------------------------------------
class AdaptationStore(Protocol):
    """Where a reader's statistics are kept (progress_store.ProgressStore)."""

    def adaptation(self, name: str, model: str) -> bytes | None: ...

    def update_adaptation(self, name: str, model: str,
                          update: Callable[[bytes | None], tuple[bytes, int]]) -> bool: ...


def model_key(lang: str, adapter: SpeakerAdapter) -> str:
    """What a reader's statistics belong to: a language and an acoustic model, named by its
    content (statistics of another model are never mixed in; a model moved with the robot's
    software keeps its readers')."""
    return f"{lang}:{adapter.model_id}"


def stored_transform(store: AdaptationStore, adapter: SpeakerAdapter, reader: str, lang: str
                     ) -> Transform | None:
    """The reader's transform from their stored statistics (None: none or too few yet).
    ValueError when the stored statistics cannot be used (the caller decodes unadapted)."""
    data = store.adaptation(reader, model_key(lang, adapter))
    if data is None:
        return None
    stats = AdaptationStats.from_bytes(data)
    if stats.g.shape[:2] != adapter.shape:
        raise ValueError(f"statistics of another model layout {stats.g.shape[:2]}")
    return reader_transform(stats)


def save_page(store: AdaptationStore, adapter: SpeakerAdapter, reader: str, lang: str,
              pcm: np.ndarray, heard: Sequence[str]) -> int:
    """Add one saved page of the reader to their statistics (`heard`: the recogniser's final
    hypothesis). Returns the speech frames added (0: nothing could be used, or the reader is
    no longer in the store, who is then not created again)."""
    stats = adapter.accumulate(pcm, heard)
    if stats.frames == 0:
        return 0

    def merge(old: bytes | None) -> tuple[bytes, int]:
        total = stats
        if old is not None:
            try:
                total = AdaptationStats.from_bytes(old) + stats
            except ValueError as exc:
                log.warning("speaker adaptation of '%s': stored statistics unusable (%s), "
                            "started again", reader, exc)
        return total.to_bytes(), total.frames

    return stats.frames if store.update_adaptation(reader, model_key(lang, adapter), merge) \
        else 0


# -- the model -----------------------------------------------------------------------------
def _read_gauden(path: Path) -> np.ndarray:
    """A SphinxTrain means/variances file: (codebooks, streams, densities, dims)."""
    data = path.read_bytes()
    marker = b"endhdr\n"
    start = data.find(marker)
    if start < 0:
        raise AdaptationUnavailable(f"{path}: not a SphinxTrain parameter file")
    i = start + len(marker)
    (magic,) = struct.unpack("<I", data[i:i + 4])
    e = "<" if magic == 0x11223344 else ">"
    i += 4
    n_cb, n_feat, n_dens = struct.unpack(e + "3i", data[i:i + 12])
    i += 12
    veclen = struct.unpack(e + f"{n_feat}i", data[i:i + 4 * n_feat])
    i += 4 * n_feat
    (n,) = struct.unpack(e + "i", data[i:i + 4])
    i += 4
    if len(set(veclen)) != 1 or n != n_cb * n_dens * sum(veclen) \
            or len(data) < i + 4 * n:
        raise AdaptationUnavailable(f"{path}: streams of different lengths or a truncated "
                                    "file (only the shipped en-us model layout is read)")
    arr = np.frombuffer(data, dtype=e + "f4", count=n, offset=i).astype(np.float64)
    return arr.reshape(n_cb, n_feat, n_dens, veclen[0])


def _read_sendump(path: Path, n_feat: int, n_dens: int) -> np.ndarray:
    """Mixture weights of a `sendump` file as natural logs: (streams, densities, senones)."""
    data = path.read_bytes()
    pos = 0

    def int32() -> int:
        nonlocal pos
        (v,) = struct.unpack("<i", data[pos:pos + 4])
        pos += 4
        return int(v)

    for _ in ("title", "header"):
        n = int32()
        pos += n
    clusters, bits, senones = 0, 8, -1
    while True:
        n = int32()
        if n == 0:
            break
        key, _, value = data[pos:pos + n].rstrip(b"\0").decode("ascii").partition(" ")
        pos += n
        if key == "cluster_count":
            clusters = int(value)
        elif key == "cluster_bits":
            bits = int(value)
        elif key == "model_count":
            senones = int(value)
    if clusters == 0:
        int32()  # rows
        senones = int32()
    codebook = None
    if clusters:
        clusters = 16 if clusters == 15 else clusters
        codebook = np.frombuffer(data, np.uint8, clusters, pos).astype(np.int64)
        pos += clusters
    step = senones if bits == 8 else (senones + 1) // 2
    if senones <= 0 or len(data) < pos + n_feat * n_dens * step:
        raise AdaptationUnavailable(f"{path}: truncated or unknown mixture weights")
    raw = np.frombuffer(data, np.uint8, n_feat * n_dens * step, pos).reshape(
        n_feat, n_dens, step)
    if bits == 4:
        full = np.empty((n_feat, n_dens, senones), np.int64)
        full[:, :, 0::2] = (raw & 0x0F)[:, :, :(senones + 1) // 2]
        full[:, :, 1::2] = (raw >> 4)[:, :, :senones // 2]
        if codebook is None:
            raise AdaptationUnavailable(f"{path}: 4-bit weights without a codebook")
        values = codebook[full]
    else:
        values = raw.astype(np.int64)
    return -values * (1 << _SENSCR_SHIFT) * np.log(_LOG_BASE)


def _base_phones(mdef: Path) -> list[str]:
    """The base phones of a binary model definition, in order (their codebook numbers)."""
    data = mdef.read_bytes()
    end = b"END FILE FORMAT DESCRIPTION\n"
    at = data.find(end)
    if not data.startswith(b"BMDF") or at < 0:
        raise AdaptationUnavailable(f"{mdef}: not a binary model definition")
    i = at + len(end)
    i += (-i) % 4  # aligned to 4 bytes
    (n_ci,) = struct.unpack("<i", data[i:i + 4])
    # n_ciphone, n_phone, n_emit_state, n_ci_sen, n_sen, n_tmat, n_sseq, n_ctx, n_cd_tree,
    # sil: ten int32, then the base phone names, NUL-terminated.
    k = i + 40
    names: list[str] = []
    while len(names) < n_ci:
        e = data.index(b"\0", k)
        names.append(data[k:e].decode("ascii"))
        k = e + 1
    return names


class SpeakerAdapter:
    """Collects a reader's statistics from their pages, for one acoustic model (`hmm`)."""

    def __init__(self, hmm: str | os.PathLike[str], dictionary: str | os.PathLike[str], *,
                 pronounce: Callable[[str], str] | None = None,
                 known_words: Callable[[], set[str]] | None = None) -> None:
        """`pronounce(word)`: phones for a word the dictionary lacks ("" if none), as the
        page recogniser gets them (espeak-ng). `known_words()`: the dictionary's words, if
        the caller holds them already (the backend's; else read here on first use)."""
        hmm = Path(hmm)
        self.pronounce = pronounce
        self._known_words = known_words
        needed = [hmm / n for n in ("means", "variances", "sendump", "mdef")]
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise AdaptationUnavailable(f"{hmm}: no {', '.join(missing)} (speaker adaptation "
                                        "reads the phonetically tied en-us model layout)")
        self.hmm = hmm
        self.dictionary = Path(dictionary)
        _remove_stale_folders()
        try:
            means = _read_gauden(hmm / "means")
            variances = np.maximum(_read_gauden(hmm / "variances"), VAR_FLOOR)
            phones = _base_phones(hmm / "mdef")
            if means.shape != variances.shape:
                raise AdaptationUnavailable(f"{hmm}: means and variances differ in shape")
            log_weights = _read_sendump(hmm / "sendump", means.shape[1], means.shape[2])
        except (struct.error, ValueError, IndexError, UnicodeDecodeError, OSError) as exc:
            raise AdaptationUnavailable(f"{hmm}: unreadable or truncated model files ({exc}); "
                                        "speaker adaptation reads the en-us model as shipped"
                                        ) from exc
        if means.shape[0] != len(phones):
            raise AdaptationUnavailable(f"{hmm}: {means.shape[0]} codebooks for "
                                        f"{len(phones)} base phones: not a tied (PTM) model")
        self.means, self.variances = means, variances
        self.inv_var = 1.0 / variances
        self.log_norm = -0.5 * np.log(2.0 * np.pi * variances).sum(-1)
        self.log_weights = log_weights
        self.codebook = {name: n for n, name in enumerate(phones)}
        digest = hashlib.sha1()
        for name in ("mdef", "means", "variances", "sendump"):
            digest.update((hmm / name).read_bytes())
        #: the model's identity by its content (model_key)
        self.model_id = f"{hmm.name}-{digest.hexdigest()[:12]}"
        # xi = [mean, 1] per Gaussian and stream (for the G matrices and z vectors)
        n_cb, streams, dens, dims = means.shape
        self._xi = np.concatenate([means, np.ones((n_cb, streams, dens, 1))], axis=-1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.means.shape[1], self.means.shape[3]

    def empty(self) -> AdaptationStats:
        return AdaptationStats.empty(*self.shape)

    def accumulate(self, pcm: np.ndarray, words: Sequence[str]) -> AdaptationStats:
        """Statistics of one page: `pcm` 16 kHz mono int16, `words` what the recogniser heard
        on it (its final hypothesis). Empty statistics when nothing can be aligned."""
        aligned = self._aligned(pcm, words)
        if aligned is None:
            return self.empty()
        return self._statistics(*aligned)

    def fit(self, pcm: np.ndarray, words: Sequence[str], transform: Transform | None = None
            ) -> float | None:
        """How well the model fits the reader's speech: mean log-likelihood (nats) per speech
        frame of `words` aligned to `pcm`, with the means moved by `transform` (None: the model
        as shipped); None when nothing could be aligned. For checks and measurements."""
        aligned = self._aligned(pcm, words)
        if aligned is None:
            return None
        feats, t, cb, sen = aligned
        total = 0.0
        for f in range(self.shape[0]):
            for part in _chunks(len(t)):
                ll, _ = self._frame_scores(feats[t[part], f], f, cb[part], sen[part],
                                           transform)
                total += float(ll.sum())
        return total / len(t)

    def _aligned(self, pcm: np.ndarray, words: Sequence[str]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """(features, speech frame numbers, their codebooks, their senones), or None."""
        words = [w for w in words if w]
        if not words or len(pcm) < SAMPLE_RATE // 2:
            return None
        try:
            extra = self._missing_pronunciations(words)
            # In a process of its own: pocketsphinx holds the GIL through each call (loading
            # the dictionary, a whole page's pass), which froze every other thread (other
            # children's listening, the web server, the node) for seconds per page; and a
            # pocketsphinx abort there ends that process, not the robot's.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) \
                    as pool:
                aligned = pool.submit(_align_page, os.fspath(self.hmm),
                                      os.fspath(self.dictionary), np.asarray(pcm, np.int16),
                                      words, extra, self.codebook).result()
        except (RuntimeError, OSError) as exc:  # BrokenProcessPool is a RuntimeError
            log.info("speaker adaptation: a page could not be aligned (%s); it is not used",
                     exc)
            return None
        if aligned is None:
            log.info("speaker adaptation: a page could not be aligned; it is not used")
            return None
        cepstra, frames = aligned
        feats = features(cepstra)
        rows = [(t, cb, sen) for t, cb, sen in frames
                if t < len(feats) and sen < self.log_weights.shape[2]]
        if not rows:
            return None
        table = np.array(rows, dtype=np.int64)
        return feats, table[:, 0], table[:, 1], table[:, 2]

    def _missing_pronunciations(self, words: Sequence[str]) -> dict[str, str]:
        """Phones for the words the model's dictionary lacks (`pronounce`); RuntimeError
        when one has none."""
        if self._known_words is None:
            read = dictionary_words(self.dictionary)
            self._known_words = lambda: read
        extra: dict[str, str] = {}
        for w in sorted(set(words) - self._known_words()):
            phones = self.pronounce(w) if self.pronounce is not None else ""
            if not phones:
                raise RuntimeError(f"no pronunciation for '{w}'")
            extra[w] = phones
        return extra

    def _frame_scores(self, obs: np.ndarray, f: int, cb: np.ndarray, sen: np.ndarray,
                      transform: Transform | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per frame of stream `f`: the log-likelihood of the aligned senone (its codebook's
        Gaussians, its mixture weights) and each Gaussian's posterior (frames, densities)."""
        means = self.means[cb, f]  # (N, dens, dims)
        if transform is not None:
            means = means @ transform.a[f].T + transform.b[f]
        diff = obs[:, None, :] - means
        ll = self.log_norm[cb, f] - 0.5 * np.einsum("nkd,nkd->nk", diff * diff,
                                                    self.inv_var[cb, f])
        ll += self.log_weights[f][:, sen].T
        top = ll.max(axis=1, keepdims=True)
        post = np.exp(ll - top)
        total = post.sum(axis=1, keepdims=True)
        return (top + np.log(total))[:, 0], post / total

    def _statistics(self, feats: np.ndarray, t: np.ndarray, cb: np.ndarray, sen: np.ndarray
                    ) -> AdaptationStats:
        stats = self.empty()
        streams, dims = self.shape
        n_cb, _, dens, _ = self.means.shape
        for f in range(streams):
            occ = np.zeros((n_cb, dens))
            first = np.zeros((n_cb, dens, dims))
            for part in _chunks(len(t)):
                obs = feats[t[part], f]  # (N, dims)
                _, post = self._frame_scores(obs, f, cb[part], sen[part])
                np.add.at(occ, cb[part], post)
                np.add.at(first, cb[part], post[:, :, None] * obs[:, None, :])
            xi = self._xi[:, f].reshape(-1, dims + 1)  # (G, dims + 1), G Gaussians
            inv = self.inv_var[:, f].reshape(-1, dims)
            w = occ.reshape(-1)[:, None] * inv  # (G, dims): occupancy / variance
            stats.g[f] = np.einsum("gi,ga,gb->iab", w, xi, xi)
            stats.z[f] = np.einsum("gi,ga->ia", first.reshape(-1, dims) * inv, xi)
        stats.frames = len(t)
        return stats


#: Alignment folders (they hold cepstra, close to the child's speech) older than this, left by
#: a robot stopped mid-alignment (power cut), are removed when adaptation starts (s).
STALE_FOLDER_S = 3600.0


def _remove_stale_folders() -> None:
    base = Path(tempfile.gettempdir())
    now = time.time()
    for folder in base.glob("passeur-adapt-*"):
        try:
            if folder.is_dir() and not folder.is_symlink() and \
                    folder.stat().st_uid == os.getuid() and \
                    now - folder.stat().st_mtime > STALE_FOLDER_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


def _align_page(hmm: str, dictionary: str, pcm: np.ndarray, words: list[str],
                extra: dict[str, str], codebook: dict[str, int]
                ) -> tuple[np.ndarray, list[tuple[int, int, int]]] | None:
    """(cepstra, (frame, codebook, senone) of each speech frame) of `words` aligned to `pcm`,
    trying the beams in turn; None when none aligns. Run in a process of its own."""
    for beams in _ALIGN_BEAMS:
        with tempfile.TemporaryDirectory(prefix="passeur-adapt-") as tmp:
            try:
                return _align(hmm, dictionary, pcm, words, extra, codebook, tmp, beams)
            except RuntimeError as exc:
                log.debug("speaker adaptation: page not aligned with %s (%s)", beams, exc)
    return None


def _align(hmm: str, dictionary: str, pcm: np.ndarray, words: list[str],
           extra: dict[str, str], codebook: dict[str, int], tmp: str, beams: dict[str, float]
           ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    from pocketsphinx import Decoder

    decoder = Decoder(hmm=hmm, dict=dictionary, samprate=SAMPLE_RATE, loglevel="FATAL",
                      lm=None, mfclogdir=tmp, **beams)
    for w in set(words):
        if decoder.lookup_word(w) is None:
            if w not in extra:
                raise RuntimeError(f"no pronunciation for '{w}'")
            decoder.add_word(w, extra[w], True)
    decoder.set_align_text(" ".join(words))
    data = pcm.tobytes()
    decoder.start_utt()
    decoder.process_raw(data, full_utt=True)
    decoder.end_utt()
    decoder.set_alignment()  # RuntimeError when the first pass did not reach the end
    decoder.start_utt()
    decoder.process_raw(data, full_utt=True)
    decoder.end_utt()
    alignment = decoder.get_alignment()
    if alignment is None:
        raise RuntimeError("no alignment")
    frames: list[tuple[int, int, int]] = []  # (frame, codebook, senone)
    for word in alignment:
        for phone in word:
            if phone.name in NON_SPEECH or phone.name not in codebook:
                continue
            cb = codebook[phone.name]
            for state in phone:
                frames.extend((t, cb, int(state.name))
                              for t in range(state.start, state.start + state.duration))
    logs = sorted(Path(tmp).glob("*.mfc"))
    if not logs:
        raise RuntimeError("pocketsphinx wrote no cepstra")
    return _read_mfc(logs[-1]), frames


def dictionary_words(path: str | os.PathLike[str]) -> set[str]:
    """The words of a pocketsphinx pronunciation dictionary (alternates as written:
    "the(2)")."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return {line.split(maxsplit=1)[0] for line in fh if line.strip()}


def _chunks(n: int) -> list[slice]:
    """`n` frames in slices of `_CHUNK_FRAMES` (bounded memory whatever the page's length)."""
    return [slice(k, min(k + _CHUNK_FRAMES, n)) for k in range(0, n, _CHUNK_FRAMES)]


def _read_mfc(path: Path) -> np.ndarray:
    """pocketsphinx's cepstra log (`mfclogdir`): a count of values, then 13 per frame."""
    data = path.read_bytes()
    (n,) = struct.unpack(">i", data[:4])
    e = ">"
    if 4 + 4 * n != len(data):
        (n,) = struct.unpack("<i", data[:4])
        e = "<"
    if 4 + 4 * n != len(data) or n % 13:
        raise RuntimeError(f"{path.name}: not a cepstra log")
    return np.frombuffer(data, dtype=e + "f4", count=n, offset=4).astype(np.float64
                                                                         ).reshape(-1, 13)


def features(cepstra: np.ndarray) -> np.ndarray:
    """pocketsphinx's 1s_c_d_dd features of a page: (frames, 3, 13) cepstra (mean removed),
    deltas (t+2 - t-2) and double deltas, the edges padded with the first/last frame."""
    c = cepstra - cepstra.mean(axis=0)
    n = len(c)
    p = np.concatenate([np.repeat(c[:1], 3, axis=0), c, np.repeat(c[-1:], 3, axis=0)])
    i = np.arange(n) + 3
    d = p[i + 2] - p[i - 2]
    dd = (p[i + 3] - p[i - 1]) - (p[i + 1] - p[i - 3])
    return np.stack([c, d, dd], axis=1)
