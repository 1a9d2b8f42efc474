"""Secured transport (issue 6, point 6): the real daemon over TLS with a login, and the ACL
that deploy/mosquitto/render_acl.py renders enforced by a real mosquitto.

A publish the ACL forbids looks like success to its publisher (the broker drops it), so every
denial is proven from the receiving side: a witness logged in as the controller sees nothing,
and the daemon acks nothing, counts no rejection, changes no state and moves no device.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from controller.sim.configs import free_port
from tests.integration.live import cli
from tests.integration.secure_site import (
    A1_AGENT,
    CONTROLLER,
    FEED,
    OPERATOR,
    PASSWORDS,
    QSE,
    SecureSite,
    device_writes,
    rejected_total,
    render_acl,
    sample,
    scrape,
    secure_config,
    secure_site,
    start_broker,
    stop_daemon,
    tls_session_error,
)
from tests.integration.site import ROOT, iso_now, sced, spawn_daemon
from tests.support import (
    MOSQUITTO_MISSING,
    MosquittoBroker,
    MqttProbe,
    ProbeTls,
    eventually,
    find_mosquitto,
)
from tests.tls import OPENSSL_MISSING, Pki, find_openssl, make_pki

# deploy/mosquitto/curtaild.conf's own instruction for enabling TLS (a sed -E expression).
UNCOMMENT_TLS = re.compile(r"^#(listener 8883|certfile|keyfile|cafile|tls_version)", re.MULTILINE)
FLEET_KW = 11216.0  # every pool of the integration site running (tests/integration/site.py)


@pytest.fixture(scope="session")
def pki() -> Iterator[Pki]:
    openssl = find_openssl()
    if openssl is None:
        pytest.fail(OPENSSL_MISSING, pytrace=False)
    made = make_pki(openssl)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(scope="session")
def mosquitto() -> str:
    binary = find_mosquitto()
    if binary is None:
        pytest.fail(MOSQUITTO_MISSING, pytrace=False)
    return binary


def override(mode: str, operator: str, nonce: str, **extra: Any) -> str:
    return json.dumps({"mode": mode, "ttl_s": 600, "operator": operator, "reason": "test",
                       "issued_at": iso_now(), "nonce": nonce, **extra})  # fmt: skip


def _bytes(payload: str | bytes) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


def clr(dispatch_id: str, mw: float) -> str:
    return json.dumps({"id": dispatch_id, "type": "CLR", "mw": mw, "notified_at": iso_now()})


async def running_site(site: SecureSite) -> None:
    """Price 20 $/MWh from the feed account: every pool runs; wait for the site to settle."""
    async with site.party(FEED) as feed:
        await feed.publish(f"{site.prefix}-ercot/prices/rt", sced(20.0))
    await eventually(lambda: site.sim.mining_kw() == pytest.approx(FLEET_KW), 5)
    await site.operator.wait_json(f"{site.prefix}/plan", lambda p: p["price_usd_per_mwh"] == 20.0)
    await asyncio.sleep(0.5)  # commands and confirmations of the start have all landed


def test_shipped_acl_is_the_rendering_of_the_example_config() -> None:
    """deploy/mosquitto/curtaild.acl.example is what render_acl.py makes of config.example.toml,
    so the ACL proven below against a real mosquitto is the file we ship."""
    result = subprocess.run(
        [sys.executable, "deploy/mosquitto/render_acl.py", "--config", "config.example.toml",
         "--operator", "op-jdoe", "--monitor", "monitor"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shipped = (ROOT / "deploy/mosquitto/curtaild.acl.example").read_text(encoding="utf-8")
    assert result.stdout == shipped, "re-render deploy/mosquitto/curtaild.acl.example"
    # An mqtt pool nobody serves would never report: the script refuses rather than renders.
    result = subprocess.run(
        [sys.executable, "deploy/mosquitto/render_acl.py", "--config", "config.example.toml",
         "--agent", "row-1=c02"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "'c02', which is not a driver = \"mqtt\" pool" in result.stderr
    assert "pool 'c01' (driver = \"mqtt\") has no agent account" in result.stderr


async def test_authorised_parties_reach_the_controller_over_tls(
    mosquitto: str, pki: Pki, tmp_path: Path
) -> None:
    async with secure_site(mosquitto, pki, tmp_path) as site:
        prefix = site.prefix
        await running_site(site)
        # The operator reads what the controller publishes, retained and live.
        plan = await site.operator.wait_json(f"{prefix}/plan")
        assert set(plan["pools"]) == {"a1", "a2", "a3", "plc1", "px"}
        # The feed account reads its own retained record back: what `curtaild feed-ercot`
        # does at start so that a restart neither repeats nor skips a record.
        async with site.party(FEED) as feed:
            await feed.publish(f"{prefix}-ercot/prices/rt", sced(20.0), retain=True)
        async with site.party(FEED, [site.config.feeds.price_topic]) as feed:
            retained = await feed.wait_json(f"{prefix}-ercot/prices/rt")
        assert retained["LMP"] == 20.0

        # The operator's own `curtaild override`, logged in as op-jdoe with a client certificate
        # through the listener that requires one: an unsigned override (no hmac_key_file here)
        # takes hold and the pools are commanded down.
        assert site.broker.mtls_port is not None
        _, op_path = secure_config(tmp_path, site.broker.mtls_port, pki.ca.cert, user=OPERATOR,
                                   prefix=prefix, tls_cert_file=str(pki.client.cert),
                                   tls_key_file=str(pki.client.key))  # fmt: skip
        mark = site.operator.mark()
        code, out, err = await cli("override", "--config", str(op_path), "curtail", "--ttl",
                                   "10m", "--reason", "breaker work", "--operator", "jdoe")  # fmt: skip
        assert code == 0, err
        state = json.loads(out)
        assert (state["active"], state["mode"], state["operator"]) == (True, "curtail", "jdoe")
        cmd = await site.operator.wait_json(f"{prefix}/pools/a1/cmd", since=mark)
        assert (cmd["target_kw"], cmd["reason"]) == (0.0, "override")
        await eventually(lambda: site.sim.mining_kw() == 0.0, 5)

        # Pool agent a1 reads its own command and nobody else's.
        async with site.party(A1_AGENT, [f"{prefix}/pools/+/cmd"]) as agent:
            own = await agent.wait_json(f"{prefix}/pools/a1/cmd", lambda c: c["target_kw"] == 0)
            assert own["seq"] == cmd["seq"]
            await asyncio.sleep(0.3)  # the retained a2 and a3 commands would have come by now
            assert {m.topic for m in agent.messages} == {f"{prefix}/pools/a1/cmd"}

        # The QSE gateway's instruction is acked to it.
        async with site.party(QSE, [f"{prefix}/dispatch/ack", f"{prefix}/status"]) as qse:
            status = await qse.wait_json(f"{prefix}/status")
            assert status["state"] == "online"
            await qse.publish(site.config.feeds.dispatch_topic, clr("QSE-1", 5.0))
            ack = await qse.wait_json(f"{prefix}/dispatch/ack", lambda a: a["id"] == "QSE-1")
            assert ack["status"] in {"accepted", "complied"}

        # `curtaild status` as the operator reads it all back.
        code, out, err = await cli("status", "--config", str(op_path))
        assert code == 0, err
        assert "status:   online" in out
        assert "override: curtail" in out
        assert "QSE-1" in out


def shipped_conf(pki: Pki, port: int, tls_port: int) -> str:
    """deploy/mosquitto/curtaild.conf with its TLS block uncommented by the README's sed, its
    paths pointing at this test's files and its listeners on loopback test ports."""
    text = (ROOT / "deploy/mosquitto/curtaild.conf").read_text(encoding="utf-8")
    text = UNCOMMENT_TLS.sub(r"\1", text)
    replacements = {
        "/etc/mosquitto/curtaild.passwd": "{dir}/passwd",
        "/etc/mosquitto/curtaild.acl": "{dir}/acl",
        "/etc/mosquitto/certs/broker.crt": str(pki.broker.cert),
        "/etc/mosquitto/certs/broker.key": str(pki.broker.key),
        "/etc/mosquitto/ca_certificates/site-ca.crt": str(pki.ca.cert),
        "listener 1883 127.0.0.1\n": f"listener {port} 127.0.0.1\n",
        "listener 8883\n": f"listener {tls_port} 127.0.0.1\n",  # all interfaces on a site
    }
    for shipped, here in replacements.items():
        assert shipped in text, f"deploy/mosquitto/curtaild.conf no longer has {shipped!r}"
        text = text.replace(shipped, here)
    return text


