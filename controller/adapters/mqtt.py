"""The one MQTT session of a process: an aiomqtt client in a reconnect loop the app owns.

`MqttSession.run()` follows aiomqtt's docs/reconnection.md: one reusable `Client`, `async with`
per connection, resubscribe on every connect, backoff 0.2 s .. 10 s. Messages go to a
synchronous callback that only stores them (DESIGN 10); `publish()` never blocks or raises.

What survives a disconnect (the outbox policy):
- non-retained messages (events, acks, price records) wait in a bounded FIFO and go out in order
  after the reconnect; when it is full the oldest is dropped (`stats.dropped_overflow`).
- retained messages are never carried across a disconnect: published while disconnected, or still
  queued when the link drops, they are dropped (`stats.dropped_retained`). Their owner republishes
  its current retained state from `on_connect` (CONTRACT 7); a queued copy could only repeat that
  or, flushed late, overwrite it with an older value.
- QoS 1 messages paho already holds when the link drops are resent by paho itself after the
  reconnect (same client, DUP set): at-least-once, as QoS 1 promises.

The CLI's connect-do-one-thing-disconnect clients are in `mqtt_oneshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiomqtt

from controller.backoff import BackoffPolicy
from controller.config import MqttConfig
from controller.errors import CurtaildError

logger = logging.getLogger(__name__)

# Reconnect waits: 0.2 s after a session ends or a first failed connect, doubling to 10 s.
RECONNECT_BACKOFF = BackoffPolicy(initial_s=0.2, factor=2.0, max_s=10.0)
MAX_QUEUED = 10_000


class BrokerUnreachable(CurtaildError):  # noqa: N818 (the name the CLI and docs use)
    """The broker cannot be reached or refused us: one message naming host:port and the fix."""

    def __init__(self, host: str, port: int, detail: str) -> None:
        self.host = host
        self.port = port
        self.detail = detail
        what, fix = _explain(detail)
        super().__init__(f"MQTT broker {host}:{port} {what}: {detail}. {fix}")


def _explain(detail: str) -> tuple[str, str]:
    text = detail.lower()
    if "password" in text or "authori" in text:
        return "refused the login", (
            "Check [mqtt] username and password_file (or env CURTAILD_MQTT__PASSWORD) "
            "against the broker's password file and ACL."
        )
    if "ssl" in text or "certificate" in text or "tls" in text:
        return "failed the TLS handshake", (
            "Check [mqtt] tls_ca_file, tls_cert_file and tls_key_file and the broker's TLS port."
        )
    return "unreachable", (
        "Check [mqtt] host and port (env CURTAILD_MQTT__HOST / CURTAILD_MQTT__PORT) and that the "
        "broker is running (systemctl status mosquitto)."
    )


def topic_matches(wildcard: str, topic: str) -> bool:
    """Whether `topic` falls under the subscription filter `wildcard` (`+` one level, `#` the
    rest, its parent level included), as aiomqtt matches them; False for a malformed topic or
    filter. Like the broker-side rule it does not keep `$SYS/...` out of a leading wildcard: the
    broker never delivers those to our filters."""
    try:
        return aiomqtt.Topic(topic).matches(wildcard)
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass(slots=True)
class MqttStats:
    """Counters for metrics and tests; all only grow."""

    connects: int = 0
    connect_failures: int = 0
    received: int = 0
    callback_errors: int = 0
    published: int = 0  # handed to the client
    unconfirmed: int = 0  # no PUBACK in time (paho may still resend a QoS 1 one)
    dropped_retained: int = 0
    dropped_overflow: int = 0


class MqttSession:
    """One broker connection kept alive for the life of the process; see the module docstring."""

    def __init__(
        self,
        cfg: MqttConfig,
        subscriptions: list[str],
        on_message: Callable[[str, bytes, bool], None],
        on_connect: Callable[[], Awaitable[None]] | None = None,
        will_topic: str | None = None,
        will_payload: bytes | str | None = None,
        *,
        client_id: str | None = None,
        protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V311,
        outbox_limit: int = 10_000,
        publish_timeout_s: float = 5.0,
        persistent: bool = False,
        on_reconnect: Callable[[], None] | None = None,
        on_link_lost: Callable[[], None] | None = None,
    ) -> None:
        """`persistent`: keep the session on the broker across disconnects and restarts (MQTT
        3.1.1 clean_session = false, same client id): QoS 1 messages for it published while it
        is away are queued by the broker and delivered when it is back.

        `on_reconnect` is called (synchronously, from the reconnect loop) each time a session is
        established again after the first; `on_link_lost` each time an established session ends
        other than by `close()`. Both are for metrics: an error in them is logged, not raised."""
        self.cfg = cfg
        self.client_id = client_id or cfg.client_id
        self.stats = MqttStats()
        self.connected_event = asyncio.Event()
        self.last_error: str | None = None
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_connect = on_connect
        self._on_reconnect = on_reconnect
        self._on_link_lost = on_link_lost
        self._will = (
            None
            if will_topic is None
            else OutMessage(will_topic, _as_bytes(will_payload or b""), 1, retain=True)
        )
        self._protocol = protocol
        self._persistent = persistent
        self._publish_timeout_s = publish_timeout_s
        self._outbox: deque[OutMessage] = deque()
        self._outbox_limit = outbox_limit
        self._inflight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._close_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        self._started = False
        self._task: asyncio.Task[Any] | None = None

    @property
    def connected(self) -> bool:
        return self.connected_event.is_set()

    async def wait_connected(self, timeout_s: float) -> None:
        """Return once connected; raise BrokerUnreachable (host:port, cause, fix) on timeout."""
        try:
            await asyncio.wait_for(self.connected_event.wait(), timeout_s)
        except TimeoutError:
            detail = self.last_error or f"no connection within {timeout_s:g} s"
            raise BrokerUnreachable(self.cfg.host, self.cfg.port, detail) from None

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> bool:
        """Queue a message for the wire; False when the outbox policy dropped it. Never raises."""
        message = OutMessage(topic, _as_bytes(payload), qos, retain)
        if retain and not self.connected:
            self.stats.dropped_retained += 1
            return False
        if len(self._outbox) >= self._outbox_limit:
            self._outbox.popleft()
            self.stats.dropped_overflow += 1
        self._outbox.append(message)
        self._idle.clear()
        self._wake.set()
        return True

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued message is acknowledged; False if not within `timeout_s`."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def close(
        self, final_publishes: Iterable[OutMessage] = (), timeout_s: float = 2.0
    ) -> None:
        """Publish `final_publishes` and the will payload, then disconnect cleanly.

        A clean DISCONNECT makes the broker discard the will, so the offline status it carries is
        published here instead (unless `final_publishes` already sets that topic, e.g. with a
        richer status document).
        """
        if self.connected:
            finals = list(final_publishes)
            if self._will is not None and self._will.topic not in {m.topic for m in finals}:
                finals.append(self._will)
            for m in finals:
                self.publish(m.topic, m.payload, m.qos, m.retain)
            await self.flush(timeout_s)
        self._close_requested.set()
        if self._started:
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout_s)
            except TimeoutError:
                # Stuck in a connect attempt to a silent host: stop waiting for it.
                logger.warning("mqtt session did not stop within %g s; cancelling it", timeout_s)
                if self._task is not None:
                    self._task.cancel()

    async def run(self) -> None:
        """Connect, serve and reconnect until `close()`; never raises for broker trouble."""
        if self._started:
            raise RuntimeError("MqttSession.run() may only be started once")
        self._started = True
        self._task = asyncio.current_task()
        will = None
        if self._will is not None:
            will = aiomqtt.Will(self._will.topic, self._will.payload, qos=1, retain=True)
        # Created here, inside the running loop: aiomqtt's Client needs one at construction.
        client = make_client(
            self.cfg, self.client_id, will, self._protocol, persistent=self._persistent
        )
        # A burst of 200 pool commands is normal; aiomqtt warns above 10 pending calls.
        client.pending_calls_threshold = self._outbox_limit
        failures = 0  # connect attempts failed in a row (logged once, not per retry)
        retries = 0  # waits since the broker was last reached
        try:
            while not self._close_requested.is_set():
                connects_before = self.stats.connects
                error: aiomqtt.MqttError | None = None
                try:
                    await self._serve(client)
                except aiomqtt.MqttError as exc:
                    error = exc
                    self.last_error = str(exc) or type(exc).__name__
                self._on_disconnected()
                if self.stats.connects > connects_before:  # this round reached the broker
                    failures = retries = 0
                    if not self._close_requested.is_set():
                        _call(self._on_link_lost)
                    if error is not None:
                        logger.warning("mqtt %s lost: %s; reconnecting", self._where, error)
                elif error is not None:
                    failures += 1
                    self.stats.connect_failures += 1
                    # Log the transition, not every retry of a long outage.
                    level = logging.WARNING if failures == 1 else logging.DEBUG
                    logger.log(level, "mqtt %s: cannot connect: %s; retrying", self._where, error)
                if self._close_requested.is_set():
                    break
                retries += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._close_requested.wait(), RECONNECT_BACKOFF.delay_s(retries)
                    )
        finally:
            self._on_disconnected()
            self._stopped.set()

    @property
    def _where(self) -> str:
        return f"broker {self.cfg.host}:{self.cfg.port}"

    async def _serve(self, client: aiomqtt.Client) -> None:
        async with client:
            self.stats.connects += 1
            if self.stats.connects > 1:
                _call(self._on_reconnect)
            if self._subscriptions:
                granted = await client.subscribe([(topic, 1) for topic in self._subscriptions])
                self._check_granted(granted)
            self.connected_event.set()
            logger.info("mqtt connected to %s as %s", self._where, self.client_id)
            try:
                await self._serve_connected(client)
            except asyncio.CancelledError:
                # Cancelled by the app's TaskGroup: the clean DISCONNECT below drops the will,
                # so leave the offline status behind ourselves.
                await self._publish_will_now(client)
                raise

    def _check_granted(self, granted: Sequence[object]) -> None:
        # SUBACK 0x80 is a refusal (an ACL, usually); the client raises nothing, and the
        # symptom would otherwise be a feed that silently never speaks.
        for topic, code in zip(self._subscriptions, granted, strict=False):
            value = getattr(code, "value", code)
            if isinstance(value, int) and value >= 0x80:
                logger.error("mqtt %s refused the subscription to %s", self._where, topic)

    async def _serve_connected(self, client: aiomqtt.Client) -> None:
        tasks: list[asyncio.Task[Any]] = [
            asyncio.create_task(self._read(client)),
            asyncio.create_task(self._send(client)),
            asyncio.create_task(self._close_requested.wait()),
        ]
        if self._on_connect is not None:
            # Not awaited inline: a hook still running when the link drops is cancelled with it.
            tasks.append(asyncio.create_task(self._run_hook(self._on_connect)))
        try:
            done, _ = await asyncio.wait(tasks[:3], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the reader raises MqttError when the link drops
        finally:
            self.connected_event.clear()  # at once: retained publishes from here on are dropped
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        try:
            await hook()
        except Exception:
            logger.exception("mqtt on_connect hook failed")

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.stats.received += 1
            try:
                self._on_message(message.topic.value, message.payload, message.retain)
            except Exception:
                # A bad message or a bug in one handler must not take the session down.
                self.stats.callback_errors += 1
                logger.exception("mqtt message handler failed on %s", message.topic.value)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                message = self._outbox.popleft()
                # One task per message: PUBACK waits overlap, and tasks start in FIFO order, so
                # paho assigns message ids (and writes) in publish() order.
                task = asyncio.create_task(self._publish_one(client, message))
                self._inflight.add(task)
                task.add_done_callback(self._publish_done)

    async def _publish_one(self, client: aiomqtt.Client, message: OutMessage) -> None:
        self.stats.published += 1
        try:
            await client.publish(
                message.topic,
                message.payload,
                qos=message.qos,
                retain=message.retain,
                timeout=self._publish_timeout_s,
            )
        except aiomqtt.MqttError as exc:
            self.stats.unconfirmed += 1
            logger.debug("mqtt publish to %s unconfirmed: %s", message.topic, exc)

    def _publish_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._check_idle()

    def _check_idle(self) -> None:
        if not self._outbox and not self._inflight:
            self._idle.set()

    async def _publish_will_now(self, client: aiomqtt.Client) -> None:
        if self._will is None:
            return
        try:
            await client.publish(
                self._will.topic, self._will.payload, qos=1, retain=True, timeout=1.0
            )
        except aiomqtt.MqttError:
            logger.debug("mqtt could not publish the offline status while cancelled")

    def _on_disconnected(self) -> None:
        self.connected_event.clear()
        for task in list(self._inflight):
            task.cancel()  # paho keeps and resends the QoS 1 ones itself
        kept = [m for m in self._outbox if not m.retain]
        self.stats.dropped_retained += len(self._outbox) - len(kept)
        self._outbox = deque(kept)
        self._check_idle()


def _call(hook: Callable[[], None] | None) -> None:
    if hook is None:
        return
    try:
        hook()
    except Exception:
        logger.exception("mqtt session hook failed")


def _as_bytes(payload: bytes | str) -> bytes:
    return payload.encode() if isinstance(payload, str) else payload


def make_client(
    cfg: MqttConfig,
    client_id: str,
    will: aiomqtt.Will | None = None,
    protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V311,
    timeout_s: float = 10.0,
    *,
    persistent: bool = False,
) -> aiomqtt.Client:
    """An aiomqtt client from the config; call it inside the running loop."""
    tls = None
    if cfg.tls_ca_file or cfg.tls_cert_file:
        tls = aiomqtt.TLSParameters(
            ca_certs=cfg.tls_ca_file or None,
            certfile=cfg.tls_cert_file or None,
            keyfile=cfg.tls_key_file or None,
        )
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username or None,
        password=cfg.password.get_secret_value() or None,
        identifier=client_id,
        protocol=protocol,
        will=will,
        keepalive=cfg.keepalive_s,
        timeout=timeout_s,
        tls_params=tls,
        # MQTT 3.1.1 only (v5 has clean_start instead): a persistent session if asked for.
        clean_session=(not persistent) if protocol == aiomqtt.ProtocolVersion.V311 else None,
        # Neither paho nor aiomqtt disables Nagle. Without this, a publish that follows our own
        # PUBACK of an incoming QoS 1 message waits for the broker's delayed ACK: about 40 ms
        # between a dispatch arriving and the pool commands leaving.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        # Bounds on both sides: a flood must cost messages, not the process's memory.
        max_queued_incoming_messages=MAX_QUEUED,
        max_queued_outgoing_messages=MAX_QUEUED,
    )
