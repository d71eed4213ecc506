"""The layout rule of DESIGN.md: ``platform/`` must never shadow the standard library."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_platform_folder_has_no_init() -> None:
    assert (REPO / "platform").is_dir()
    assert not (REPO / "platform" / "__init__.py").exists()


def test_import_platform_gives_the_standard_library() -> None:
    import platform

    assert Path(platform.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    assert platform.python_version()


def test_python_m_pytest_from_the_repo_root_collects(tmp_path: Path) -> None:
    """``python -m pytest`` puts the repo root first on sys.path; uuid/redis/flask import
    ``platform`` and must still get the standard library's."""
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        "import platform, sysconfig, uuid, flask, redis, rq, docker\n"
        "def test_probe():\n"
        "    assert platform.__file__.startswith(sysconfig.get_paths()['stdlib'])\n"
        "    import brokerage.platform.app\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def _contract(contract_id: str) -> dict:
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == contract_id)


def test_the_platform_layer_contract_names_every_child_of_platform() -> None:
    """import-linter cannot name the namespace portion ``brokerage.platform`` as one module,
    so its contract lists the children; a module added at the root must be listed too."""
    children = {f"brokerage.platform.{p.stem}" for p in (REPO / "platform").glob("*.py")}
    children |= {
        f"brokerage.platform.{p.name}"
        for p in (REPO / "platform").iterdir()
        if (p / "__init__.py").exists()
    }
    assert set(_contract("platform-on-top")["forbidden_modules"]) == children


def test_the_platform_root_stays_small() -> None:
    """Rooms, not one flat folder: new code goes into api/, web/, deliveries/, issues/, hooks/."""
    assert len(list((REPO / "platform").glob("*.py"))) <= 20


def test_lint_imports_keeps_every_contract() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:]
