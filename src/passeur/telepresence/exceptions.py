"""Errors of the telepresence area."""

from __future__ import annotations

from passeur.errors import ConfigError, PasseurError


class TelepresenceError(PasseurError):
    """Base class for telepresence errors."""


class TelepresenceConfigError(ConfigError):
    """A telepresence parameter is missing or malformed."""


class AccessDenied(TelepresenceError):
    """A password, code or session token was refused.

    `reason` is a short machine-readable word the pages translate (never the secret itself).
    """

    def __init__(self, reason: str, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


class MessageError(TelepresenceError):
    """A data-channel message was refused; `code` is a short machine-readable word."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ProjectionError(TelepresenceError):
    """A video pixel could not be projected onto the floor (above the horizon, too far...)."""
