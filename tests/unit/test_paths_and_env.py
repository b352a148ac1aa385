"""Finding the shared files (config/, sim/, urdf/) in each setup: source checkout, ament
install, and `pip install .` into a venv (data files in sys.prefix/share/passeur, no
AMENT_PREFIX_PATH)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from passeur import paths
from passeur.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def fake_install(prefix: Path) -> None:
    """Lay setup.py's data_files out under `prefix`, as `pip install .` does."""
    spec = importlib.util.spec_from_file_location("passeur_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    import setuptools

    real_setup = setuptools.setup
    setuptools.setup = lambda **_kwargs: None  # type: ignore[assignment]
    try:
        spec.loader.exec_module(module)
    finally:
        setuptools.setup = real_setup  # type: ignore[assignment]
    for target, files in module.share_files():
        folder = prefix / target
        folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copy2(ROOT / name, folder / Path(name).name)


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed layout in tmp_path, seen as sys.prefix, outside any checkout."""
    fake_install(tmp_path)
    monkeypatch.setattr(paths, "source_root", lambda: None)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    return tmp_path


def test_pip_installed_share_dir_without_ament_prefix_path(installed: Path) -> None:
    share = installed / "share" / "passeur"
    assert paths.installed_prefix() == installed
    assert paths.share_dir() == share
    for part in (("config", "passeur.yaml"), ("config", "fastdds_profile.xml"),
                 ("urdf", "passeur.urdf.xacro"), ("sim", "worlds", "library.sdf"),
                 ("sim", "maps", "library.yaml"), ("launch", "gazebo.launch.py"),
                 ("package.xml",)):
        assert paths.share_path(*part).is_file(), part


def test_pip_installed_get_package_share_directory(installed: Path) -> None:
    from ament_index_python.packages import get_package_share_directory

    assert paths.ensure_ament_prefix() == installed
    assert os.environ["AMENT_PREFIX_PATH"] == str(installed)
    assert Path(get_package_share_directory("passeur")) == installed / "share" / "passeur"
    paths.ensure_ament_prefix()  # idempotent
    assert os.environ["AMENT_PREFIX_PATH"] == str(installed)


def test_a_sourced_workspace_keeps_precedence(installed: Path, tmp_path_factory:
                                              pytest.TempPathFactory,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    workspace = tmp_path_factory.mktemp("ws")
    fake_install(workspace)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(workspace))
    paths.ensure_ament_prefix()
    assert os.environ["AMENT_PREFIX_PATH"] == os.pathsep.join([str(workspace), str(installed)])
    assert paths.share_dir() == workspace / "share" / "passeur"


def test_nothing_installed_is_a_clear_error(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "source_root", lambda: None)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert paths.ensure_ament_prefix() is None
    with pytest.raises(ConfigError, match="pip install"):
        paths.share_dir()


def test_installed_package_finds_its_files_in_a_fresh_venv(tmp_path: Path) -> None:
    """The real thing, short of pip: a new venv holding the package and its data files
    where `pip install .` puts them, run by its own interpreter, AMENT_PREFIX_PATH unset."""
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60, env={k: v for k, v in os.environ.items()
                                    if k not in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE",
                                                 "LD_LIBRARY_PATH")})
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    shutil.copytree(ROOT / "src" / "passeur", Path(site) / "passeur",
                    ignore=shutil.ignore_patterns("__pycache__"))
    fake_install(venv)
    ament = importlib.util.find_spec("ament_index_python")
    assert ament is not None and ament.submodule_search_locations
    ament_site = str(Path(next(iter(ament.submodule_search_locations))).parent)
    code = (
        "import sys\n"
        f"sys.path.append({ament_site!r})  # ament_index_python only (no .pth side effects)\n"
        "from passeur.paths import share_path, source_root\n"
        "from passeur.rosenv import configure_environment\n"
        "assert source_root() is None\n"
        "configure_environment()\n"
        "from ament_index_python.packages import get_package_share_directory\n"
        "print(get_package_share_directory('passeur'))\n"
        "print(share_path('config', 'passeur.yaml'))\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE",
                        "LD_LIBRARY_PATH", "FASTDDS_DEFAULT_PROFILES_FILE")}
    result = subprocess.run([str(python), "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    share, config = result.stdout.split()
    assert Path(share) == venv / "share" / "passeur"
    assert Path(config) == venv / "share" / "passeur" / "config" / "passeur.yaml"


class _Stop(Exception):
    pass


@pytest.mark.parametrize("profile, local", [("sim", True), ("external", False)])
def test_only_the_simulated_robot_is_kept_on_loopback(profile: str, local: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from passeur import bringup, rosenv

    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        monkeypatch.delenv(name, raising=False)
    rosenv.configure_environment(local_only=local)
    assert ("ROS_AUTOMATIC_DISCOVERY_RANGE" in os.environ) is local
    assert ("FASTDDS_DEFAULT_PROFILES_FILE" in os.environ) is local
    if local:
        assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    # what `passeur sim` / `passeur robot` ask for
    seen: list[bool] = []

    def spy(log_dir: Path | None = None, *, local_only: bool = True) -> None:
        seen.append(local_only)
        raise _Stop

    monkeypatch.setattr(rosenv, "configure_environment", spy)
    with pytest.raises(_Stop):
        bringup.run_stack(bringup.StackOptions(profile=profile), announce=False)
    assert seen == [local]


def test_user_choices_win_on_a_robot_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from passeur import rosenv

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/robot_dds.xml")
    for local in (True, False):
        rosenv.configure_environment(local_only=local)
        assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"
        assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/robot_dds.xml"


@pytest.mark.parametrize("name, value", [("ROS_STATIC_PEERS", "192.168.1.20"),
                                         ("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET"),
                                         ("ROS_AUTOMATIC_DISCOVERY_RANGE", "system_default")])
def test_a_network_choice_reaches_other_machines_from_the_local_commands(
        name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ROS_STATIC_PEERS=robot passeur patrol status` from an engineer's laptop never reached
    the robot: the loopback-only Fast DDS profile (UDP whitelisted to 127.0.0.1) was applied
    whatever the user exported."""
    from passeur import rosenv

    for var in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS",
                "FASTDDS_DEFAULT_PROFILES_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(name, value)
    rosenv.configure_environment()  # what `passeur patrol` and `passeur sim` ask for
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ
    assert os.environ[name] == value
    if name == "ROS_STATIC_PEERS":  # LOCALHOST + static peers: this machine and the robot
        assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    # Nothing exported: the local demo stays on this machine.
    monkeypatch.delenv(name)
    monkeypatch.delenv("ROS_AUTOMATIC_DISCOVERY_RANGE", raising=False)
    rosenv.configure_environment()
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in os.environ


def test_the_patrol_cli_says_how_to_reach_another_machine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from passeur.navigation.commands import _StackLink

    link = _StackLink.__new__(_StackLink)  # only the message: no ROS
    link.timeout_s = 1.0
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    assert "ROS_STATIC_PEERS=<its address>" in str(link._not_running())
    monkeypatch.setenv("ROS_STATIC_PEERS", "robot.local")
    assert "ROS_STATIC_PEERS" not in str(link._not_running())


def test_llvmpipe_gets_a_rasterizer_thread_per_core_but_the_physics_one() -> None:
    from passeur.rosenv import llvmpipe_threads

    assert [llvmpipe_threads(n) for n in (1, 2, 4, 16)] == [1, 1, 3, 15]


def test_the_rasterizer_thread_count_is_a_default_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from passeur.rosenv import configure_environment, llvmpipe_threads, usable_cores

    monkeypatch.setenv("LP_NUM_THREADS", "7")
    configure_environment()
    assert os.environ["LP_NUM_THREADS"] == "7"
    monkeypatch.delenv("LP_NUM_THREADS")
    configure_environment()
    assert os.environ["LP_NUM_THREADS"] == str(llvmpipe_threads(usable_cores()))
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


@pytest.mark.parametrize("domain", ["abc", "999", "-1", "1.5"])
def test_an_unusable_ros_domain_id_is_one_clear_line(domain: str) -> None:
    """ROS_DOMAIN_ID=abc was an rclpy traceback; 999 ended the process with exit code 1 and
    Fast DDS's 'Calculated port number is too high'."""
    env = dict(os.environ, ROS_DOMAIN_ID=domain, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run([sys.executable, "-m", "passeur.cli", "sim", "--nodes", "safety"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"passeur: error: ROS_DOMAIN_ID={domain!r} is not a ROS domain: export a whole number "
        "from 0 to 232 (0-101 on Linux), the same for every program of the robot, or unset it "
        "(domain 0)")
