"""ament_python package `passeur` (also installable with plain pip)."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "passeur"
HERE = Path(__file__).resolve().parent
# Folders installed into share/passeur so that get_package_share_directory works.
SHARE_DIRS = ("launch", "config", "urdf", "sim")


def share_files() -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
    ]
    for top in SHARE_DIRS:
        for folder in sorted(p for p in (HERE / top).rglob("*") if p.is_dir()) + [HERE / top]:
            files = sorted(str(f.relative_to(HERE)) for f in folder.iterdir() if f.is_file())
            if files:
                out.append((f"share/{PACKAGE}/{folder.relative_to(HERE)}", files))
    return out


setup(
    name=PACKAGE,
    version="0.1.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    package_data={"passeur.web": ["**/*"]},
    include_package_data=True,
    data_files=share_files(),
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="Passeur developers",
    maintainer_email="passeur@example.org",
    description="ROS 2 stack for libraries and museums",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "passeur = passeur.cli:main",
            # One executable per node, for launch files (see bringup.py).
            "passeur_stack = passeur.bringup:main",
        ],
    },
)