async def test_the_shipped_broker_config_serves_tls_once_uncommented(
    mosquitto: str, pki: Pki, tmp_path: Path
) -> None:
    port, tls_port = free_port(), free_port()
    config, path = secure_config(tmp_path, tls_port, pki.ca.cert)
    conf = shipped_conf(pki, port, tls_port)
    broker = MosquittoBroker(mosquitto, port, PASSWORDS, tls_port=tls_port, acl=render_acl(path),
                             conf=conf)  # fmt: skip
    try:
        broker.start()
        tls = ProbeTls(pki.ca.cert)
        login = (CONTROLLER, PASSWORDS[CONTROLLER])
        # The controller on loopback (plain) and over TLS, under the ACL on both; nobody
        # anonymous on either.
        async with (
            MqttProbe(broker.host, port, ["#"], login=login) as plain,
            MqttProbe(broker.host, tls_port, ["#"], login=login, tls=tls) as secure,
        ):
            await secure.publish("not/granted", b"dropped")
            await secure.publish(f"{config.mqtt.topic_prefix}/status", b"over TLS")
            await plain.wait_for(lambda m: m.payload == b"over TLS")
            assert [m.payload for m in plain.messages] == [b"over TLS"]
        for listener, probe_tls in ((port, None), (tls_port, tls)):
            with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
                async with MqttProbe(broker.host, listener, [], tls=probe_tls):
                    pass
        assert "Error" not in broker.log_text()
    finally:
        broker.cleanup()


