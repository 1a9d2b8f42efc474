"""One-shot MQTT clients for the CLI: connect, do one thing, disconnect.

`curtaild status` and `curtaild override` run once and exit, so they need none of
`MqttSession`'s reconnect loop or outbox: any broker trouble is a `BrokerUnreachable` for the
command to print. Each call uses a client id of its own (see `_oneshot`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable

import aiomqtt

from controller.adapters.mqtt import BrokerUnreachable, make_client
from controller.config import MqttConfig


@contextlib.asynccontextmanager
async def _oneshot(cfg: MqttConfig, timeout_s: float) -> AsyncIterator[aiomqtt.Client]:
    # A client id of its own: reusing the daemon's would make the broker drop the daemon.
    client = make_client(cfg, f"{cfg.client_id}-cli-{secrets.token_hex(4)}", timeout_s=timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            await client.__aenter__()
    except TimeoutError:
        raise BrokerUnreachable(cfg.host, cfg.port, f"no answer within {timeout_s:g} s") from None
    except aiomqtt.MqttError as exc:
        raise BrokerUnreachable(cfg.host, cfg.port, str(exc)) from None
    try:
        yield client
    except aiomqtt.MqttError as exc:
        raise BrokerUnreachable(cfg.host, cfg.port, f"connection lost: {exc}") from None
    finally:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.__aexit__(None, None, None)


async def fetch_retained(
    cfg: MqttConfig, topics: Iterable[str], timeout_s: float = 5.0, *, quiet_s: float = 0.3
) -> dict[str, bytes]:
    """Topic -> payload of what the broker holds for `topics` (wildcards allowed).

    The broker replays retained messages right after SUBACK; collection stops after `quiet_s`
    without a message, or at `timeout_s` in all. A live message on a topic replaces its entry.
    Raises BrokerUnreachable.
    """
    got: dict[str, bytes] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with _oneshot(cfg, timeout_s) as client:
        await client.subscribe([(topic, 1) for topic in topics], timeout=timeout_s)
        messages = client.messages
        while (left_s := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(anext(messages), min(quiet_s, left_s))
            except TimeoutError:
                break
            if message.payload:
                got[message.topic.value] = message.payload
    return got


async def publish_once(
    cfg: MqttConfig,
    topic: str,
    payload: bytes | str,
    retain: bool = False,
    *,
    qos: int = 1,
    timeout_s: float = 5.0,
) -> None:
    """Connect, publish one message, wait for its PUBACK, disconnect. Raises BrokerUnreachable."""
    async with _oneshot(cfg, timeout_s) as client:
        await client.publish(topic, payload, qos=qos, retain=retain, timeout=timeout_s)


async def request_reply(
    cfg: MqttConfig,
    topic: str,
    payload: bytes | str,
    reply_topic: str,
    timeout_s: float = 5.0,
) -> bytes | None:
    """Publish `payload`, return the first live message on `reply_topic` (None: no reply in time).

    For `curtaild override`: the daemon answers on a retained state topic. The broker replays the
    old retained answer at subscribe time with retain=1 and sends new ones to an established
    subscription with retain=0, so only the latter counts as the reply.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with _oneshot(cfg, timeout_s) as client:
        await client.subscribe(reply_topic, qos=1, timeout=timeout_s)
        await client.publish(topic, payload, qos=1, timeout=timeout_s)
        messages = client.messages
        while (left_s := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(anext(messages), left_s)
            except TimeoutError:
                return None
            if not message.retain and message.topic.matches(reply_topic):
                return message.payload
    return None
