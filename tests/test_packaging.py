"""environment.yml must install what pyproject.toml declares; the wheel ships the C kernels."""

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_pip_section_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert [d for d in pip_section if d != "-e ."] == declared
    assert "python=3.11" in environment["dependencies"]


def test_pins_the_issue_requires():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch==2.13.0" in dependencies
    assert "jupyter-book>=1.0.3,<2" in dependencies
    assert "mujoco==3.17.0" in dependencies


def test_wheel_ships_the_c_kernels(tmp_path):
    """An installed library compiles its Mamba kernels from the packaged ``.c`` file, so the
    wheel must hold it (built offline from a copy of the sources)."""
    source = tmp_path / "src"
    shutil.copytree(ROOT / "ssmrl_lib", source / "ssmrl_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("ssmrl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ssmrl_lib/scan/mamba_kernels.c" in names
    assert "ssmrl_lib/scan/c_kernels.py" in names
