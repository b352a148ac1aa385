"""Errors of the safety layer."""

from __future__ import annotations

from passeur.errors import ConfigError


class SafetyConfigError(ConfigError):
    """A safety parameter is out of range or inconsistent; the message says what to fix."""
