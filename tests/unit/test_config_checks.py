"""Cross-field config rules, and every problem reported at once (unknown keys included)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.config import Config, MqttConfig, load_config
from controller.config_checks import check_site
from controller.sim.configs import build_config, mixed_site
from controller.sim.demo_site import demo_config
from tests.integration.site import site_data as integration_site_data
from tests.unit.config_support import problems_of, write

UNKNOWN = "unknown key (check the spelling against config.example.toml)"

SITE = """
[site]
poi_limit_kw = 30000
aux_kw = 1000
margin_kw = 500
[[meters]]
name = "gpu-m"
role = "gpu"
host = "h"
port = 1
[[pdus]]
name = "gpu-pdu"
host = "h"
port = 2
outlets = 4
outlet_kw = 10
protected = true
[[pdus]]
name = "pool-pdu"
host = "h"
port = 3
outlets = 4
outlet_kw = 10
"""


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ('[[pools]]\nname="a"\ndriver="mqtt"\nmax_kw=1\nefficiency_j_per_th=20\npdus=["gpu-pdu"]\n',
         "is protected"),
        ('[[gpu_tenants]]\nname="t"\nfirm_kw=1\nmeters=["gpu-m"]\npdus=["pool-pdu"]\n',
         "protected = false"),
        ('[[pools]]\nname="gpu-m"\ndriver="mqtt"\nmax_kw=1\nefficiency_j_per_th=20\n',
         "used by 2 devices"),
        ('[[gpu_tenants]]\nname="t"\nfirm_kw=29000\nmeters=["gpu-m"]\n',
         "less than the firm GPU reservations"),
        ('[[gpu_tenants]]\nname="t"\nfirm_kw=1\nmeters=["nope"]\n', "no meter named 'nope'"),
        ('[[pools]]\nname="a"\ndriver="modbus"\nmax_kw=1\nefficiency_j_per_th=20\n',
         "requires host, port, unit_id"),
        ('[[pools]]\nname="a"\ndriver="mqtt"\nmax_kw=1\nefficiency_j_per_th=20\nhost="h"\n',
         "belong to driver = 'modbus'"),
        ('[[pools]]\nname="a"\ndriver="pdu"\nmax_kw=1\nefficiency_j_per_th=20\n',
         "requires at least one PDU"),
        ('[[pools]]\nname="a"\ndriver="pdu"\nmax_kw=100\nefficiency_j_per_th=20\npdus=["pool-pdu"]\n',
         "exceeds its PDUs"),
        ('[[pools]]\nname="a"\ndriver="mqtt"\nmax_kw=1\nefficiency_j_per_th=20\npdus=["x"]\n',
         "no pdu named 'x'"),
        ('[dispatch]\nfrequency_trip_hz=59.9\nfrequency_reset_hz=59.8\n', "above frequency_trip_hz"),
    ],
)  # fmt: skip
def test_cross_field_rules(tmp_path: Path, extra: str, fragment: str) -> None:
    problems = problems_of(tmp_path, SITE + extra)
    assert any(fragment in p for p in problems), problems


def test_every_cross_field_problem_is_listed(tmp_path: Path) -> None:
    extra = (
        '[[pools]]\nname="a"\ndriver="modbus"\nmax_kw=1\nefficiency_j_per_th=20\npdus=["gpu-pdu"]\n'
        '[[gpu_tenants]]\nname="t"\nfirm_kw=90000\nmeters=["gpu-m"]\n'
    )
    assert len(problems_of(tmp_path, SITE + extra)) >= 3


def pdu(name: str, host: str, port: int, unit_id: int = 1, protected: bool = False) -> str:
    return (
        f'[[pdus]]\nname="{name}"\nhost="{host}"\nport={port}\nunit_id={unit_id}\n'
        f"outlets=4\noutlet_kw=10\nprotected={str(protected).lower()}\n"
    )


def pool(name: str, extra: str = "") -> str:
    return f'[[pools]]\nname="{name}"\ndriver="mqtt"\nmax_kw=1\nefficiency_j_per_th=20\n{extra}'


def test_protected_pdu_declared_again_as_a_pool_pdu_is_an_error(tmp_path: Path) -> None:
    # gpu-pdu is at h:2 unit 1; "alias" is the same device, its host spelled in capitals.
    text = SITE + pdu("alias", "H", 2) + pool("a", 'pdus=["alias"]\n')
    assert problems_of(tmp_path, text) == [
        (
            "pdus.2 (alias): same Modbus address as pdus.0 (gpu-pdu, protected): host 'h', port 2, "
            "unit_id 1; one address is one device: correct host, port or unit_id or remove the "
            "duplicate"
        )
    ]


def test_meter_and_plc_pool_at_one_address_is_an_error(tmp_path: Path) -> None:
    plc = '[[pools]]\nname="plc"\ndriver="modbus"\nmax_kw=1\nefficiency_j_per_th=20\n'
    [problem] = problems_of(tmp_path, SITE + plc + 'host="h."\nport=1\nunit_id=1\n')
    assert problem.startswith("pools.0 (plc): same Modbus address as meters.0 (gpu-m): host 'h'")


def test_ip_literals_compare_in_canonical_form(tmp_path: Path) -> None:
    text = SITE + pdu("v6-a", "::1", 9) + pdu("v6-b", "0:0:0:0:0:0:0:1", 9)
    [problem] = problems_of(tmp_path, text)
    assert problem.startswith("pdus.3 (v6-b): same Modbus address as pdus.2 (v6-a)")


def test_one_gateway_with_several_unit_ids_is_valid(tmp_path: Path) -> None:
    text = SITE + pdu("unit-2", "h", 2, unit_id=2) + pdu("unit-3", "h", 2, unit_id=3)
    config = load_config(write(tmp_path, text), environ={})
    assert [(p.host, p.port, p.unit_id) for p in config.pdus][1:] == [
        ("h", 3, 1), ("h", 2, 2), ("h", 2, 3),
    ]  # fmt: skip


def test_the_issue_example_unknown_key_does_not_hide_a_protected_pdu(tmp_path: Path) -> None:
    text = SITE.replace("margin_kw = 500", "margin_kw = 500\nmargn_kw = 5")
    problems = problems_of(tmp_path, text + pool("a", 'pdus=["gpu-pdu"]\n'))
    assert problems == [
        f"site.margn_kw: {UNKNOWN} (got 5)",
        (
            "pools.0.pdus.0: pdu 'gpu-pdu' is protected (a GPU tenant's PDU); a pool may only name "
            "unprotected PDUs"
        ),
    ]


def test_unknown_keys_in_list_items_and_env_come_first_with_the_rest(tmp_path: Path) -> None:
    text = SITE + pool("a", 'pdus=["gpu-pdu"]\nmax_kww=3\n') + pdu("alias", "h", 2)
    problems = problems_of(tmp_path, text, {"CURTAILD_CONTROL__TICK": "1"})
    assert problems[:2] == [
        f"control.tick: {UNKNOWN} (got '1')",
        f"pools.0.max_kww: {UNKNOWN} (got 3)",
    ]
    assert any("is protected" in p for p in problems[2:])
    assert any("same Modbus address as pdus.0 (gpu-pdu" in p for p in problems[2:])


def test_field_errors_stop_before_the_cross_field_rules(tmp_path: Path) -> None:
    # A field error leaves no valid config to cross-check: it and the unknown key are listed.
    text = SITE.replace("aux_kw = 1000", 'aux_kw = "1000"\nauxkw = 1') + pool(
        "a", 'pdus=["gpu-pdu"]\n'
    )
    problems = problems_of(tmp_path, text)
    assert [p.split(":")[0] for p in problems] == ["site.auxkw", "site.aux_kw"]


def test_check_config_exit_2_lists_unknown_key_and_cross_field_problem(tmp_path: Path) -> None:
    path = write(tmp_path, SITE + pool("a", 'pdus=["gpu-pdu"]\ntypo=1\n'))
    proc = subprocess.run(
        [sys.executable, "-m", "controller", "check-config", "--config", str(path)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert lines[1] == f"  - pools.0.typo: {UNKNOWN} (got 1)"
    assert "pdu 'gpu-pdu' is protected" in lines[2]
    assert "Traceback" not in proc.stderr


def test_shipped_site_builders_still_make_valid_configs() -> None:
    # The demo validates itself (AssertionError otherwise); the others are checked here.
    assert demo_config(1883, 9108, "/tmp").pools
    data = integration_site_data(MqttConfig(port=1883, topic_prefix="t"))
    assert check_site(Config.model_validate(data)) == []
    assert len(build_config(mixed_site(30)).pools) == 30