async def test_clients_without_a_valid_login_are_refused_at_connect(
    mosquitto: str, pki: Pki, tmp_path: Path
) -> None:
    tls_port = free_port()
    _, path = secure_config(tmp_path, tls_port, pki.ca.cert)
    broker = start_broker(mosquitto, pki, tls_port, render_acl(path))
    try:
        assert broker.tls_port is not None
        tls = ProbeTls(pki.ca.cert)
        attempts = [
            (broker.tls_port, None, tls),  # anonymous
            (broker.port, None, None),  # anonymous on the plain loopback listener too
            (broker.tls_port, (OPERATOR, "not-the-password"), tls),
            (broker.tls_port, ("mallory", "guess"), tls),
        ]
        for port, login, probe_tls in attempts:
            with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
                async with MqttProbe(broker.host, port, [], login=login, tls=probe_tls):
                    pass
        assert broker.log_text().count("disconnected, not authorised") == len(attempts)

        # `curtaild status` with a wrong password: exit 1, one line naming the login and the fix.
        _, op_path = secure_config(tmp_path, tls_port, pki.ca.cert, user=OPERATOR)
        (tmp_path / f"{OPERATOR}.password").write_text("not-the-password\n")
        code, _, err = await cli("status", "--config", str(op_path))
        assert code == 1
        assert len(err.strip().splitlines()) == 1, err
        assert f"127.0.0.1:{tls_port} refused the login" in err
        assert "Check [mqtt] username and password_file" in err

        # The listener that requires a client certificate (used by `curtaild status` above)
        # refuses a client without one, before any login.
        assert broker.mtls_port is not None
        error = await asyncio.to_thread(tls_session_error, broker.mtls_port, pki.ca.cert)
        assert "CERTIFICATE_REQUIRED" in error
        assert "peer did not return a certificate" in broker.log_text()
    finally:
        broker.cleanup()


