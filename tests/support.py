"""Test helpers shared by every suite: free ports, a real mosquitto, an MQTT probe, a cuttable link.

Everything listens on 127.0.0.1 only and every process or server started here is stopped by its
owner (the fixtures in tests/conftest.py, or the `async with` of the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiomqtt

from controller.adapters.mqtt import MqttSession
from controller.config import MqttConfig
from controller.sim.configs import free_port

# Real ERCOT data lives beside the project, not in it (CONTRACT data README).
SHARED_ERCOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ercot"

MOSQUITTO_MISSING = (
    "mosquitto is not installed: run `sudo apt-get install mosquitto` "
    "(make test installs it when run as root)"
)


def find_mosquitto() -> str | None:
    # Debian installs it in /usr/sbin, which is not on a normal user's PATH.
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


async def eventually(
    predicate: Callable[[], object], timeout_s: float = 5.0, interval_s: float = 0.01
) -> None:
    """Poll `predicate` until it is truthy; AssertionError after `timeout_s`.

    For state with no event to wait on (counters, flags of the object under test).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout_s:g} s")
        await asyncio.sleep(interval_s)


def wait_port(host: str, port: int, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """The broker's certificate and key, and the CA its clients' certificates must chain to."""

    ca_file: Path
    cert_file: Path
    key_file: Path


class MosquittoBroker:
    """A real mosquitto process on 127.0.0.1:port with a throwaway config (no persistence).

    With `tls`, two more listeners share the same logins and ACL (as deploy/mosquitto/
    curtaild.conf sets up, `per_listener_settings false`): `tls_port` (TLS 1.2 or better,
    password login) and `mtls_port` (the same, and a client certificate from `tls.ca_file` is
    required). `acl` is the text of an ACL file (with `users`, as the ACL keys on the username).
    `conf` replaces the generated config with a given one (a deployed file under test): its
    listeners are `port` and `tls_port`, and `{dir}` in it is the directory where `users` and
    `acl` are written (as `passwd` and `acl`).
    """

    host = "127.0.0.1"

    def __init__(
        self,
        binary: str,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        *,
        tls: BrokerTls | None = None,
        tls_port: int | None = None,
        acl: str | None = None,
        conf: str | None = None,
    ) -> None:
        """`users` (name -> password): require a login with those, else allow anonymous."""
        self.binary = binary
        self.port = port or free_port()
        self.tls_port = (tls_port or free_port()) if tls else tls_port
        self.mtls_port = free_port() if tls else None
        # mosquitto started as root drops to user mosquitto: the directory and config must be
        # readable by that user, so world-readable modes rather than mkdtemp's 0700.
        self.dir = Path(tempfile.mkdtemp(prefix="curtaild-mosquitto-"))
        self.dir.chmod(0o755)
        self.conf = self.dir / "mosquitto.conf"
        self.log = self.dir / "mosquitto.log"
        lines = [
            "per_listener_settings false",
            f"allow_anonymous {'false' if users else 'true'}",
            "persistence false",
            # As production should: the broker also answers without waiting on Nagle.
            "set_tcp_nodelay true",
        ]
        if users:
            passwords = self.dir / "passwd"
            _write_passwords(binary, passwords, users)
            lines.append(f"password_file {passwords}")
        if acl is not None:
            acl_file = self.dir / "acl"
            acl_file.write_text(acl, encoding="utf-8")
            acl_file.chmod(0o644)
            lines.append(f"acl_file {acl_file}")
        lines.append(f"listener {self.port} 127.0.0.1")
        if tls is not None:
            for listen_port, require in ((self.tls_port, False), (self.mtls_port, True)):
                lines += [
                    f"listener {listen_port} 127.0.0.1",
                    f"certfile {tls.cert_file}",
                    f"keyfile {tls.key_file}",
                    f"cafile {tls.ca_file}",
                    "tls_version tlsv1.2",  # the least it accepts: 1.3 is negotiated when offered
                    f"require_certificate {'true' if require else 'false'}",
                ]
        if conf is not None:
            lines = [conf.replace("{dir}", str(self.dir))]
        if os.geteuid() == 0 and not _user_exists("mosquitto"):
            lines.append("user root")  # nothing to drop to; mosquitto refuses to start otherwise
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.conf.chmod(0o644)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 5.0) -> None:
        with self.log.open("ab") as log:  # our fd, inherited: written whatever user it becomes
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        ports = [p for p in (self.port, self.tls_port, self.mtls_port) if p is not None]
        started = all(wait_port(self.host, p, timeout_s) for p in ports)
        if not started or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}:\n{self.log_text()}")

    def stop(self) -> None:
        """Terminate gracefully (SIGTERM), SIGKILL after 5 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def kill(self) -> None:
        """Die like a crashed broker: no goodbye to any client."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop and start again on the same port (retained messages are gone: no persistence)."""
        self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def mqtt_config(self, **overrides: Any) -> MqttConfig:
        """An MqttConfig for this broker with a unique client id and topic prefix."""
        token = secrets.token_hex(4)
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "client_id": f"test-{token}",
            "topic_prefix": f"test/{token}",
            "keepalive_s": 5,
        }
        values.update(overrides)
        return MqttConfig(**values)


def _write_passwords(binary: str, path: Path, users: Mapping[str, str]) -> None:
    # mosquitto_passwd ships in the same Debian package, next to or on PATH with mosquitto.
    tool = shutil.which("mosquitto_passwd") or str(Path(binary).parents[1] / "bin/mosquitto_passwd")
    for i, (name, password) in enumerate(users.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run([tool, *create, "-b", str(path), name, password], check=True)
    path.chmod(0o644)  # read by user mosquitto after the privilege drop


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ProbeTls:
    """A probe's TLS settings: the CA it trusts, and a client certificate when one is needed."""

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def params(self) -> aiomqtt.TLSParameters:
        return aiomqtt.TLSParameters(
            ca_certs=str(self.ca_file),
            certfile=None if self.cert_file is None else str(self.cert_file),
            keyfile=None if self.key_file is None else str(self.key_file),
        )


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.payload)


