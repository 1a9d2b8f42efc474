"""`curtaild audit --dispatch ID` against the real daemon's store, read while it is running."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from controller.config import MqttConfig
from tests.integration.documents import ecrs
from tests.integration.live import cli
from tests.integration.site import FLEET_KW, live_site


async def test_audit_proves_an_ecrs_deployment_while_the_daemon_runs(
    mqtt_cfg: MqttConfig, tmp_path: Path
) -> None:
    async with live_site(mqtt_cfg, tmp_path) as site:
        await site.run_every_pool(FLEET_KW)
        mark = site.probe.mark()
        await site.dispatch(ecrs("E-AUDIT", 5.0))
        await site.ack("E-AUDIT", "accepted", since=mark)
        complied = await site.ack("E-AUDIT", "complied", since=mark)

        config = str(site.config_path)
        code, out, err = await cli("audit", "--config", config, "--dispatch", "E-AUDIT")
        assert code == 0, err
        assert site.alive(), "the daemon stopped while its store was read"
        rows = list(csv.DictReader(io.StringIO(out)))
        first = rows[0]
        assert (first["kind"], first["id"]) == ("dispatch", "E-AUDIT")
        instruction = json.loads(first["fields"])
        assert instruction["type"] == "ECRS" and instruction["mw"] == 5.0
        assert instruction["mining_kw_at_receipt"] == pytest.approx(FLEET_KW)
        acks = [json.loads(r["fields"]) for r in rows if r["kind"] == "ack"]
        assert [a["status"] for a in acks] == ["accepted", "complied"]
        assert acks[0]["target_kw"] == pytest.approx(FLEET_KW - 5000)
        assert acks[-1]["measured_kw"] == pytest.approx(complied["measured_kw"])
        assert acks[-1]["measured_kw"] <= acks[0]["target_kw"]
        kinds = {r["kind"] for r in rows}
        assert {"decision", "commands"} <= kinds, kinds
        assert rows[-1]["kind"] == "ack"  # it stops at compliance
        assert f"baseline (mining at receipt) {instruction['mining_kw_at_receipt']} kW" in err
        assert "complied" in err

        code, out, _ = await cli("audit", "--config", config, "--format", "jsonl", "--kind", "ack")
        assert code == 0
        statuses = [json.loads(line)["status"] for line in out.splitlines()]
        assert statuses[:2] == ["accepted", "complied"]
