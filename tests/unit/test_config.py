"""Config loading: TOML + env, strictness, cross-field rules, secrets, check-config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from controller.config import Config, load_config
from controller.config_render import render_toml
from controller.config_secrets import SECRETS
from controller.errors import ConfigError
from tests.unit.config_support import MINIMAL, problems_of, write

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def test_example_config_is_valid_and_complete() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.site.name == "abilene-1"
    assert {p.driver for p in config.pools} == {"mqtt", "modbus", "pdu"}
    assert [p.name for p in config.pdus if p.protected] == ["pdu-gpu-a1"]
    assert config.ercot_api.publish_topic == "ercot/prices"  # accepted (CONTRACT 2.6), typed
    assert config.ercot_api.max_requests_per_min == 30


def test_example_documents_every_key() -> None:
    # Each key (extensions as a commented line) in its own section's blocks of the example.
    blocks: dict[str, str] = {}
    for block in re.split(r"^(?=\[)", EXAMPLE.read_text(), flags=re.MULTILINE)[1:]:
        section = block.split("]", 1)[0].strip("[")
        blocks[section] = blocks.get(section, "") + block
    for section, field in Config.model_fields.items():
        args = get_args(field.annotation)  # list[PoolConfig] -> PoolConfig
        model = args[0] if args else field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        for key in model.model_fields:
            if (section, key) not in SECRETS:
                assert re.search(rf"^#? ?{key} = ", blocks[section], re.MULTILINE), (section, key)


def test_defaults_fill_missing_sections(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    assert config.control.tick_s == 1.0
    assert config.control.pool_stale_s == 30.0
    assert config.control.audit_retention_days == 400.0
    assert config.ercot_api.products == ["np6-788-cd", "np6-905-cd"]
    assert config.feeds.on_dispatch_stale == "curtail"
    assert config.metrics.listen == "127.0.0.1:9108"


def test_env_overrides_with_typed_conversion(tmp_path: Path) -> None:
    env = {
        "CURTAILD_MQTT__PORT": "1884",
        "CURTAILD_SITE__MARGIN_KW": "750.5",
        "CURTAILD_FEEDS__ON_PRICE_STALE": "curtail",
        "CURTAILD_ECONOMICS__MIN_RUN_S": "0",
    }
    config = load_config(write(tmp_path, MINIMAL), environ=env)
    assert config.mqtt.port == 1884
    assert config.site.margin_kw == 750.5
    assert config.feeds.on_price_stale == "curtail"
    assert config.economics.min_run_s == 0


def test_given_environ_is_used_and_process_environ_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURTAILD_MQTT__PORT", "1999")
    before = dict(os.environ)
    config = load_config(write(tmp_path, MINIMAL), environ={"CURTAILD_MQTT__PORT": "1884"})
    assert config.mqtt.port == 1884
    assert dict(os.environ) == before
    assert load_config(write(tmp_path, MINIMAL), environ={}).mqtt.port == 1883
    # Without an environ argument the process environment applies.
    assert load_config(write(tmp_path, MINIMAL)).mqtt.port == 1999


def test_env_list_that_is_not_json_is_one_clear_problem(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, MINIMAL, {"CURTAILD_POOLS": "c01"})
    assert len(problems) == 1
    assert problems[0].startswith("environment: CURTAILD_POOLS is not valid JSON;")


def test_env_value_of_the_wrong_type_is_an_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, MINIMAL, {"CURTAILD_MQTT__PORT": "eighteen"})
    assert any(p.startswith("mqtt.port:") for p in problems)


@pytest.mark.parametrize(
    ("snippet", "where"),
    [
        ('[site]\npoi_limit_kw = "60000"\n', "site.poi_limit_kw"),
        ("[site]\npoi_limit_kw = true\n", "site.poi_limit_kw"),
        ("[site]\npoi_limit_kw = -1\n", "site.poi_limit_kw"),
        ("[site]\npoi_limit_kw = 1\ntypo_kw = 3\n", "site.typo_kw"),
        ("[site]\npoi_limit_kw = 1\n[control]\ntick_s = 0.01\n", "control.tick_s"),
        ("[site]\npoi_limit_kw = 1\n[control]\nconfirm_timeout_s = 0.1\n", "control.confirm_timeout_s"),
        ("[site]\npoi_limit_kw = 1\n[control]\nramp_up_kw_per_s = 0\n", "control.ramp_up_kw_per_s"),
        ("[site]\npoi_limit_kw = 1\n[feeds]\non_price_stale = \"panic\"\n", "feeds.on_price_stale"),
        ("[site]\npoi_limit_kw = 1\n[feeds]\nprice_stale_s = 0\n", "feeds.price_stale_s"),
        ("[site]\npoi_limit_kw = 1\n[economics]\npool_fee = 1.0\n", "economics.pool_fee"),
        ("[site]\npoi_limit_kw = 1\n[dispatch]\neea2_fraction = 1.5\n", "dispatch.eea2_fraction"),
        ("[site]\npoi_limit_kw = 1\n[override]\nmax_ttl_s = 0\n", "override.max_ttl_s"),
        ("[site]\npoi_limit_kw = 1\n[control]\npool_stale_s = 0\n", "control.pool_stale_s"),
        ("[site]\npoi_limit_kw = 1\n[control]\npool_stale_s = \"30\"\n", "control.pool_stale_s"),
        ("[site]\npoi_limit_kw = 1\n[control]\naudit_retention_days = 0\n",
         "control.audit_retention_days"),
        ("[site]\npoi_limit_kw = 1\n[ercot_api]\npoll_s = \"60\"\n", "ercot_api.poll_s"),
        ("[site]\npoi_limit_kw = 1\n[ercot_api]\nproducts = [\"np4-190-cd\"]\n",
         "ercot_api.products.0"),
        ("[site]\npoi_limit_kw = 1\n[ercot_api]\nbase = \"x\"\n", "ercot_api.base: unknown key"),
        ("[site]\npoi_limit_kw = 1\n[mqtt]\npassword = \"x\"\n", "mqtt.password"),
        ("poi = 1\n", "site"),
    ],
)  # fmt: skip
def test_field_errors_name_their_key_path(tmp_path: Path, snippet: str, where: str) -> None:
    problems = problems_of(tmp_path, snippet)
    assert any(p.startswith(where) for p in problems), problems


def test_pdu_bounds(tmp_path: Path) -> None:
    text = MINIMAL + (
        '[[pdus]]\nname = "p"\nhost = "h"\nport = 1\noutlets = 65\noutlet_kw = 66.0\n'
    )
    problems = problems_of(tmp_path, text)
    assert any(p.startswith("pdus.0.outlets") for p in problems)
    assert any(p.startswith("pdus.0.outlet_kw") for p in problems)


def test_missing_file_and_syntax_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(write(tmp_path, "[site\n"), environ={})


def test_check_config_exit_2_lists_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path, '[site]\npoi_limit_kw = "x"\nfoo = 1\n')
    proc = subprocess.run(
        [sys.executable, "-m", "controller", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "site.poi_limit_kw" in proc.stderr
    assert "site.foo: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_dumped_config_renders_back_into_the_same_config(tmp_path: Path) -> None:
    # What the integration and bench harnesses do: secrets excluded from dumps stay out of the
    # rendered file (it would be refused), mqtt.password is popped by the caller.
    key = tmp_path / "hmac.key"
    key.write_text("k\n")
    text = EXAMPLE.read_text().replace('hmac_key_file = ""', f'hmac_key_file = "{key}"')
    config = load_config(write(tmp_path, text), environ={"CURTAILD_ERCOT_API__PASSWORD": "p"})
    dumped = config.model_dump(mode="python")
    dumped["mqtt"].pop("password")
    again = load_config(write(tmp_path, render_toml(dumped)), environ={})
    assert again.model_dump() == config.model_dump()
    assert again.override.hmac_key == config.override.hmac_key
