"""Navigation errors: each says what went wrong in words a user can act on."""

from __future__ import annotations

from passeur.errors import ConfigError, PasseurError


class NavigationError(PasseurError):
    """Base class for navigation failures."""


class PlanningError(NavigationError):
    """No path: `code` is machine-readable (goal_in_obstacle, goal_in_keep_out,
    goal_too_close, goal_outside_map, start_blocked, unreachable, no_map), the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class NavConfigError(ConfigError):
    """A places or patrols file is malformed (names the file and the problem)."""


class NavConfigFileNotFoundError(NavConfigError):
    """A places or patrols file does not exist (the only problem a default file may have)."""


class StackNotRunningError(NavigationError):
    """The CLI could not reach the running stack over ROS."""


class PatrolRefusedError(NavigationError):
    """A patrol start refused for a reason staff can act on: `code` for pages and programs
    (`estop`), the sentence in English and in French."""

    def __init__(self, code: str, english: str, french: str) -> None:
        self.code = code
        self.english = english
        self.french = french
        super().__init__(english)


def estop_refusal() -> PatrolRefusedError:
    return PatrolRefusedError(
        "estop", "the emergency stop is on: release the emergency stop first, then start "
        "the patrol", "l'arrêt d'urgence est enclenché : relâchez d'abord l'arrêt d'urgence, "
        "puis lancez la ronde")
