"""Books: UTF-8 Markdown-ish files with a front-matter and page breaks.

    ---
    title: The Little Red Boat
    language: en          # fr or en
    level: 1              # 1 (first reader) .. 5
    author: Passeur       # optional
    ---
    Tom has a small red boat.
    He sails it on the pond.
    ---page---
    One day the wind blows hard.

Pages are separated by a line holding only `---page---`. Inside a page, line breaks are kept
(they are shown as lines; the last word of a line gets the tutor's line-end forgiveness).
In `.md` files, `**bold**`/`_italic_` markers are stripped; a line starting with `#` is a page
heading, shown and read like any other line. Plain `.txt` files use the same front-matter and
page breaks, and their text is shown exactly as written. The book id is the file name without
its extension (`.md` first when both exist).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from passeur.paths import share_path
from passeur.reading.exceptions import BookError
from passeur.reading.text import TEXT_LANGUAGES, Page, tokenize

log = logging.getLogger(__name__)

PAGE_BREAK = re.compile(r"^\s*---\s*page\s*---\s*$", re.MULTILINE | re.IGNORECASE)
_FRONT = re.compile(r"\A\ufeff?---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_MARKUP = re.compile(r"(\*\*|__|\*|_(?=\w)|(?<=\w)_)")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass
class Book:
    id: str
    title: str
    lang: str
    level: int
    pages: list[str]
    author: str = ""
    path: Path | None = None
    _tokenized: dict[int, Page] = field(default_factory=dict, repr=False)

    def page(self, number: int) -> Page:
        """Page `number` (1-based), tokenised."""
        if not 1 <= number <= len(self.pages):
            raise BookError(f"book '{self.id}' has pages 1-{len(self.pages)}, not {number}",
                            self.path)
        if number not in self._tokenized:
            self._tokenized[number] = tokenize(self.pages[number - 1], self.lang)
        return self._tokenized[number]

    def summary(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "lang": self.lang, "level": self.level,
                "author": self.author, "pages": len(self.pages)}


BOOK_SUFFIXES = (".md", ".txt")


def parse_book(text: str, book_id: str, path: Path | None = None, *,
               markdown: bool = True) -> Book:
    match = _FRONT.match(text)
    if match is None:
        raise BookError("missing front-matter: start the file with '---', then "
                        "'title:', 'language:' (fr/en), 'level:', then '---'", path)
    front = match.group(1)
    plain = _plain_fields(front)
    try:
        meta = yaml.safe_load(front) or {}
    except yaml.YAMLError as exc:
        # 'title: Le lion et le rat : une fable' (French typography) is no YAML: plain
        # 'key: value' lines are read as written.
        if plain is None:
            raise BookError(f"front-matter is not valid YAML ({exc})", path) from exc
        meta = dict(plain)
    if not isinstance(meta, dict):
        raise BookError("front-matter must be 'key: value' lines", path)
    plain = plain or {}
    for key in ("title", "author"):
        # YAML reads 'title: #1 Best' as nothing, 'title: Yes' as True, 'title: [Sam]' as
        # a list: a title is the text written.
        if key in meta and not isinstance(meta[key], str) and key in plain:
            meta[key] = plain[key]
    title = str(meta.get("title", "")).strip()
    if not title:
        raise BookError("front-matter has no 'title'", path)
    lang = str(meta.get("language", meta.get("lang", ""))).strip().lower()
    if lang not in TEXT_LANGUAGES:
        raise BookError(f"'language' must be one of {', '.join(TEXT_LANGUAGES)}, not '{lang}'",
                        path)
    try:
        level = int(meta.get("level", 1))
    except (TypeError, ValueError) as exc:
        raise BookError(f"'level' must be a whole number, not '{meta.get('level')}'", path) from exc
    body = text[match.end():]
    pages = []
    for raw in PAGE_BREAK.split(body):
        lines = [line.strip() for line in raw.strip().splitlines()]
        if markdown:
            lines = [_MARKUP.sub("", line).lstrip("#").strip() for line in lines]
        page = "\n".join(line for line in lines if line)
        if page:
            pages.append(page)
    if not pages:
        raise BookError("the book has no page text after the front-matter", path)
    for i, page in enumerate(pages, 1):
        if not tokenize(page, lang).words:
            raise BookError(f"page {i} has no words", path)
    return Book(id=book_id, title=title, lang=lang, level=level, pages=pages,
                author=str(meta.get("author", "")), path=path)


_FIELD = re.compile(r"^([A-Za-z_]\w*)[ \t]*:[ \t]*(.*?)[ \t]*$")
_COMMENT = re.compile(r"[ \t]+#.*$")


def _plain_fields(front: str) -> dict[str, str] | None:
    """The front-matter read as plain `key: value` lines (value as written, less a trailing
    `  # comment` and enclosing quotes); None if a line is something else."""
    fields: dict[str, str] = {}
    for line in front.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _FIELD.match(line)
        if m is None:
            return None
        value = _COMMENT.sub("", m.group(2))
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        fields[m.group(1)] = value
    return fields


def load_book(path: Path) -> Book:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise BookError("book file not found", path) from exc
    except UnicodeDecodeError as exc:
        raise BookError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path) from exc
    except OSError as exc:  # no permission: the other books stay listed (Library.books)
        raise BookError(f"cannot read the book file ({exc.strerror})", path) from exc
    return parse_book(text, path.stem, path, markdown=path.suffix.lower() != ".txt")


def default_books_dir() -> Path:
    return share_path("config", "books")


class Library:
    """The books of one folder (config/books by default), loaded lazily by id."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_books_dir()
        if not self.folder.is_dir():
            raise BookError("books folder not found; set the reading node's 'books_dir' "
                            "parameter to a folder of .md or .txt books", self.folder)
        #: book id -> ((file name, mtime_ns, size), book): reloaded when the file changes
        self._cache: dict[str, tuple[tuple[str, int, int], Book]] = {}
        self._left_out: set[str] = set()  # book files already reported as left out

    def ids(self) -> list[str]:
        return sorted({p.stem for p in self.folder.iterdir()
                       if p.suffix.lower() in BOOK_SUFFIXES and p.is_file()})

    def get(self, book_id: str) -> Book:
        if not _ID.match(book_id or ""):
            raise BookError(f"'{book_id}' is not a book id: a book's id is its file name "
                            "without the extension, in lower-case letters a-z without "
                            "accents, digits, '-' and '_' (rename the file, e.g. "
                            "'la-lune-de-lea.md')", self.folder)
        # The extension in any case ('story.MD', as some editors save it), as ids() lists
        # it; .md first. Looked up each time: a book the librarian edited, replaced or
        # removed is served as it now is, without restarting the robot.
        try:
            found = [self.folder / f"{book_id}{suffix}" for suffix in BOOK_SUFFIXES
                     if (self.folder / f"{book_id}{suffix}").is_file()]
            if not found:  # the folder is only listed for an odd case
                found = [p for _, _, p in sorted(
                    (BOOK_SUFFIXES.index(p.suffix.lower()), p.name, p)
                    for p in self.folder.iterdir()
                    if p.stem == book_id and p.suffix.lower() in BOOK_SUFFIXES
                    and p.is_file())]
            info = found[0].stat() if found else None
        except OSError as exc:  # the folder was removed or unmounted since
            raise BookError(f"cannot read the books folder ({exc.strerror})",
                            self.folder) from exc
        if info is None:
            self._cache.pop(book_id, None)
            known = ", ".join(self.ids()) or "none"
            raise BookError(f"unknown book '{book_id}' (known: {known})", self.folder)
        path = found[0]
        stamp = (path.name, info.st_mtime_ns, info.st_size)
        cached = self._cache.get(book_id)
        if cached is None or cached[0] != stamp:
            self._cache[book_id] = (stamp, load_book(path))
        return self._cache[book_id][1]

    def title(self, book_id: str) -> str:
        """The book's title, or its id when the book was removed or cannot be read (a report
        on past readings still names it)."""
        try:
            return self.get(book_id).title
        except BookError:
            return book_id

    def books(self) -> list[Book]:
        out = []
        for book_id in self.ids():
            try:
                out.append(self.get(book_id))
            except BookError as exc:
                # A broken file must not hide the others, nor vanish without a word: the
                # librarian who added it is told once why the page does not list it.
                if book_id not in self._left_out:
                    self._left_out.add(book_id)
                    log.warning("book '%s' is not listed for readers: %s", book_id, exc)
                continue
        return out
