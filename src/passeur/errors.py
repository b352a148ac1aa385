"""Base exceptions shared by every area. Each area subclasses these in its own module."""

from __future__ import annotations

from pathlib import Path


class PasseurError(Exception):
    """Base class: the CLI prints these as one clear line, without a traceback."""


class ConfigError(PasseurError):
    """A configuration, world, map or data file is missing or malformed.

    The message always names the file (when there is one) and says what to fix.
    """

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
