"""The package as a site installs it: a wheel of this tree, installed into a fresh venv.

What runs here, and what cannot: the wheel is built by `pip wheel --no-deps .` (pip's build
isolation fetches setuptools from pip's configured index: PyPI, or the local mirror of an
offline machine) and installed with `--no-deps` into a fresh venv made without pip (fast). The
runtime dependencies are not installed from an index (that needs the network and would take
minutes): the installed package runs against the dev venv's site-packages on PYTHONPATH, which
has no curtaild in it (the editable install is a .pth hook, and .pth files on PYTHONPATH are not
read), so the code that runs is the wheel's. The wheel's declared dependencies are checked from
its METADATA instead: the daemon's only, amqtt and matplotlib behind the `demo` and `plot`
extras, and every daemon module imports with those two absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import __version__, cli
from controller.extras import MissingExtraError

ROOT = Path(__file__).resolve().parents[2]
OPTIONAL = {"amqtt": "demo", "matplotlib": "plot", "gridstatus": "apitest", "pyasic": "agent"}
# The agent's modules that import pyasic (the `agent` extra); `curtaild agent` names it.
NEEDS_PYASIC = {"controller.agent.driver", "controller.agent.pool", "controller.agent.metrics",
                "controller.agent.service"}  # fmt: skip
RUNTIME = {"aiohttp", "aiomqtt", "pymodbus", "prometheus-client", "pydantic", "pydantic-settings",
           "structlog", "uvloop", "tzdata"}  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    built = sorted(out.glob("curtaild-*.whl"))
    assert done.returncode == 0 and built, f"pip wheel failed:\n{done.stdout}\n{done.stderr}"
    return built[0]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv (no pip in it) with the wheel alone installed; returns its bin directory."""
    home = tmp_path_factory.mktemp("fresh") / "venv"
    venv.create(home, with_pip=False)
    python = home / "bin" / "python"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"installing the wheel failed:\n{done.stdout}\n{done.stderr}"
    yield home / "bin"


def _run_installed(bin_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CURTAILD_", "PYTHON"))}
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]  # the dependencies, not curtaild
    return subprocess.run(
        list(argv), check=False, capture_output=True, text=True, timeout=60,
        env=env, cwd=bin_dir.parent,  # not the source tree: its controller/ must not be found
    )  # fmt: skip


def test_the_wheel_declares_the_daemons_dependencies_and_the_extras(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(name).decode()
        files = zf.namelist()
    assert f"Version: {__version__}\n" in metadata
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ")]  # fmt: skip
    unconditional = {r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
                     for r in requires if "extra ==" not in r}  # fmt: skip
    assert unconditional == RUNTIME
    for package, extra in OPTIONAL.items():
        assert any(r.startswith(package) and f'extra == "{extra}"' in r for r in requires), requires
    for extra in set(OPTIONAL.values()):
        assert f"Provides-Extra: {extra}" in metadata
    assert not [f for f in files if f.startswith(("tests/", "bench/"))]


def test_the_installed_package_runs_from_the_wheel(installed: Path) -> None:
    done = _run_installed(installed, str(installed / "curtaild"), "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"curtaild {__version__}"
    config = ROOT / "config.example.toml"
    done = _run_installed(installed, str(installed / "curtaild"), "check-config", "--config",
                          str(config))  # fmt: skip
    assert done.returncode == 0, done.stderr
    where = _run_installed(installed, str(installed / "python"), "-c",
                           "import controller; print(controller.__file__)")  # fmt: skip
    assert where.stdout.strip().startswith(str(installed.parent)), where.stdout + where.stderr


def test_every_daemon_module_imports_without_the_optional_packages(installed: Path) -> None:
    # None in sys.modules makes `import amqtt` raise ModuleNotFoundError, as if not installed.
    script = (
        f"NEEDS_PYASIC = {sorted(NEEDS_PYASIC)!r}\n"
        "import sys, pkgutil, importlib\n"
        "sys.modules.update(amqtt=None, matplotlib=None, pyasic=None)\n"
        "import controller\n"
        "for m in pkgutil.walk_packages(controller.__path__, 'controller.'):\n"
        "    if m.name != 'controller.__main__' and m.name not in NEEDS_PYASIC:\n"
        "        importlib.import_module(m.name)  # __main__ runs the CLI\n"
        "from controller import cli\n"
        "sys.exit(cli.main(['demo']))\n"
    )
    done = _run_installed(installed, str(installed / "python"), "-c", script)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "pip install 'curtaild[demo]'" in done.stderr, done.stderr


def test_backtest_plot_names_its_extra_before_running(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingExtraError, match=r"curtaild\[plot\]"):
        from controller.extras import require  # noqa: PLC0415

        require("matplotlib", "plot", "backtest --plot")
    code = cli.main(["backtest", "--config", str(ROOT / "config.example.toml"), "--prices",
                     str(tmp_path / "absent.csv"), "--plot", str(tmp_path / "x.png")])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "backtest --plot needs the Python package 'matplotlib'" in err
    assert "absent.csv" not in err  # refused before the price file is read


def test_version_flag_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"curtaild {__version__}"
