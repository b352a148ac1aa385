"""Errors of the reading companion. All are PasseurError subclasses: the CLI prints them as
one line (no traceback) and the reader page shows their message."""

from __future__ import annotations

from passeur.errors import ConfigError, PasseurError


class ReadingError(PasseurError):
    """Base class for reading-companion errors."""


class BookError(ConfigError):
    """A book file is missing, unknown or malformed (the message names the file)."""


class ASRUnavailable(ReadingError):
    """No speech-recognition model for the requested backend/language (says how to get one)."""


class AudioFormatError(ReadingError):
    """Audio input that cannot be used (wrong sample rate, not a WAV file, empty...)."""


class TTSError(ReadingError):
    """Speech synthesis failed (voice missing, engine not installed)."""


class ProgressStoreError(ReadingError):
    """The progress database is unusable (corrupt, locked, unknown reader)."""
