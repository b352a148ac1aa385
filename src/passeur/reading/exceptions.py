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


class ASRSettingsError(ReadingError, ValueError):
    """A recogniser setting the backend does not have, or a value it refuses."""


class AudioFormatError(ReadingError):
    """Audio input that cannot be used (wrong sample rate, not a WAV file, empty...)."""


class TTSError(ReadingError):
    """Speech synthesis failed (voice missing, engine not installed)."""


class ProgressStoreError(ReadingError):
    """The progress database cannot be used (the subclasses say why), or an unknown reader."""


class ProgressStoreCorrupt(ProgressStoreError):
    """Not an SQLite database, or damaged: the file is left untouched."""


class ProgressStoreBusy(ProgressStoreError):
    """Another program holds a lock on the database for longer than the busy timeout."""


class ProgressStoreReadOnly(ProgressStoreError):
    """The database (or its folder, or the disk) cannot be written."""


class ProgressStoreFull(ProgressStoreError):
    """The disk (or a size limit) is full."""


class ProgressStoreUnavailable(ProgressStoreError):
    """The file cannot be opened or read (missing folder, permissions, I/O error)."""


class RecordingNotSaved(ProgressStoreError):
    """With store_audio, a page's scores were saved but its recording could not be written
    (saving again would record the page twice)."""


class ProgressStoreClosed(ProgressStoreError):
    """The store was closed (the node is shutting down)."""


class ReaderNameError(ReadingError):
    """A reader pseudonym that is not acceptable (the message says what is)."""


class UnknownSession(ReadingError):
    """No live reading session with that id (expired, finished or never created)."""


class SessionsFull(ReadingError):
    """As many children are reading with the robot as it listens to (max_sessions), all of
    them recently heard: a new session would end one of them."""


class SpeakerBusy(ReadingError):
    """The robot's speaker already has as many page readings as it queues."""


class UnknownAudio(ReadingError):
    """No robot speech audio with that key (expired from the bounded cache)."""


class RecordingTooLong(AudioFormatError):
    """An uploaded recording is longer (or larger) than a session accepts."""


class AdaptationUnavailable(ReadingError):
    """The acoustic model cannot be adapted to a reader here (not the tied layout it reads,
    files missing or unreadable): readers are decoded with the model as shipped."""
