"""`pip install .` lays out the ament index so `ros2 run` / `ros2 launch` find both packages.

The installed prefix is made by pip in a subprocess (the `cli` tier); `colcon build` is a `ros_process` test.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support import REPO


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project installed with pip into an empty prefix, as a user's `pip install .` would."""
    target = tmp_path_factory.mktemp("prefix")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--ignore-installed",  # leave the copy installed in this venv alone
            "--prefix",
            str(target),
            "--no-compile",
            str(REPO),
        ],
        check=True,
        cwd=build,
        env={**os.environ, "PIP_NO_WARN_SCRIPT_LOCATION": "1", "TMPDIR": str(build)},
    )
    return target


def site_packages(prefix: Path) -> Path:
    rel = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
    return prefix / rel


@pytest.mark.cli
@pytest.mark.parametrize("package", ["fast_scnn_ros", "fast_scnn_core"])
def test_ament_index_marker_exists(prefix: Path, package: str) -> None:
    assert (prefix / "share/ament_index/resource_index/packages" / package).is_file()


@pytest.mark.cli
def test_share_holds_package_xml_launch_and_config(prefix: Path) -> None:
    share = prefix / "share/fast_scnn_ros"
    assert (share / "package.xml").is_file()
    assert (prefix / "share/fast_scnn_core/package.xml").is_file()  # `ros2 pkg xml fast_scnn_core`
    assert sorted(p.name for p in (share / "launch").iterdir()) == sorted(
        p.name for p in (REPO / "launch").glob("*.launch.py")
    )
    assert sorted(p.name for p in (share / "config").iterdir()) == sorted(
        p.name for p in [*(REPO / "config").glob("*.yaml"), *(REPO / "config").glob("*.xml")]
    )


@pytest.mark.cli
@pytest.mark.parametrize(
    "executable",
    ["fast_scnn_ros/segmentation_node", "fast_scnn_ros/segmentation_lifecycle_node", "fast_scnn_core/train"],
)
def test_lib_executables_exist_and_are_executable(prefix: Path, executable: str) -> None:
    path = prefix / "lib" / executable
    assert path.is_file()
    assert os.access(path, os.X_OK)


@pytest.mark.cli
def test_console_script_installed(prefix: Path) -> None:
    assert os.access(prefix / "bin/fast-scnn", os.X_OK)


@pytest.mark.parametrize(
    ("manifest", "name"), [("package.xml", "fast_scnn_ros"), ("fast_scnn_core/package.xml", "fast_scnn_core")]
)
def test_package_manifests_are_valid_format_3_with_the_release_version(manifest: str, name: str) -> None:
    """What rosdep and `ros2 pkg xml` read: a valid package.xml per package, versioned as setup.py is."""
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg comes with colcon and the ROS CLI")
    package = catkin_pkg.parse_package(REPO / manifest)  # validates against REP 149
    assert package.name == name
    version = re.search(r'version="([^"]+)"', (REPO / "setup.py").read_text()).group(1)
    assert package.version == version and package.get_build_type() == "ament_python"


@pytest.mark.cli
def test_error_messages_name_the_installed_quick_start_config(prefix: Path, tmp_path: Path) -> None:
    """The no-checkpoint hint names <prefix>/share/fast_scnn_ros/config/train_synthetic.yaml, not the checkout's."""
    script = "from fast_scnn_core.config import quick_start_hint; print(quick_start_hint())"
    env = {**os.environ, "PYTHONPATH": str(site_packages(prefix))}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env)
    config = prefix / "share/fast_scnn_ros/config/train_synthetic.yaml"
    assert result.stdout.strip().endswith(f"`fast-scnn train --config {config}`"), result.stdout + result.stderr


@pytest.mark.cli
def test_installed_train_executable_is_fast_scnn_train(prefix: Path, tmp_path: Path) -> None:
    """`ros2 run fast_scnn_core train --help` runs the installed code, outside the source tree."""
    env = {
        **os.environ,
        "PYTHONPATH": str(site_packages(prefix)),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        [str(prefix / "lib/fast_scnn_core/train"), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "usage: fast-scnn train" in result.stdout


@pytest.mark.ros_process
def test_colcon_build_lays_out_the_same_ament_index(tmp_path: Path) -> None:
    """`colcon build` in a ROS 2 workspace installs the same share/ and lib/<pkg>/ layout as pip."""
    colcon = shutil.which("colcon", path=str(Path(sys.executable).parent)) or shutil.which("colcon")
    if colcon is None:
        pytest.skip("colcon is not installed (pip install colcon-common-extensions)")
    src = tmp_path / "src/fast_scnn_ros"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "*.egg-info"))
    subprocess.run(
        [colcon, "build", "--event-handlers", "console_direct-"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    installed = tmp_path / "install/fast_scnn_ros"
    for package in ("fast_scnn_ros", "fast_scnn_core"):
        assert (installed / "share/ament_index/resource_index/packages" / package).is_file()
    assert (installed / "share/fast_scnn_ros/package.xml").is_file()
    assert (installed / "share/fast_scnn_ros/launch/segment.launch.py").is_file()
    assert (installed / "share/fast_scnn_core/package.xml").is_file()
    for executable in ("fast_scnn_ros/segmentation_node", "fast_scnn_core/train"):
        assert os.access(installed / "lib" / executable, os.X_OK)
    # bin/ is what install/setup.bash puts on PATH (lib/<pkg>/ is only for `ros2 run`)
    assert os.access(installed / "bin/fast-scnn", os.X_OK)


@pytest.mark.cli
def test_ament_index_resolves_packages_like_ros2_run(prefix: Path) -> None:
    """`ros2 run PKG EXE` = get_package_prefix(PKG) / lib / PKG / EXE; `ros2 launch` uses the share dir."""
    pytest.importorskip("ament_index_python.packages")
    script = (
        "import sys, ament_index_python.packages as a;"
        "print(a.get_package_prefix('fast_scnn_core'));"
        "print(a.get_package_prefix('fast_scnn_ros'));"
        "print(a.get_package_share_directory('fast_scnn_ros'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AMENT_PREFIX_PATH": str(prefix)},
    )
    core_prefix, ros_prefix, share = result.stdout.split()
    assert Path(core_prefix) == prefix and Path(ros_prefix) == prefix
    assert (Path(share) / "launch/segment.launch.py").is_file()
    assert os.access(Path(core_prefix) / "lib/fast_scnn_core/train", os.X_OK)
    assert os.access(Path(ros_prefix) / "lib/fast_scnn_ros/segmentation_node", os.X_OK)
