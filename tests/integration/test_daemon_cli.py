"""`curtaild status` and `curtaild override` against the running daemon; broker restarts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from controller.config import MqttConfig
from tests.integration.live import cli
from tests.integration.site import iso_now, live_site
from tests.support import MosquittoBroker, eventually


async def test_override_and_status_commands(mqtt_cfg: MqttConfig, tmp_path: Path) -> None:
    key_file = tmp_path / "override.key"
    key_file.write_text("cli-key\n")
    async with live_site(mqtt_cfg, tmp_path, override={"hmac_key_file": str(key_file)}) as site:
        await site.price(20.0)
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)
        config = str(site.config_path)
        code, out, err = await cli("override", "--config", config, "limit", "4000",
                                   "--ttl", "10m", "--reason", "transformer work")  # fmt: skip
        assert code == 0, err
        state = json.loads(out)
        assert (state["active"], state["mode"], state["limit_kw"]) == (True, "limit", 4000.0)
        assert state["reason"] == "transformer work"
        await eventually(lambda: site.sim.mining_kw() <= 4000 + 1, 5)

        code, out, err = await cli("status", "--config", config)
        assert code == 0, err
        assert "status:   online" in out
        assert "override: limit limit=4000.0" in out
        assert "(override)" in out
        code, out, _ = await cli("status", "--config", config, "--json")
        docs = json.loads(out)
        assert docs["plan"]["binding"] == "override"
        assert docs["plan"]["mining_cap_kw"] == 4000.0

        code, out, _ = await cli("override", "--config", config, "auto")
        assert code == 0
        assert json.loads(out)["active"] is False
        await eventually(lambda: site.sim.mining_kw() == pytest.approx(11216), 5)


async def test_cli_errors_are_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    port = 1  # nothing listens on port 1
    config.write_text(f"[site]\npoi_limit_kw = 1000\n[mqtt]\nport = {port}\n")
    code, _, err = await cli("status", "--config", str(config))
    assert code == 1
    assert "127.0.0.1:1" in err
    assert "Traceback" not in err
    code, _, err = await cli("override", "--config", str(config), "limit", "--ttl", "5m")
    assert code == 2
    assert "needs the mining cap in kW" in err
    code, _, err = await cli("override", "--config", str(config), "curtail", "--ttl", "soon")
    assert code == 2
    assert "--ttl 'soon'" in err


async def test_a_second_daemon_on_the_same_state_directory_refuses_to_start(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        code, _, err = await cli("run", "--config", str(site.config_path))
        assert code == 1, err
        assert "in use by another curtaild" in err
        assert str(site.process.pid) in err
        assert "Traceback" not in err
        assert site.process.poll() is None  # the first one runs on


async def test_retained_topics_come_back_after_a_broker_restart(
    fresh_broker: MosquittoBroker, tmp_path: Path
) -> None:
    from controller.adapters.mqtt_oneshot import fetch_retained

    mqtt = fresh_broker.mqtt_config()
    async with live_site(mqtt, tmp_path) as site:
        await site.price(20.0)
        await site.plan(lambda p: p["price_usd_per_mwh"] == 20.0)
        await site.dispatch({"id": "C9", "type": "CLR", "mw": 5.0, "notified_at": iso_now()})
        await eventually(lambda: site.sim.mining_kw() <= 5001, 5)
        await asyncio.to_thread(fresh_broker.restart, 0.5)  # no persistence: retained gone
        prefix = site.prefix

        async def republished() -> dict[str, bytes]:
            return await fetch_retained(mqtt, [f"{prefix}/#"], 3.0)

        got: dict[str, bytes] = {}
        for _ in range(20):
            got = await republished()
            if {f"{prefix}/status", f"{prefix}/plan", f"{prefix}/dispatch/state",
                f"{prefix}/override/state", f"{prefix}/pools/a3/cmd"} <= set(got):  # fmt: skip
                break
            await asyncio.sleep(0.2)
        assert json.loads(got[f"{prefix}/status"])["state"] == "online"
        assert json.loads(got[f"{prefix}/dispatch/state"])["obligations"][0]["id"] == "C9"
        assert json.loads(got[f"{prefix}/plan"])["binding"] == "dispatch:C9"
        assert json.loads(got[f"{prefix}/pools/a3/cmd"])["target_kw"] == 0.0  # same seq, again


@pytest.mark.parametrize("damage", ["garbage", "newer_schema", "parent_is_a_file"])
async def test_run_refuses_a_store_it_cannot_trust(tmp_path: Path, damage: str) -> None:
    """CONTRACT 7: a corrupt or newer-schema store stops the start with exit 1, naming the file;
    it is never reset silently."""
    import sqlite3

    from controller.sim.configs import free_port

    state_dir = tmp_path / "state"
    state_dir.mkdir()
    db = state_dir / "curtaild.db"
    if damage == "garbage":
        db.write_bytes(b"this is not a database, it is a shopping list\n" * 200)
    elif damage == "newer_schema":
        with sqlite3.connect(db) as conn:
            conn.execute("PRAGMA user_version = 999")
    else:
        state_dir = tmp_path / "a-file"
        state_dir.write_text("")
        db = state_dir / "curtaild.db"
    before = db.read_bytes() if db.is_file() else None
    config = tmp_path / "c.toml"
    config.write_text(
        f"[site]\npoi_limit_kw = 1000\n[mqtt]\nport = {free_port()}\n"
        f'[control]\nstate_dir = "{state_dir}"\n[metrics]\nlisten = "127.0.0.1:{free_port()}"\n'
    )
    code, _, err = await cli("run", "--config", str(config))
    assert code == 1, err
    assert str(db if damage != "parent_is_a_file" else state_dir) in err
    assert "Traceback" not in err
    if before is not None:
        assert db.read_bytes() == before  # left exactly as it was
