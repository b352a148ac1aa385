"""Where the reading benchmark's misses and false alarms come from, page by page.

    .venv/bin/python benchmarks/reading_inspect.py [--pages 40] [--seed 1] [--cache DIR]
                                                   [--only-errors] [--settings JSON]
                                                   [--voices VOICE:RATE,...]

Generates the same pages as benchmarks/reading.py (same seed, same voices), decodes them once
and prints per page: the page words (with the injected miscue), what was said (true timings),
what the recogniser heard (timings), and each outcome against the truth. With `--cache DIR`
the decoded hypotheses and voice-activity flags are kept, so a change to the aligner alone
re-scores in seconds (`--realign`): the final alignment depends only on the final
hypothesis. A diagnostic tool: the truth it prints is the benchmark's, never the aligner's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from benchmarks.reading import (
    AUDIO_VERSION,
    KINDS,
    VOICES,
    Readers,
    detected,
    false_alarms,
    make_case,
    parse_voices,
    synthesize,
)

from passeur.reading.adaptation import Transform
from passeur.reading.alignment import Aligner
from passeur.reading.asr import ASRBackend, Hypothesis, RecognizedWord, create_backend
from passeur.reading.audio_in import frames
from passeur.reading.session import ReadingSession
from passeur.reading.text import tokenize
from passeur.reading.tts import Synthesizer


def decode(page_text: str, pcm: np.ndarray, backend: ASRBackend,
           adaptation: Transform | None = None
           ) -> tuple[list[RecognizedWord], list[bool], list[float], float]:
    page = tokenize(page_text, "en")
    rec = backend.recognizer("en", [w.lex for w in page.words], page.text,
                             adaptation=adaptation)
    session = ReadingSession(page, rec)
    for frame in frames(pcm):
        session.feed(frame)
    hyp = rec.finish()
    words = list(hyp.words)
    audio_s = session.audio_s
    speech = list(session.speech)
    levels = list(session.levels)
    rec.close()
    return words, speech, levels, audio_s


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pages", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cache", default="")
    p.add_argument("--realign", action="store_true", help="use cached hypotheses")
    p.add_argument("--only-errors", action="store_true")
    p.add_argument("--quiet", action="store_true", help="totals only")
    p.add_argument("--settings", default="")
    p.add_argument("--voices", default="", help="as benchmarks/reading.py --voices")
    p.add_argument("--no-adapt", action="store_true", help="as benchmarks/reading.py")
    args = p.parse_args()
    voices = parse_voices(args.voices) if args.voices else VOICES
    rng = random.Random(args.seed)
    cache = Path(args.cache) if args.cache else None
    tts = Synthesizer()
    settings = json.loads(args.settings) if args.settings else {}
    backend = None if args.realign else create_backend("pocketsphinx", settings)
    # Decodes are cached per set (seed, voice, rate), recogniser settings and benchmark audio
    # version: --realign never reuses another set's.
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    key = f"a{AUDIO_VERSION}-c2-{key}"  # c2: frame levels cached too
    if not args.no_adapt:
        key += "-adapted"  # each voice adapted from its earlier pages, as the benchmark does
    readers: Readers | None = None
    hits = {k: [0, 0] for k in KINDS}
    n_alarms = n_correct = 0
    for n in range(args.pages):
        case = make_case(rng, 2)
        voice, rate = voices[n % len(voices)]
        f = cache / f"s{args.seed}-{voice}-{rate}-{key}-p{n}.pkl" if cache else None
        if args.realign and f is not None and f.exists():
            spans, words, speech, levels, audio_s = pickle.loads(f.read_bytes())
        else:
            pcm, spans = synthesize(case, tts, rate, voice)
            if backend is None:  # --realign without a cached decode of this page
                backend = create_backend("pocketsphinx", settings)
            if readers is None:
                readers = Readers(None if args.no_adapt else backend.adapter("en"))
            if readers.adapter is not None and (voice, rate) not in readers.stats \
                    and n >= len(voices):
                # A cached set decoded in part: the reader's earlier pages, again.
                raise SystemExit("--realign with adaptation needs every page cached (or "
                                 "none): delete the cache or give --no-adapt")
            words, speech, levels, audio_s = decode(case.text, pcm, backend,
                                                    readers.transform((voice, rate)))
            readers.add((voice, rate), pcm, [w.text for w in words])
            if f is not None:
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_bytes(pickle.dumps((spans, words, speech, levels, audio_s)))
        page = tokenize(case.text, "en")
        state = Aligner(page).update(Hypothesis(words, audio_s), finished=True, speech=speech,
                                     frame_s=0.02, levels=levels)
        alarms, correct = false_alarms(case, state, spans)
        n_alarms += len(alarms)
        n_correct += correct
        missed = []
        for i, kind in case.truth.items():
            ok = detected(kind, i, state)
            hits[kind][0] += int(ok)
            hits[kind][1] += 1
            if not ok:
                missed.append((i, kind))
        if args.quiet or (args.only_errors and not missed and not alarms):
            continue
        print(f"=== page {n} voice {voice} rate {rate}")
        print("  page:  " + " ".join(
            f"{i}:{w.lex}" + (f"[{case.truth[i].upper()}]" if i in case.truth else "")
            for i, w in enumerate(page.words)))
        print("  said:  " + " ".join(
            f"{w}@{s[0]:.2f}-{s[1]:.2f}" if s else w for w, s in zip(case.spoken, spans,
                                                                     strict=True)))
        print("  heard: " + " ".join(f"{w.text}@{w.start_s:.2f}-{w.end_s:.2f}" for w in words))
        print("  outcome: " + " ".join(
            f"{w.index}:{w.outcome}" + ("+H" if w.hesitation else "")
            + (f"({w.forgiven})" if w.forgiven else "") + (f"<{w.heard}>" if w.heard and
                                                             w.heard != w.expected else "")
            for w in state.words if w.outcome != "correct" or w.hesitation))
        print("  extras: " + " ".join(f"{e.kind}:{e.heard}@{e.start_s:.2f}-{e.end_s:.2f}"
                                      f"<{e.before}" for e in state.extras))
        for i, kind in missed:
            w = state.words[i]
            print(f"  MISSED {kind} at {i} '{w.expected}': outcome {w.outcome} heard "
                  f"{w.heard!r} attempts {w.attempts} hes {w.hesitation} "
                  f"pause {w.pause_before_s}")
        for a in alarms:
            print(f"  FALSE ALARM {a}")
    total = sum(c for _, c in hits.values())
    print("per kind: " + ", ".join(f"{k} {h}/{c}" for k, (h, c) in hits.items()))
    print(f"detection {sum(h for h, _ in hits.values()) / total:.3f}, false alarms "
          f"{n_alarms}/{n_correct} = {n_alarms / n_correct:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
