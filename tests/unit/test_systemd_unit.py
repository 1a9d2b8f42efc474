"""systemd/curtaild.service and curtaild-feed-ercot.service as systemd itself reads them: `systemd-analyze verify` and `security`.

These run in every suite and never skip: a unit that systemd would half-ignore (an unknown key or
a bad value is only a warning at load time) or that lost its hardening is a release bug. Debian:
`apt-get install systemd` provides systemd-analyze; it needs no running systemd (no PID 1).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS_DIR = Path(__file__).resolve().parents[2] / "systemd"
# Every unit we ship, with the subcommand its ExecStart runs.
UNITS = {"curtaild.service": "run", "curtaild-feed-ercot.service": "feed-ercot"}
INSTALLED_BINARY = "/opt/curtaild/.venv/bin/curtaild"
# systemd-analyze security's exposure scale is 0.0-10.0; --threshold takes tenths as an integer
# in systemd 252 (`--threshold=2.0` is "Failed to parse threshold"), so 2.0 is passed as 20.
MAX_EXPOSURE = 2.0


def _analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail(
            "systemd-analyze is missing: the unit file checks need it (Debian: apt-get install "
            "systemd; no running systemd is needed)"
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_analyze(), *args], check=False, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("name", UNITS)
def test_the_unit_file_verifies_cleanly(name: str, tmp_path: Path) -> None:
    # verify refuses a unit whose ExecStart binary does not exist, and the unit names where the
    # package is installed on a site (/opt/curtaild/.venv), not here. So a copy of the unit,
    # identical but for ExecStart's program, is verified: this test's own interpreter running
    # the same command line (`python -m controller` is what the `curtaild` script runs).
    unit = UNITS_DIR / name
    text = unit.read_text()
    assert f"ExecStart={INSTALLED_BINARY} {UNITS[name]} " in text, (
        "ExecStart moved: update this test"
    )
    copy = tmp_path / unit.name
    copy.write_text(
        text.replace(f"ExecStart={INSTALLED_BINARY} ", f"ExecStart={sys.executable} -m controller ")
    )
    done = _run("verify", str(copy))
    output = (done.stdout + done.stderr).strip()
    # Unknown keys and unparsable values are warnings with exit 0: any line about the unit fails.
    ours = [line for line in output.splitlines() if str(copy) in line or unit.name in line]
    assert done.returncode == 0 and not ours, f"systemd-analyze verify:\n{output}"


@pytest.mark.parametrize("name", UNITS)
def test_the_unit_is_hardened_below_the_exposure_threshold(name: str) -> None:
    unit = UNITS_DIR / name
    threshold = round(MAX_EXPOSURE * 10)
    done = _run("security", "--offline=true", f"--threshold={threshold}", str(unit))
    report = done.stdout + done.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", report)
    assert found is not None, f"no exposure level in:\n{report}"
    exposure = float(found.group(1))
    assert done.returncode == 0 and exposure <= MAX_EXPOSURE, (
        f"{unit.name} exposure {exposure} is over {MAX_EXPOSURE}; the findings (lines with ✗) "
        f"say which setting to add:\n{report}"
    )
