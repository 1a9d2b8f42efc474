"""The composition root of `curtaild run`: builds every part from the config and runs them.

One TaskGroup holds the MQTT session, the pollers and the control loop. Startup waits briefly
for the broker and first telemetry so the first decision sees the site as it is (I6), then
reports READY. SIGTERM applies `shutdown_action`; SIGHUP reloads the config, keeping the old one
when the new one is invalid or changes devices (which needs a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from controller.adapters import systemd
from controller.adapters.metrics import Metrics
from controller.adapters.metrics_server import MetricsServer
from controller.adapters.modbus import quiet_pymodbus_logs
from controller.adapters.mqtt import MqttSession, OutMessage
from controller.clock import Clock, SystemClock
from controller.config import Config, load_config
from controller.drivers.health import BackoffPolicy, HealthBoard
from controller.errors import ConfigError
from controller.feeds.common import peek_field
from controller.logs import get
from controller.model import OverrideRequest
from controller.runtime import payloads
from controller.runtime.apply import Applier
from controller.runtime.devices import build_devices, devices_key
from controller.runtime.inputs import Inputs
from controller.runtime.loop import ControlLoop
from controller.runtime.observe import Observer
from controller.runtime.pollers import Pollers
from controller.runtime.topics import Topics

log = get("curtaild")
STARTUP_BROKER_WAIT_S = 3.0
STARTUP_TELEMETRY_WAIT_S = 2.0


class Daemon:
    def __init__(self, config: Config, config_path: Path | None = None, clock: Clock | None = None):
        self.config = config
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.topics = Topics.of(config)
        self.metrics = Metrics(config)
        self.metrics_server: MetricsServer | None = None
        self.stop_requested = asyncio.Event()
        self.session = MqttSession(
            config.mqtt,
            self.topics.subscriptions(),
            self._on_message,
            on_connect=self._on_connect,
            will_topic=self.topics.status,
            will_payload=payloads.dumps({"state": "offline"}),
        )
        self.observer = Observer(self.topics, self.clock, self.metrics, self._publish)
        self.inputs = Inputs(config, self.clock, self._on_reject)
        self.health = HealthBoard(
            self.clock.monotonic,
            policy=BackoffPolicy(),
            on_transition=self.observer.device_transition,
        )
        self.devices = build_devices(config, self.clock, self.observer.protected_refused)
        self.applier = Applier(
            config, self._publish, self.devices.pdus, self.devices.plcs, self.health, self.clock
        )
        self.loop = ControlLoop(
            config, self.clock, self.inputs, self.applier, self._publish, self.observer
        )
        self.pollers = Pollers(
            config,
            self.inputs,
            self.applier,
            self.health,
            self.clock,
            self.devices.meters,
            self.devices.plcs,
            self.devices.pdus,
        )
        self._watchdog_s = systemd.watchdog_interval_s()
        self._last_watchdog = 0.0
        self._notify_failed = False

    # -- wiring ------------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        return self.session.publish(topic, payload, qos, retain)

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        self.inputs.on_message(topic, payload, retain)

    def _on_reject(self, feed: str, reason: str, detail: str, payload: bytes) -> None:
        self.observer.rejected(feed, reason, detail)
        if feed == "dispatch":  # every instruction is answered, a bad one with `rejected`
            self._publish(
                self.topics.dispatch_ack,
                payloads.rejected_ack(
                    _str_or_none(peek_field(payload, "id")),
                    f"{reason}: {detail}",
                    self.clock.time(),
                ),
                1,
                False,
            )
        elif feed == "override":
            self.loop.publish_override_state()

    async def _on_connect(self) -> None:
        self.metrics.set_mqtt_connected(True)
        log.info("broker connected", host=self.config.mqtt.host, port=self.config.mqtt.port)
        self.loop.republish_retained()

    def _on_cycle(self) -> None:
        if self._watchdog_s is None:
            return
        now = self.clock.monotonic()
        if now - self._last_watchdog >= self._watchdog_s / 2:
            self._last_watchdog = now
            self._notify(systemd.watchdog)

    def _notify(self, send: Callable[[], bool]) -> None:
        """sd_notify must never stop the controller: report the first failure, keep deciding."""
        try:
            send()
        except systemd.NotifyError as exc:
            if not self._notify_failed:
                self._notify_failed = True
                log.error("systemd notification failed; continuing", error=str(exc))  # noqa: TRY400

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> int:
        quiet_pymodbus_logs()
        self.metrics_server = self.metrics.start_server(self.config.metrics.listen)
        log.info(
            "starting",
            site=self.config.site.name,
            pools=len(self.config.pools),
            metrics=self.config.metrics.listen,
        )
        self._install_signals()
        self.loop.on_cycle = self._on_cycle
        try:
            async with asyncio.TaskGroup() as group:
                mqtt_task = group.create_task(self.session.run(), name="mqtt")
                pollers = self.pollers.tasks()
                await self._startup()
                loop_task = group.create_task(self.loop.run(), name="control-loop")
                await self.stop_requested.wait()
                await self._shutdown(loop_task, pollers)
                mqtt_task.cancel()
        finally:
            self.devices.endpoints.close()
            if self.metrics_server is not None:
                self.metrics_server.close()
        log.info("stopped")
        return 0

    async def _startup(self) -> None:
        try:
            await self.session.wait_connected(STARTUP_BROKER_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - reported, then the session keeps retrying
            log.error(  # noqa: TRY400 - the cause is in `error`; a traceback helps nobody
                "broker not reachable yet; running on devices, retrying", error=str(exc)
            )
        deadline = self.clock.monotonic() + STARTUP_TELEMETRY_WAIT_S
        mqtt_pools = {p.name for p in self.config.pools if p.driver == "mqtt"}
        while self.clock.monotonic() < deadline:
            have_pools = mqtt_pools <= set(self.inputs.pools)
            have_site = any(m.role != "site" for m in self.config.meters) or all(
                m.name in self.inputs.meters_kw for m in self.config.meters if m.role == "site"
            )
            if have_pools and have_site:
                break
            await asyncio.sleep(0.05)
        self.loop.set_status("online")
        await self.loop.step()
        # Everything built so far lives as long as the process: keep it out of GC scans, whose
        # pauses were the tail of decision times when every pool changes (bench_decide).
        gc.freeze()
        self._notify(systemd.ready)
        self._notify(lambda: systemd.status(f"online: {len(self.config.pools)} pools"))

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGINT, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    async def _shutdown(
        self, loop_task: asyncio.Task[None], pollers: list[asyncio.Task[None]]
    ) -> None:
        action = self.config.control.shutdown_action
        log.info("stopping", shutdown_action=action)
        self._notify(systemd.stopping)
        self.loop.frozen = True
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop_task
        if action == "curtail":
            await self._curtail_all()
        for task in pollers:
            task.cancel()
        offline = payloads.status("offline", self.clock.time())
        await self.session.close([_retained(self.topics.status, offline)])

    async def _curtail_all(self) -> None:
        """shutdown_action = curtail: every pool commanded to 0, confirmed or timed out."""
        now = self.clock.time()
        timeout_s = self.config.control.confirm_timeout_s
        self.inputs.override_inbox.append(
            OverrideRequest(
                "curtail",
                None,
                now + 10 * timeout_s + 60,
                "curtaild",
                "shutdown_action = curtail",
                now,
                f"shutdown-{now}",
            )
        )
        decision = await self.loop.step()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pools = self.inputs.pools
            if all(
                (t := pools.get(name)) is not None and t.power_kw <= 0.02 * p.max_kw + 1e-6
                for name, p in ((p.name, p) for p in self.config.pools)
            ):
                break
            await asyncio.sleep(0.1)
        log.info("curtailed for shutdown", mining_target_kw=decision.plan.mining_target_kw)
        await self.session.flush(timeout_s)

    def reload(self) -> None:
        if self.config_path is None:
            return
        self._notify(systemd.reloading)
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error(  # noqa: TRY400 - the problems list is the message
                "reload refused: invalid config, keeping the running one", problems=exc.problems
            )
            self.observer.event("reload_refused", problems=exc.problems)
            self._notify(systemd.ready)
            return
        if devices_key(new) != devices_key(self.config):
            msg = (
                "reload refused: devices, broker or metrics changed; restart to apply "
                "(systemctl restart curtaild)"
            )
            log.error(msg)
            self.observer.event("reload_refused", problems=[msg])
            self._notify(systemd.ready)
            return
        self.config = new
        self.inputs.reconfigure(new)
        self.loop.config = new
        self.inputs.notify("reload")
        log.info("config reloaded", path=str(self.config_path))
        self.observer.event("reloaded")
        self._notify(systemd.ready)


def _retained(topic: str, payload: bytes) -> OutMessage:
    return OutMessage(topic, payload, 1, True)


def run_daemon(config_path: Path) -> int:
    config = load_config(config_path)
    return run_main(Daemon(config, config_path).run())


def run_main(main: Coroutine[Any, Any, int]) -> int:
    """uvloop where it is installed (about 2x faster Modbus, LIBRARY-NOTES), else asyncio."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the lock; a source install may lack it
        return asyncio.run(main)
    return uvloop.run(main)


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
