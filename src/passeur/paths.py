"""Where the package's shared files (config/, launch/, urdf/, sim/) live.

Three setups, tried in this order:
- a source checkout (also `pip install -e .`): the checkout itself is the share directory, so
  edits take effect without reinstalling;
- an ament install (colcon, or anything on AMENT_PREFIX_PATH): the ament index;
- `pip install .` into a venv: setup.py's data_files land in `sys.prefix/share/passeur`, with
  the ament marker beside them, but nothing sets AMENT_PREFIX_PATH: that prefix is used
  directly, and `ensure_ament_prefix()` adds it to AMENT_PREFIX_PATH so that
  `ament_index_python.get_package_share_directory('passeur')` works too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from passeur.errors import ConfigError

PACKAGE = "passeur"
#: The ament index marker, relative to a prefix.
MARKER = ("share", "ament_index", "resource_index", "packages", PACKAGE)


def source_root() -> Path | None:
    """The repository root when this module runs from a source checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    if (root / "package.xml").is_file() and (root / "src" / PACKAGE).is_dir():
        return root
    return None


def installed_prefix(prefix: str | Path | None = None) -> Path | None:
    """`prefix` (default sys.prefix) if passeur's data files were installed there, else None."""
    base = Path(sys.prefix if prefix is None else prefix)
    if base.joinpath(*MARKER).is_file() and (base / "share" / PACKAGE / "package.xml").is_file():
        return base
    return None


def _ament_share_dir() -> Path | None:
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:  # a plain pip install without the ROS wheels: the prefix will do
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except PackageNotFoundError:
        return None
    except OSError:  # EnvironmentError: AMENT_PREFIX_PATH unset or empty
        return None


def share_dir() -> Path:
    """The directory holding config/, launch/, urdf/ and sim/."""
    root = source_root()
    if root is not None:
        return root
    found = _ament_share_dir()
    if found is not None:
        return found
    prefix = installed_prefix()
    if prefix is not None:
        return prefix / "share" / PACKAGE
    raise ConfigError(
        f"cannot find passeur's shared files (config/, sim/, urdf/): not a source checkout, "
        f"'{PACKAGE}' is not on AMENT_PREFIX_PATH and {Path(sys.prefix) / 'share' / PACKAGE} "
        "does not exist; reinstall with `pip install .` or source the ROS workspace")


def share_path(*parts: str) -> Path:
    return share_dir().joinpath(*parts)


def _prepend_ament_prefix(prefix: Path) -> None:
    current = os.environ.get("AMENT_PREFIX_PATH", "")
    entries = [p for p in current.split(os.pathsep) if p]
    if str(prefix) not in entries:
        os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), *entries])


def ensure_dev_prefix() -> Path | None:
    """Make `get_package_share_directory('passeur')` work from a source checkout.

    `pip install -e .` does not install data_files, so we keep a tiny ament prefix inside the
    checkout (`.ament_prefix/`) whose share/passeur links to the checkout, and put it on
    AMENT_PREFIX_PATH. Returns the prefix, or None when not running from source.
    """
    root = source_root()
    if root is None:
        return None
    prefix = root / ".ament_prefix"
    marker = prefix.joinpath(*MARKER)
    link = prefix / "share" / PACKAGE
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch(exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(root, target_is_directory=True)
    except OSError:
        return None  # read-only checkout: share_dir() still works through source_root()
    _prepend_ament_prefix(prefix)
    return prefix


def ensure_installed_prefix() -> Path | None:
    """After `pip install .`: put sys.prefix on AMENT_PREFIX_PATH (appended: an ament
    workspace the user sourced keeps precedence). Returns the prefix, or None."""
    prefix = installed_prefix()
    if prefix is None:
        return None
    current = os.environ.get("AMENT_PREFIX_PATH", "")
    entries = [p for p in current.split(os.pathsep) if p]
    if str(prefix) not in entries:
        os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join([*entries, str(prefix)])
    return prefix


def ensure_ament_prefix() -> Path | None:
    """Whatever the setup, make `get_package_share_directory('passeur')` work."""
    return ensure_dev_prefix() or ensure_installed_prefix()
