"""Where the package's shared files (config/, launch/, urdf/, sim/) live.

Running from a source checkout, the checkout itself is the share directory, so edits take
effect without reinstalling. Installed (colcon or `pip install .`), the ament index is used.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = "passeur"


def source_root() -> Path | None:
    """The repository root when this module runs from a source checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    if (root / "package.xml").is_file() and (root / "src" / PACKAGE).is_dir():
        return root
    return None


def share_dir() -> Path:
    """The directory holding config/, launch/, urdf/ and sim/."""
    root = source_root()
    if root is not None:
        return root
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE))


def share_path(*parts: str) -> Path:
    return share_dir().joinpath(*parts)


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
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    link = prefix / "share" / PACKAGE
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch(exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(root, target_is_directory=True)
    except OSError:
        return None  # read-only checkout: share_dir() still works through source_root()
    current = os.environ.get("AMENT_PREFIX_PATH", "")
    entries = [p for p in current.split(os.pathsep) if p]
    if str(prefix) not in entries:
        os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), *entries])
    return prefix
