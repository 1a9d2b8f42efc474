"""The deploy check (deploy/hostcheck) and the guide it runs cannot drift apart unnoticed.

`make deploy-check` boots a VM and takes 15-30 minutes, so it is not in `make test`. What can be
checked without it is checked here: every block guest.sh runs by name exists in the guides as
blocks.py cuts them, and holds the command guest.sh expects there; and the cutter itself keeps
list-indented blocks and sections apart. The VM run is what proves the commands work.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from tests.integration.site import ROOT

HOSTCHECK = ROOT / "deploy" / "hostcheck"


def _blocks_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hostcheck_blocks", HOSTCHECK / "blocks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cut(tmp_path: Path) -> dict[str, str]:
    blocks = _blocks_module()
    for guide, prefix in (
        (ROOT / "docs" / "deploy.md", "deploy"),
        (ROOT / "deploy" / "README.md", "readme"),
    ):
        assert blocks.main(["blocks.py", str(guide), prefix, str(tmp_path)]) == 0
    return {p.stem: p.read_text() for p in tmp_path.glob("*.sh")}


def test_every_block_the_guest_runs_is_in_the_guides(tmp_path: Path) -> None:
    cut = _cut(tmp_path)
    guest = (HOSTCHECK / "guest.sh").read_text() + (HOSTCHECK / "guest-checks.sh").read_text()
    wanted = set(re.findall(r"^\s*guide ((?:deploy|readme)-[\d.]+-\d+)", guest, re.MULTILINE))
    assert len(wanted) >= 20, f"guest.sh runs too few blocks, the pattern is broken: {wanted}"
    missing = sorted(wanted - set(cut))
    assert not missing, f"guest.sh runs blocks the guides no longer have: {missing}"


def test_each_block_holds_what_the_guest_expects_there(tmp_path: Path) -> None:
    cut = _cut(tmp_path)
    # One command per block that the checks after it rely on: a block that moved or changed
    # meaning fails here rather than half-way through a 20-minute VM run.
    expected = {
        "deploy-1-1": "apt-get install",
        "deploy-2-2": "tar -xzf curtaild-0.1.0.tar.gz",
        "deploy-2-3": "pip install --require-hashes -r requirements.lock",
        "deploy-2-4": "--find-links ~/wheelhouse",
        "deploy-2-5": "curtaild-0.1.0-py3-none-any.whl",
        "deploy-4-2": "the-broker-password",
        "deploy-6-1": "systemctl reload prometheus",
        "deploy-8-1": "systemctl enable --now curtaild",
        "deploy-8-2": "op-jdoe-password",
        "deploy-9-1": ".backup",
        "deploy-9-3": "curtaild-0.2.0-py3-none-any.whl",
        "deploy-9-5": "/var/lib/private/curtaild/curtaild.db",
        "deploy-9-7": "curtaild-0.1.0-py3-none-any.whl",
        "deploy-9-8": "systemctl start curtaild",
        "readme-3.1-2": "mosquitto_passwd",
        "readme-3.2-2": "cd ..",
        "readme-3.5-1": "forged",
    }
    wrong = {name: text for name, text in expected.items() if text not in cut.get(name, "")}
    assert not wrong, f"blocks that no longer hold what guest.sh expects: {wrong}"


def test_the_cutter_numbers_by_section_and_unindents_list_blocks(tmp_path: Path) -> None:
    guide = tmp_path / "guide.md"
    guide.write_text(
        "## 1. One\n\n```sh\necho a\n```\n\n- [ ] item\n\n  ```sh\n  echo b\n  ```\n\n"
        "```yaml\nnot: sh\n```\n\n### 3.2 Sub\n\n```sh\necho c\n```\n"
    )
    out = tmp_path / "out"
    assert _blocks_module().main(["blocks.py", str(guide), "g", str(out)]) == 0
    got = {p.stem: p.read_text().splitlines()[1:] for p in out.glob("*.sh")}
    assert got == {"g-1-1": ["echo a"], "g-1-2": ["echo b"], "g-3.2-1": ["echo c"]}
