"""Installed, the project is one namespace: every module under `wa_ray.`, nothing generic at the top.

Builds the real wheel (`pip wheel . --no-deps`) and reads its file list, then installs it with no
dependencies into an empty venv and imports from outside the checkout, so the source tree's folders
cannot stand in for the installed package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("storage", "sessions", "actors", "supervisors", "serve_app", "simulator", "bench")


def _wheel(tmp_path: Path) -> Path:
    # built from a copy: setuptools writes build/ and *.egg-info next to the sources it builds
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", ".wa-ray",
                                                             "node_modules", "__pycache__", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
                   check=True, capture_output=True, timeout=300)
    return next(tmp_path.glob("wa_ray-*.whl"))


def test_the_wheel_holds_one_top_level_package_and_the_design_folders_under_it(tmp_path: Path) -> None:
    names = zipfile.ZipFile(_wheel(tmp_path)).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"wa_ray"}, tops
    for folder in FOLDERS:
        assert f"wa_ray/{folder}/__init__.py" in names, folder
    assert "wa_ray/sessions/bridge.js" in names and "wa_ray/simulator/wa_web/static/app.js" in names


def test_installed_it_imports_as_wa_ray_and_adds_no_top_level_storage(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "dist")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = ("import importlib.util as u, wa_ray.storage.keys as k; "
             f"print(k.__file__); print([n for n in {FOLDERS!r} if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = [{str(target)!r}]; {probe}"],
                         cwd=tmp_path, check=True, capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert out[0].startswith(str(target / "wa_ray" / "storage")), out
    assert out[1] == "[]", out
