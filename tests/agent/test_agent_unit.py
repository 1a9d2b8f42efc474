"""systemd/curtaild-agent.service as systemd reads it: `verify` clean, `security` <= 2.0."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.unit.test_systemd_unit import INSTALLED_BINARY, MAX_EXPOSURE, _run

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "curtaild-agent.service"


def test_the_agent_unit_verifies_cleanly(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_BINARY} agent " in text, "ExecStart moved: update this test"
    copy = tmp_path / UNIT.name
    copy.write_text(
        text.replace(f"ExecStart={INSTALLED_BINARY} ", f"ExecStart={sys.executable} -m controller ")
    )
    done = _run("verify", str(copy))
    output = (done.stdout + done.stderr).strip()
    ours = [line for line in output.splitlines() if str(copy) in line or UNIT.name in line]
    assert done.returncode == 0 and not ours, f"systemd-analyze verify:\n{output}"


def test_the_agent_unit_is_hardened_below_the_exposure_threshold() -> None:
    done = _run("security", "--offline=true", f"--threshold={round(MAX_EXPOSURE * 10)}", str(UNIT))
    report = done.stdout + done.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", report)
    assert found is not None, f"no exposure level in:\n{report}"
    assert done.returncode == 0 and float(found.group(1)) <= MAX_EXPOSURE, report