class MqttProbe:
    """An independent aiomqtt client for assertions: records every message on its topics.

    Deliberately not built on MqttSession, so a bug there cannot hide itself in the test.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: Sequence[str] = ("#",),
        client_id: str | None = None,
        *,
        login: tuple[str, str] | None = None,
        tls: ProbeTls | None = None,
    ) -> None:
        """`login` (username, password) and `tls` for a secured broker; plain anonymous without."""
        self.host = host
        self.port = port
        self.topics = list(topics)
        self.client_id = client_id or f"probe-{secrets.token_hex(4)}"
        self.login = login
        self.tls = tls
        self.messages: list[Received] = []
        self._arrived = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MqttProbe:
        username, password = self.login or (None, None)
        self._client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=username,
            password=password,
            tls_params=None if self.tls is None else self.tls.params(),
            timeout=5,
            # Nagle would add ~40 ms to a publish that follows our PUBACK (see adapters/mqtt.py).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        await self._client.__aenter__()
        if self.topics:
            await self._client.subscribe([(topic, 1) for topic in self.topics])
        self._reader = asyncio.create_task(self._read(self._client))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)

    async def _read(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for m in client.messages:
                self.messages.append(Received(m.topic.value, m.payload, m.retain, time.monotonic()))
                self._arrived.set()

    async def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = False, qos: int = 1
    ) -> None:
        assert self._client is not None, "use MqttProbe inside `async with`"
        await self._client.publish(topic, payload, qos=qos, retain=retain)

    def on(self, topic_filter: str, since: int = 0) -> list[Received]:
        """Messages from index `since` on whose topic matches `topic_filter` (wildcards allowed)."""
        matching = aiomqtt.Topic
        return [m for m in self.messages[since:] if matching(m.topic).matches(topic_filter)]

    def mark(self) -> int:
        """An index for `wait_for(since=...)`: only messages after this call."""
        return len(self.messages)

    async def wait_for(
        self,
        predicate: Callable[[Received], bool],
        timeout_s: float = 5.0,
        since: int = 0,
    ) -> Received:
        """The first message from index `since` on that satisfies `predicate`, waiting for it."""
        deadline = time.monotonic() + timeout_s
        index = since
        while True:
            for m in self.messages[index:]:
                if predicate(m):
                    return m
            index = len(self.messages)
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                seen = [(m.topic, m.payload[:80]) for m in self.messages[since:]][-10:]
                raise AssertionError(f"no matching MQTT message in {timeout_s:g} s; last: {seen}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left_s)

    async def wait_json(
        self,
        topic_filter: str,
        predicate: Callable[[Any], bool] = lambda _doc: True,
        timeout_s: float = 5.0,
        since: int = 0,
    ) -> Any:
        """The parsed JSON of the first message on `topic_filter` whose document passes."""

        def match(m: Received) -> bool:
            if not aiomqtt.Topic(m.topic).matches(topic_filter) or not m.payload:
                return False
            try:
                return bool(predicate(m.json()))
            except (ValueError, KeyError, TypeError):
                return False

        return (await self.wait_for(match, timeout_s, since)).json()


@contextlib.asynccontextmanager
async def running(
    session: MqttSession, connect_timeout_s: float = 5.0
) -> AsyncIterator[MqttSession]:
    """Run `session` in a task for the block (connected on entry); close it and wait on exit."""
    task = asyncio.create_task(session.run())
    try:
        if connect_timeout_s > 0:
            await session.wait_connected(connect_timeout_s)
        yield session
    finally:
        await session.close(timeout_s=2.0)
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class TcpProxy:
    """A loopback TCP relay whose links fail on demand.

    `cut()` drops every relayed connection without a goodbye (the broker sees a dead client and
    sends its will) and refuses new ones until `restore()`. `freeze()` silently stops relaying on
    the current connections (a half-open link: only keepalive can notice it); new connections
    are relayed normally.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.accepted = 0
        self._cut = False
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self._cut = True
        for link in list(self._links):
            link.abort()

    def restore(self) -> None:
        self._cut = False

    def freeze(self) -> None:
        for link in self._links:
            link.frozen = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        pipes = {
            asyncio.create_task(link.pipe(reader, up_writer)),
            asyncio.create_task(link.pipe(up_reader, writer)),
        }
        done, pending = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        if any(task.exception() is not None for task in done):
            link.abort()  # a reset on one side: the other side must see a broken link too
        if pending:
            # A frozen link stays open until the far end gives up on its own (keepalive) or
            # cut() / leaving the proxy aborts it; a normal one gets 2 s to finish in order.
            _, pending = await asyncio.wait(pending, timeout=None if link.frozen else 2.0)
        for task in pending:
            task.cancel()
        self._links.discard(link)
        link.close()


class _Link:
    def __init__(self, down: asyncio.StreamWriter, up: asyncio.StreamWriter) -> None:
        self.writers = (down, up)
        self.frozen = False

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.frozen:
                continue  # swallowed: neither end hears anything more, nor learns why
            writer.write(data)
            await writer.drain()
        # An orderly end on one side is passed on in order (close() flushes what is buffered, so
        # a DISCONNECT still arrives); only cut() tears links down abruptly. A frozen link
        # passes nothing on, not even the end.
        if not self.frozen:
            writer.close()

    def abort(self) -> None:
        # abort(), not close(): no orderly shutdown, like a cable pulled or a process killed.
        for writer in self.writers:
            writer.transport.abort()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
