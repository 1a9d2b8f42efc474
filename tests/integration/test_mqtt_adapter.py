"""MqttSession, the one-shot helpers and the embedded broker against real brokers on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from controller.adapters.broker import EmbeddedBroker
from controller.adapters.mqtt import BrokerUnreachable, MqttSession, OutMessage
from controller.adapters.mqtt_oneshot import fetch_retained, publish_once, request_reply
from controller.config import MqttConfig
from controller.sim.configs import free_port
from tests.support import (
    MosquittoBroker,
    MqttProbe,
    Received,
    TcpProxy,
    eventually,
    running,
)

OFFLINE_WILL = b'{"state":"offline"}'


class Inbox:
    """What a session's callbacks saw."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.connects = 0

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        self.messages.append((topic, payload, retain))

    async def wait(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> None:
        await eventually(lambda: any(m[:2] == (topic, payload) for m in self.messages), timeout_s)


def session_with_status(cfg: MqttConfig, inbox: Inbox, outbox_limit: int = 100) -> MqttSession:
    """A session that, like the daemon, republishes its retained status on every connect."""
    prefix = cfg.topic_prefix

    async def on_connect() -> None:
        inbox.connects += 1
        session.publish(f"{prefix}/status", b'{"state":"online"}', retain=True)

    session = MqttSession(
        cfg,
        [f"{prefix}/in/#"],
        inbox.on_message,
        on_connect,
        f"{prefix}/status",
        OFFLINE_WILL,
        outbox_limit=outbox_limit,
    )
    return session


def is_payload(topic: str, payload: bytes) -> Callable[[Received], bool]:
    return lambda m: m.topic == topic and m.payload == payload


async def test_round_trip_and_retained_replay(mqtt_cfg: MqttConfig, probe: MqttProbe) -> None:
    prefix = mqtt_cfg.topic_prefix
    await probe.publish(f"{prefix}/in/old", "kept", retain=True)
    inbox = Inbox()
    async with running(session_with_status(mqtt_cfg, inbox)) as session:
        await inbox.wait(f"{prefix}/in/old", b"kept")
        assert (f"{prefix}/in/old", b"kept", True) in inbox.messages  # replayed from the store
        await probe.publish(f"{prefix}/in/live", "now")
        await inbox.wait(f"{prefix}/in/live", b"now")
        assert (f"{prefix}/in/live", b"now", False) in inbox.messages
        assert session.publish(f"{prefix}/out", "hello")
        await probe.wait_for(is_payload(f"{prefix}/out", b"hello"))
        assert await session.flush(2.0)
    assert inbox.connects == 1


async def test_handler_errors_never_stop_the_session(
    mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    seen: list[bytes] = []

    def on_message(topic: str, payload: bytes, retain: bool) -> None:
        if payload == b"boom":
            raise ValueError("bad payload")
        seen.append(payload)

    session = MqttSession(mqtt_cfg, [f"{mqtt_cfg.topic_prefix}/in"], on_message)
    async with running(session):
        await probe.publish(f"{mqtt_cfg.topic_prefix}/in", "boom")
        await probe.publish(f"{mqtt_cfg.topic_prefix}/in", "fine")
        await eventually(lambda: seen == [b"fine"])
    assert session.stats.callback_errors == 1


async def test_reconnects_after_broker_restart(fresh_broker: MosquittoBroker) -> None:
    cfg = fresh_broker.mqtt_config()
    prefix = cfg.topic_prefix
    inbox = Inbox()
    async with running(session_with_status(cfg, inbox)) as session:
        await asyncio.to_thread(fresh_broker.restart)  # retained store is gone with it
        await eventually(lambda: inbox.connects >= 2)
        assert session.stats.connects == 2
        async with MqttProbe(fresh_broker.host, fresh_broker.port, [f"{prefix}/#"]) as probe:
            # on_connect ran again: the retained status is back although the broker forgot it.
            status = await probe.wait_for(lambda m: m.topic == f"{prefix}/status")
            assert status.retain
            assert status.json() == {"state": "online"}
            # Resubscribed: new messages reach the session again.
            await probe.publish(f"{prefix}/in/x", "after-restart")
            await inbox.wait(f"{prefix}/in/x", b"after-restart")


async def test_reconnect_hooks_count_losses_and_returns(fresh_broker: MosquittoBroker) -> None:
    """The daemon's `curtaild_mqtt_reconnects_total` and `curtaild_mqtt_connected` come from
    these hooks: the first connect and a close() are neither a loss nor a reconnect."""
    events: list[str] = []
    session = MqttSession(
        fresh_broker.mqtt_config(), [], lambda _t, _p, _r: None,
        on_reconnect=lambda: events.append("reconnect"),
        on_link_lost=lambda: events.append("lost"),
    )  # fmt: skip
    async with running(session):
        await session.wait_connected(5.0)
        await asyncio.to_thread(fresh_broker.restart)
        await eventually(lambda: events == ["lost", "reconnect"])
        await session.wait_connected(5.0)
    assert events == ["lost", "reconnect"]


async def test_will_on_abrupt_loss_and_offline_on_close(
    mosquitto_broker: MosquittoBroker, mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    prefix = mqtt_cfg.topic_prefix
    status = f"{prefix}/status"
    async with TcpProxy(mosquitto_broker.host, mosquitto_broker.port) as proxy:
        cfg = mqtt_cfg.model_copy(update={"port": proxy.port})
        inbox = Inbox()
        session = session_with_status(cfg, inbox)
        task = asyncio.create_task(session.run())
        await session.wait_connected(5)
        await probe.wait_for(is_payload(status, b'{"state":"online"}'))
        mark = probe.mark()
        proxy.cut()  # the broker sees the client vanish: it must send the will
        await probe.wait_for(is_payload(status, OFFLINE_WILL), since=mark)
        proxy.restore()
        mark = probe.mark()
        await probe.wait_for(is_payload(status, b'{"state":"online"}'), since=mark)
        # A clean close: the broker discards the will, so close() publishes offline itself.
        mark = probe.mark()
        final = OutMessage(status, b'{"state":"offline","reason":"shutdown"}', retain=True)
        await session.close([final])
        await asyncio.wait_for(task, 5)
        await probe.wait_for(is_payload(status, final.payload), since=mark)
        await asyncio.sleep(0.2)
        assert [m.payload for m in probe.on(status, since=mark)] == [final.payload]  # no will too
    assert inbox.connects == 2


async def test_silent_dead_link_is_noticed_by_keepalive(
    mosquitto_broker: MosquittoBroker, mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    status = f"{mqtt_cfg.topic_prefix}/status"
    async with TcpProxy(mosquitto_broker.host, mosquitto_broker.port) as proxy:
        cfg = mqtt_cfg.model_copy(update={"port": proxy.port, "keepalive_s": 1})
        inbox = Inbox()
        async with running(session_with_status(cfg, inbox)):
            await probe.wait_for(is_payload(status, b'{"state":"online"}'))
            mark = probe.mark()
            proxy.freeze()  # no FIN, no RST: only keepalive can tell
            await probe.wait_for(is_payload(status, OFFLINE_WILL), timeout_s=5, since=mark)
            await eventually(lambda: inbox.connects == 2, timeout_s=6)
            await probe.wait_for(is_payload(status, b'{"state":"online"}'), since=mark)


async def test_publish_while_disconnected(
    mosquitto_broker: MosquittoBroker, mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    prefix = mqtt_cfg.topic_prefix
    async with TcpProxy(mosquitto_broker.host, mosquitto_broker.port) as proxy:
        cfg = mqtt_cfg.model_copy(update={"port": proxy.port})
        inbox = Inbox()
        async with running(session_with_status(cfg, inbox, outbox_limit=3)) as session:
            proxy.cut()
            await eventually(lambda: not session.connected)
            # Events queue (bounded, oldest dropped); retained state does not: on_connect
            # republishes the current value instead.
            for n in range(5):
                assert session.publish(f"{prefix}/events", f"e{n}")
            assert not session.publish(f"{prefix}/plan", "stale", retain=True)
            assert not await session.flush(0.05)
            assert session.stats.dropped_overflow == 2
            assert session.stats.dropped_retained == 1
            mark = probe.mark()
            proxy.restore()
            await probe.wait_for(is_payload(f"{prefix}/events", b"e4"), since=mark)
            assert await session.flush(2.0)
    # In order, the two oldest dropped, each exactly once.
    assert [m.payload for m in probe.on(f"{prefix}/events")] == [b"e2", b"e3", b"e4"]
    assert probe.on(f"{prefix}/plan") == []


async def test_cancelled_session_leaves_offline_status(
    mqtt_cfg: MqttConfig, probe: MqttProbe
) -> None:
    inbox = Inbox()
    session = session_with_status(mqtt_cfg, inbox)
    task = asyncio.create_task(session.run())
    await session.wait_connected(5)
    status = f"{mqtt_cfg.topic_prefix}/status"
    await probe.wait_for(is_payload(status, b'{"state":"online"}'))
    task.cancel()  # what a TaskGroup does when a sibling task fails
    await asyncio.gather(task, return_exceptions=True)
    await probe.wait_for(lambda m: m.topic == status and m.payload == OFFLINE_WILL)


async def test_unreachable_broker_gives_one_clear_error() -> None:
    port = free_port()  # nothing listens there
    cfg = MqttConfig(host="127.0.0.1", port=port, client_id="t")
    session = MqttSession(cfg, [], lambda _t, _p, _r: None)
    task = asyncio.create_task(session.run())
    with pytest.raises(BrokerUnreachable) as caught:
        await session.wait_connected(0.5)
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "CURTAILD_MQTT__HOST" in str(caught.value)
    assert session.stats.connect_failures >= 1
    await session.close()
    await asyncio.wait_for(task, 2)
    for call in (
        fetch_retained(cfg, ["x/#"], 1.0),
        publish_once(cfg, "x/y", "z"),
        request_reply(cfg, "x/set", "{}", "x/state", 1.0),
    ):
        with pytest.raises(BrokerUnreachable, match=f"127.0.0.1:{port}"):
            await call


async def test_login_from_config_and_a_clear_refusal(
    make_broker: Callable[..., MosquittoBroker],
) -> None:
    broker = make_broker(users={"curtaild": "s3cret"})
    good = broker.mqtt_config(username="curtaild", password=SecretStr("s3cret"))
    await publish_once(good, f"{good.topic_prefix}/x", "ok", retain=True)
    assert await fetch_retained(good, [f"{good.topic_prefix}/x"], 2.0) == {
        f"{good.topic_prefix}/x": b"ok"
    }
    bad = good.model_copy(update={"password": SecretStr("wrong")})
    with pytest.raises(BrokerUnreachable, match="refused the login") as caught:
        await fetch_retained(bad, ["#"], 2.0)
    assert "password_file" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert "wrong" not in str(caught.value)


async def test_one_shot_helpers(mqtt_cfg: MqttConfig, probe: MqttProbe) -> None:
    prefix = mqtt_cfg.topic_prefix
    await publish_once(mqtt_cfg, f"{prefix}/status", '{"state":"online"}', retain=True)
    await publish_once(mqtt_cfg, f"{prefix}/plan", '{"mining_cap_kw":1}', retain=True)
    got = await fetch_retained(mqtt_cfg, [f"{prefix}/status", f"{prefix}/plan"], 3.0)
    assert got == {
        f"{prefix}/status": b'{"state":"online"}',
        f"{prefix}/plan": b'{"mining_cap_kw":1}',
    }

    # A stand-in daemon answering override/set on the retained override/state topic.
    async def answer(m: Received) -> None:
        state = {"active": True, "mode": json.loads(m.payload)["mode"]}
        await probe.publish(f"{prefix}/override/state", json.dumps(state), retain=True)

    await probe.publish(f"{prefix}/override/state", '{"active":false}', retain=True)
    mark = probe.mark()
    reply_task = asyncio.create_task(
        request_reply(
            mqtt_cfg, f"{prefix}/override/set", '{"mode":"curtail"}', f"{prefix}/override/state"
        )
    )
    request = await probe.wait_for(lambda m: m.topic.endswith("/override/set"), since=mark)
    await answer(request)
    reply = await reply_task
    assert reply is not None
    assert json.loads(reply) == {"active": True, "mode": "curtail"}  # not the old retained one


async def test_embedded_broker_serves_sessions_on_loopback() -> None:
    async with EmbeddedBroker(0) as broker:
        assert broker.bound_address() == ("127.0.0.1", broker.port)
        cfg = MqttConfig(host="127.0.0.1", port=broker.port, client_id="demo", topic_prefix="d")
        inbox = Inbox()
        async with running(session_with_status(cfg, inbox)) as session:
            got = await fetch_retained(cfg, ["d/status"], 2.0)
            assert got == {"d/status": b'{"state":"online"}'}
            await publish_once(cfg, "d/in/cmd", "go")
            await inbox.wait("d/in/cmd", b"go")
            assert session.connected
        assert await fetch_retained(cfg, ["d/status"], 2.0) == {"d/status": OFFLINE_WILL}
