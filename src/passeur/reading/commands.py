"""`passeur read` (check a recording against a page) and `passeur readers` (progress)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from passeur.reading.adaptation import SpeakerAdapter, Transform
    from passeur.reading.alignment import AlignmentState, PageScore
    from passeur.reading.books import Library


def default_db_path() -> Path:
    base = os.environ.get("PASSEUR_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "passeur")
    return Path(base) / "reading.sqlite3"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected a number of seconds > 0, e.g. 2") from exc
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError("expected a number of seconds > 0, e.g. 2")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("read", help="check a recording of a page read aloud (offline)")
    p.add_argument("--book", required=True, help="book id (file name in config/books)")
    p.add_argument("--page", type=int, default=1, help="page number (from 1)")
    p.add_argument("--audio", required=True, type=Path, help="WAV file of the reading")
    p.add_argument("--reader", default=None, help="pseudonym: record the result in progress")
    p.add_argument("--lang", choices=["fr", "en"], default=None,
                   help="language of the output (default: the book's when French or "
                   "English, else the system's from LC_ALL/LANG, else English)")
    p.add_argument("--books-dir", type=Path, default=None, help="folder of books")
    p.add_argument("--asr", choices=["pocketsphinx", "vosk"], default=None,
                   help="speech recogniser (default: vosk with --vosk-model, else "
                   "pocketsphinx)")
    p.add_argument("--vosk-model", type=Path, default=None,
                   help="vosk model folder for the book's language (implies --asr vosk)")
    p.add_argument("--hesitation", type=_seconds, default=2.0,
                   help="pause (s) counted as hesitation")
    p.add_argument("--db", type=Path, default=None, help="progress database")
    p.add_argument("--no-adapt", action="store_true",
                   help="with --reader: decode with the model as shipped, and do not adapt it "
                   "to the reader with this recording (speaker adaptation, docs/reading.md)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_cmd_read)

    r = sub.add_parser("readers", help="reading progress per reader: report, export, delete")
    rs = r.add_subparsers(dest="readers_command", metavar="ACTION", required=True)
    for action, text in (("report", "write an HTML report with a progress chart"),
                         ("export", "print everything recorded for a reader (JSON)"),
                         ("delete", "delete a reader and all their data"),
                         ("list", "list the readers")):
        a = rs.add_parser(action, help=text)
        if action != "list":
            a.add_argument("name", help="the reader's pseudonym")
        a.add_argument("--db", type=Path, default=None, help="progress database")
        if action == "report":
            a.add_argument("--out", type=Path, default=None, help="HTML file to write")
            a.add_argument("--lang", choices=["fr", "en"], default=None,
                           help="language of the report (default: the reader's books' when "
                           "they are all in one, else the system's from LC_ALL/LANG, else "
                           "English)")
            a.add_argument("--books-dir", type=Path, default=None,
                           help="folder of books, for their titles (default: config/books)")
        if action == "export":
            a.add_argument("--out", type=Path, default=None, help="JSON file (default: stdout)")
        if action == "delete":
            a.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        a.set_defaults(func=_cmd_readers)


LABELS = {
    "en": {"correct": "correct", "substitution": "misread", "omission": "skipped",
           "self_correction": "self-corrected", "pending": "not reached",
           "hesitation": "hesitation", "insertion": "added", "repetition": "repeated",
           "heard": "heard", "forgiven": "not counted", "accuracy": "accuracy",
           "wcpm": "words correct per minute", "time": "reading time", "told": "told",
           "unclear": "unclear speech (an added word, a try or an 'um')"},
    "fr": {"correct": "juste", "substitution": "mal lu", "omission": "sauté",
           "self_correction": "corrigé seul", "pending": "pas atteint",
           "hesitation": "hésitation", "insertion": "ajouté", "repetition": "répété",
           "heard": "entendu", "forgiven": "non compté", "accuracy": "exactitude",
           "wcpm": "mots corrects par minute", "time": "temps de lecture", "told": "soufflé",
           "unclear": "parole indistincte (mot ajouté, essai ou « euh »)"},
}
#: `passeur read --reader`, when no word of the page was heard in the recording.
NOT_RECORDED = {
    "en": "passeur: nothing recorded for {reader}: no word of the page was heard in the "
          "recording (check that it is this page, read aloud)",
    "fr": "passeur : rien d'enregistré pour {reader} : aucun mot de la page n'a été entendu "
          "dans l'enregistrement (vérifiez que c'est bien cette page, lue à voix haute)",
}
#: What `passeur readers` says, in the system's language.
READERS_SAID = {
    "en": {"none": "no reader recorded yet", "exported": "exported {name} to {out}",
           "report": "report written: {out}",
           "refused": "passeur: refusing to delete without --yes (no terminal to ask)",
           "confirm": "Delete all reading data of '{name}'? [y/N] ",
           "deleted": "deleted reader {name} ({pages} pages)"},
    "fr": {"none": "aucun lecteur enregistré pour l'instant",
           "exported": "{name} exporté dans {out}", "report": "rapport écrit : {out}",
           "refused": "passeur : suppression refusée sans --yes (pas de terminal pour "
                      "demander)",
           "confirm": "Supprimer toutes les données de lecture de « {name} » ? [o/N] ",
           "deleted": "lecteur {name} supprimé ({pages} pages)"},
}
#: Why a miscue was not counted (WordResult.forgiven, alignment.py), as the librarian reads it.
FORGIVEN = {
    "en": {"function word": "short function word", "line end": "end of a line cut short",
           "audio ended": "the recording ended"},
    "fr": {"function word": "petit mot outil", "line end": "fin de ligne écourtée",
           "audio ended": "l'enregistrement s'est arrêté"},
}


def result_lines(heading: str, state: AlignmentState, score: PageScore, lang: str
                 ) -> list[str]:
    """`passeur read`'s report of one page read: each word with its time and outcome, the
    extra speech where it came, then WCPM and accuracy; in `lang` ("fr" or "en")."""
    t = LABELS[lang]
    extras_before: dict[int, list[str]] = {}
    for e in state.extras:
        extras_before.setdefault(e.before, []).append(
            f"  + {t[e.kind]}" if e.kind == "unclear" else f"  + {e.heard!r} ({t[e.kind]})")
    lines = [heading]
    for w in state.words:
        lines += extras_before.get(w.index, [])
        notes = [t[w.outcome]]
        if w.heard and w.outcome != "correct":
            notes.append(f"{t['heard']} {w.heard!r}")
        if w.hesitation:
            notes.append(f"{t['hesitation']} {w.pause_before_s:.1f} s")
        if w.forgiven:
            notes.append(f"{t['forgiven']}: {FORGIVEN[lang].get(w.forgiven, w.forgiven)}")
        when = f"{w.start_s:6.2f}s" if w.start_s is not None else "      -"
        lines.append(f"{when}  {w.expected:<16} {', '.join(notes)}")
    lines += extras_before.get(len(state.words), [])
    lines.append(f"{t['wcpm']}: {score.wcpm:.0f}   {t['accuracy']}: "
                 f"{100 * score.accuracy:.0f} % ({score.words_correct}/{score.words_total})"
                 f"   {t['time']}: {score.reading_time_s:.1f} s")
    return lines


def _library(books_dir: Path | None) -> Library:
    from passeur.reading.books import Library
    from passeur.reading.exceptions import BookError

    if books_dir is not None and not books_dir.is_dir():
        raise BookError("books folder not found; check --books-dir (a folder of .md or .txt "
                        "books)", books_dir)
    return Library(books_dir)


def _cmd_read(args: argparse.Namespace) -> int:
    from passeur.reading.asr import create_backend
    from passeur.reading.audio_in import read_wav
    from passeur.reading.exceptions import ReadingError
    from passeur.reading.progress_store import ProgressStore, check_reader_name, report_language
    from passeur.reading.session import read_pcm

    if args.vosk_model and args.asr == "pocketsphinx":
        # Said before the work, not left unused (a French book then failed naming the
        # reading node's pocketsphinx settings).
        raise ReadingError("--vosk-model is a vosk model: use it with --asr vosk (or leave "
                           "--asr out)")
    args.asr = args.asr or ("vosk" if args.vosk_model else "pocketsphinx")
    if args.reader:
        # Before the recognition: a name that cannot be recorded is refused first.
        check_reader_name(args.reader)
    book = _library(args.books_dir).get(args.book)
    page = book.page(args.page)
    pcm = read_wav(args.audio)
    if args.asr == "vosk":
        models = {book.lang: str(args.vosk_model)} if args.vosk_model else {}
        backend = create_backend("vosk", {"models": models})
    else:
        backend = create_backend("pocketsphinx")
    if not args.vosk_model and not backend.supports(book.lang):
        # The backends' own messages name the reading node's settings, which this command
        # does not read: say what to give here instead.
        from passeur.reading.asr_vosk import MODELS_URL
        from passeur.reading.exceptions import ASRUnavailable

        why = ("pocketsphinx has no model for it (it ships English only)"
               if args.asr == "pocketsphinx" else "no vosk model was given")
        raise ASRUnavailable(
            f"no speech model for '{book.lang}', the language of book '{book.id}': {why}. "
            f"Give a vosk model for '{book.lang}': --asr vosk --vosk-model DIR (models at "
            f"{MODELS_URL})")
    from passeur.reading.exceptions import AudioFormatError, ProgressStoreError

    adapter = backend.adapter(book.lang) if args.reader and not args.no_adapt else None
    transform = _stored_transform(args, adapter, book.lang) if adapter is not None else None
    try:
        result = read_pcm(page, pcm, backend, hesitation_s=args.hesitation,
                          adaptation=transform)
    except AudioFormatError as exc:
        raise AudioFormatError(f"{args.audio}: {exc}") from exc
    # A book in a language the output is not written in (Korean) reads in the system's.
    lang = args.lang or report_language([book.lang])
    s = result.score
    if args.json:
        print(json.dumps({
            "book": book.id, "page": args.page,
            # "word" is the form matched (lower case, numbers spelt out); "text" and "token"
            # are the page's own, as shown ("21" is one token, two words).
            "words": [{"word": w.expected, "text": page.tokens[w.token].text,
                       "token": w.token, "outcome": w.outcome, "heard": w.heard,
                       "hesitation": w.hesitation, "forgiven": w.forgiven,
                       "start_s": w.start_s, "end_s": w.end_s} for w in result.state.words],
            "extras": [{"kind": e.kind, "heard": e.heard, "before": e.before,
                        "start_s": e.start_s, "end_s": e.end_s}
                       for e in result.state.extras],
            "wcpm": round(s.wcpm, 1), "accuracy": round(s.accuracy, 3),
            "reading_time_s": round(s.reading_time_s, 2), "hard_words": s.hard_words},
            ensure_ascii=False))
    else:
        print("\n".join(result_lines(f"{book.title} - page {args.page}", result.state, s,
                                      lang)))
    heard = any(w.start_s is not None for w in result.state.words)
    if args.reader and not heard:
        # As on the reader page: a recording where no page word was heard (noise, another
        # page, another language) is no reading, and would put a 0 in the progress chart.
        print(NOT_RECORDED[lang].format(reader=args.reader), file=sys.stderr)
        return 1
    if args.reader:
        store = ProgressStore(args.db or default_db_path())
        try:
            # One transaction: a failed write leaves no half-recorded session behind.
            store.record_reading(args.reader, book.id, "offline", args.page, book.lang,
                                 result.state, s)
            if adapter is not None:
                from passeur.reading.adaptation import save_page

                # The reader's recording adapts the recogniser to them, as on the reader page
                # (statistics only; the recording itself is not kept). The reading is saved
                # already: a store refusing the statistics is said, not an error (which would
                # have the same reading recorded again).
                try:
                    save_page(store, adapter, args.reader, book.lang, pcm, result.heard)
                except ProgressStoreError as exc:
                    print(f"passeur: the reading was recorded; speaker adaptation not saved: "
                          f"{exc}", file=sys.stderr)
        finally:
            store.close()
    return 0


def _stored_transform(args: argparse.Namespace, adapter: SpeakerAdapter, lang: str
                      ) -> Transform | None:
    """The reader's transform, if the store has one; a store that cannot be read here is said
    on stderr and the page decoded with the model as shipped (saving then reports it)."""
    from passeur.reading.adaptation import stored_transform
    from passeur.reading.exceptions import ProgressStoreError
    from passeur.reading.progress_store import ProgressStore

    path = args.db or default_db_path()
    if not Path(path).exists():
        return None  # no progress yet (and none created for a recording that is not saved)
    try:
        store = ProgressStore(path)
    except ProgressStoreError as exc:
        print(f"passeur: speaker adaptation not used: {exc}", file=sys.stderr)
        return None
    try:
        return stored_transform(store, adapter, args.reader, lang)
    except (ProgressStoreError, ValueError) as exc:
        print(f"passeur: speaker adaptation not used: {exc}", file=sys.stderr)
        return None
    finally:
        store.close()


def _cmd_readers(args: argparse.Namespace) -> int:
    from passeur.reading.exceptions import BookError, ProgressStoreError
    from passeur.reading.progress_store import (
        ProgressStore,
        report_language,
        write_output,
        write_report,
    )

    said = READERS_SAID[report_language([])]  # the system's language (LC_ALL, LANG...)
    path = args.db or default_db_path()
    # Only recording progress (the reading node, `passeur read --reader`) creates the
    # database: a mistyped --db must not leave an empty one (and its folder) behind.
    if not path.exists():
        raise ProgressStoreError(
            f"{path}: the progress database does not exist (no reading recorded there); "
            f"check --db (default: {default_db_path()}, the reading node's progress_db)")
    # Reading commands open it read-only: a copy on read-only media (a locked USB stick, a
    # read-only mount) can be listed, reported and exported. Only delete writes.
    store = ProgressStore(path, read_only=args.readers_command != "delete")
    try:
        if args.readers_command == "list":
            names = store.readers()
            for name in names:
                print(name)
            if not names:
                print(said["none"], file=sys.stderr)  # stdout stays a plain list
        elif args.readers_command == "export":
            text = json.dumps(store.export(args.name), ensure_ascii=False, indent=2)
            if args.out:
                write_output(args.out, text, "export")
                print(said["exported"].format(name=args.name, out=args.out))
            else:
                print(text)
        elif args.readers_command == "report":
            out = args.out or Path(f"reading-report-{args.name}.html")
            try:
                titles = _library(args.books_dir).title
            except BookError:
                if args.books_dir is not None:
                    raise
                titles = None  # no books installed: the report names books by their ids
            write_report(store, args.name, out, args.lang, titles)
            print(said["report"].format(out=out))
        elif args.readers_command == "delete":
            store.reader_id(args.name, create=False)  # unknown reader: clear error first
            if not args.yes:
                if not sys.stdin.isatty():
                    print(said["refused"], file=sys.stderr)
                    return 2
                try:
                    answer = input(said["confirm"].format(name=args.name))
                except EOFError:  # Ctrl-D: no answer is no
                    print(file=sys.stderr)
                    return 1
                if answer.strip().lower() not in ("y", "yes", "o", "oui"):
                    return 1
            pages = store.delete(args.name)
            print(said["deleted"].format(name=args.name, pages=pages))
    finally:
        store.close()
    return 0