async def test_unauthorised_publishes_never_reach_the_controller(
    mosquitto: str, pki: Pki, tmp_path: Path
) -> None:
    async with secure_site(mosquitto, pki, tmp_path) as site:
        prefix, feeds = site.prefix, site.config.feeds
        await running_site(site)
        before_writes = device_writes(site.sim)
        before_metrics = await scrape(site)
        override_set, dispatch = f"{prefix}/override/set", feeds.dispatch_topic
        a2_state = json.dumps({"seq": 999999, "power_kw": 0.0, "available_kw": 0.0,
                               "online": True, "at": iso_now()})  # fmt: skip
        # Valid accounts, each publishing what only another party may: every payload would act
        # (or be counted as rejected) if it arrived.
        forged: dict[str, list[tuple[str, str | bytes]]] = {
            QSE: [(override_set, override("curtail", "FORGED-qse", "f1")),
                  (override_set, b"FORGED{"),
                  (f"{prefix}-ercot/prices/rt", sced(5000.0)),
                  (f"{prefix}/pools/a3/cmd", b'{"seq":999999,"target_kw":0.0,"reason":"FORGED"}')],
            OPERATOR: [(dispatch, clr("FORGED-op", 0.0)), (dispatch, b"FORGED{"),
                       (f"{prefix}/pools/a3/cmd",
                        b'{"seq":999999,"target_kw":0.0,"reason":"FORGED"}')],
            A1_AGENT: [(f"{prefix}/pools/a2/state", a2_state),
                       (f"{prefix}/pools/a2/state", b"FORGED{"),
                       (f"{prefix}/pools/a1/cmd", b'{"seq":999999,"target_kw":0.0}'),
                       (override_set, override("run", "FORGED-agent", "f2")),
                       (dispatch, clr("FORGED-agent", 0.0))],
            FEED: [(dispatch, clr("FORGED-feed", 0.0)),
                   (override_set, override("curtail", "FORGED-feed", "f3"))],
        }  # fmt: skip
        forged_payloads = {
            _bytes(payload) for messages in forged.values() for _, payload in messages
        }
        seen_from, plans_from = site.witness.mark(), site.operator.mark()
        for user, messages in forged.items():
            async with site.party(user) as client:
                for topic, payload in messages:
                    await client.publish(topic, payload)  # PUBACKed: the broker has dropped it

        # Barriers from the right accounts, after every forged PUBACK: the broker handles them
        # later, so anything forged it had passed on would have reached the daemon first.
        async with site.party(OPERATOR) as operator, site.party(QSE) as qse:
            await operator.publish(override_set, b"{barrier")  # rejected: counted, no device
            await qse.publish(dispatch, json.dumps({"id": "BARRIER", "type": "WARP",
                                                    "notified_at": iso_now()}))  # fmt: skip
        await site.operator.wait_json(f"{prefix}/dispatch/ack", lambda a: a["id"] == "BARRIER",
                                      since=plans_from)  # fmt: skip
        await site.operator.wait_json(f"{prefix}/events", lambda e: e["event"] == "rejected"
                                      and e["feed"] == "override", since=plans_from)  # fmt: skip
        await asyncio.sleep(0.3)

        # The receiving side: the controller's own account saw the barriers, nothing forged.
        arrived = site.witness.messages[seen_from:]
        assert {m.topic for m in arrived} >= {override_set, dispatch}
        assert not [m for m in arrived if m.payload in forged_payloads]
        # The daemon: no ack, no override, no rejection but the two barriers, a2 unchanged.
        acks = [m.json()["id"] for m in site.operator.on(f"{prefix}/dispatch/ack")]
        assert acks == ["BARRIER"]
        states = [m.json() for m in site.operator.on(f"{prefix}/override/state")]
        assert not [s for s in states if s["active"]]
        metrics = await scrape(site)
        assert rejected_total(metrics) == rejected_total(before_metrics) + 2
        assert sample(metrics, 'curtaild_pool_power_watts{pool="a2"}') == pytest.approx(3e6)
        assert sample(metrics, "curtaild_override_active") == 0.0
        plans = [m.json() for m in site.operator.on(f"{prefix}/plan", since=plans_from)]
        assert all(p["pools"]["a2"]["state"] == "running" for p in plans)
        assert all(p["mining_measured_kw"] == pytest.approx(FLEET_KW) for p in plans)
        # And no device moved: no PDU, PLC or agent was written, mining runs as before.
        assert device_writes(site.sim) == before_writes
        assert site.sim.mining_kw() == pytest.approx(FLEET_KW)
        assert site.process.poll() is None


async def test_a_broker_certificate_from_another_ca_fails_the_handshake(
    mosquitto: str, pki: Pki, tmp_path: Path
) -> None:
    tls_port = free_port()
    _, path = secure_config(tmp_path, tls_port, pki.other_ca.cert)  # trusts the wrong CA
    broker = start_broker(mosquitto, pki, tls_port, render_acl(path))
    process = None
    try:
        # The CLI: exit 1 and one line naming the broker, the TLS handshake and what to check.
        code, _, err = await cli("status", "--config", str(path))
        assert code == 1
        assert len(err.strip().splitlines()) == 1, err
        assert f"127.0.0.1:{tls_port} failed the TLS handshake" in err
        assert "certificate verify failed" in err
        assert "Check [mqtt] tls_ca_file" in err

        # The daemon keeps trying (with backoff) and stays up; the broker sees each attempt fail.
        refused_before = broker.log_text().count("alert unknown ca")
        log_path = tmp_path / "curtaild.log"
        process = spawn_daemon(path, log_path)
        await eventually(
            lambda: broker.log_text().count("alert unknown ca") >= refused_before + 3, 10, 0.1
        )
        assert process.poll() is None
        log = log_path.read_text(errors="replace")
        assert f"broker 127.0.0.1:{tls_port}" in log
        assert "CERTIFICATE_VERIFY_FAILED" in log
        assert "Traceback" not in log
        assert await stop_daemon(process) == 0
    finally:
        if process is not None:
            await stop_daemon(process)
        broker.cleanup()
