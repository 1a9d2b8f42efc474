"""`curtaild feed-ercot` at the command line: its account from env, file or systemd
credential, clear errors (exit 2) for what is missing, and `--backfill` writing a CSV that
`curtaild backtest --prices` reads."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from controller import cli
from controller.config import load_config
from controller.config_secrets import load_ercot_api_secrets
from controller.feeds.ercot import CENTRAL, read_price_csv
from controller.sim.ercot_api import RunningFake
from tests.feeder.helpers import SECRETS_ENV, feeder_config

ROOT = Path(__file__).resolve().parents[2]


def test_every_missing_secret_is_named_with_where_it_may_come_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in SECRETS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "c.toml"
    path.write_text('[site]\npoi_limit_kw = 1000\n[[pools]]\nname = "c01"\ndriver = "mqtt"\n'
                    "max_kw = 100\nefficiency_j_per_th = 20\n")  # fmt: skip
    assert cli.main(["feed-ercot", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ercot_api.username: not set" in err
    assert "ercot_api.password: not set; use ercot_api.password_file, env " in err
    assert "credential ercot_subscription_key" in err


def test_secrets_come_from_files_or_the_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ercot_subscription_key").write_text("from-credential")
    path = tmp_path / "c.toml"
    path.write_text('[site]\npoi_limit_kw = 1000\n[ercot_api]\nusername = "me@example.com"\n'
                    f'password_file = "{tmp_path / "pw"}"\n[[pools]]\nname = "c01"\n'
                    'driver = "mqtt"\nmax_kw = 100\nefficiency_j_per_th = 20\n')  # fmt: skip
    environ = {"CREDENTIALS_DIRECTORY": str(creds)}
    config, problems = load_ercot_api_secrets(load_config(path, environ), environ)
    assert problems == []
    assert config.ercot_api.password.get_secret_value() == "from-file"
    assert config.ercot_api.subscription_key.get_secret_value() == "from-credential"
    assert "from-file" not in repr(config) and "from-credential" not in repr(config)


async def _cli(*args: str, env_extra: dict[str, str]) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURTAILD_")} | env_extra
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_backfill_writes_a_csv_backtest_reads(fake: RunningFake, tmp_path: Path) -> None:
    feeder_config(tmp_path, fake)
    today = datetime.now(CENTRAL).date()
    start = (today - timedelta(days=1)).isoformat()
    for product in ("np6-905-cd", "np6-788-cd"):
        out = tmp_path / f"{product}.csv"
        code, stdout, err = await _cli(
            "feed-ercot", "--config", str(tmp_path / "feeder.toml"), "--backfill", start,
            today.isoformat(), "--csv", str(out), "--product", product, env_extra=SECRETS_ENV,
        )  # fmt: skip
        assert code == 0, err
        assert "rows of HB_WEST" in stdout
        records = read_price_csv(out, "HB_WEST")
        held = [r for r in fake.api.store.visible(product, fake.api.clock())
                if r.point == "HB_WEST"]  # fmt: skip
        if product == "np6-905-cd":
            assert [r.interval_start for r in records] == [h.at_s for h in held]
            assert [r.price_usd_per_mwh for r in records] == [h.price for h in held]
        else:  # 15-minute means of the SCED runs
            assert {r.interval_start for r in records} == {h.at_s // 900 * 900 for h in held}
            first = [h.price for h in held if h.at_s // 900 * 900 == records[0].interval_start]
            assert records[0].price_usd_per_mwh == round(sum(first) / len(first), 2)
    code, _, err = await _cli("feed-ercot", "--config", str(tmp_path / "feeder.toml"),
                              "--backfill", "2024-13-01", start, "--csv", str(out),
                              env_extra=SECRETS_ENV)  # fmt: skip
    assert code == 2 and "expected a date YYYY-MM-DD" in err
