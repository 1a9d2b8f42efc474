"""The composition root of `curtaild run`: builds every part from the config and runs them.

Devices come from the driver registries (runtime/devices.py): every pool is a `PoolDriver`, and
nothing here asks which kind. One TaskGroup holds the MQTT session, the pollers and the control
loop. Startup restores the
state store, waits briefly for the broker and first telemetry so the first decision sees the
site as it is (I6, runtime/startup.py), then reports READY. SIGTERM applies `shutdown_action`;
SIGHUP reloads the config all-or-nothing: one `prepare(config)` is fanned out to every component,
everything that can fail is built before any of them changes, then the commits only assign; the
old config stays when the new one is invalid or changes devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from controller.adapters import systemd
from controller.adapters.metrics import Metrics
from controller.adapters.metrics_server import MetricsServer
from controller.adapters.modbus import quiet_pymodbus_logs
from controller.adapters.mqtt import MqttSession, OutMessage
from controller.adapters.store import AsyncStateStore
from controller.backoff import BackoffPolicy
from controller.clock import Clock, SystemClock
from controller.config import Config, load_config
from controller.core.failsafe import all_curtailed
from controller.drivers.health import HealthBoard
from controller.errors import ConfigError
from controller.feeds.common import FeedRejected
from controller.ha.node import EXIT_DEPOSED, HaNode, ReplicaUnreadableError
from controller.logs import get
from controller.runtime import payloads, persist, startup
from controller.runtime.apply import Applier
from controller.runtime.devices import build_devices, devices_key
from controller.runtime.inputs import Inputs
from controller.runtime.loop import ControlLoop
from controller.runtime.observe import Observer
from controller.runtime.pollers import Pollers
from controller.runtime.topics import Topics

log = get("curtaild")
STARTUP_BROKER_WAIT_S = 3.0
PRUNE_EVERY_S = 3600.0  # nonces and audit rows past their keep time: small batches, hourly


class Daemon:
    def __init__(self, config: Config, config_path: Path | None = None, clock: Clock | None = None):
        self.config = config
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.topics = Topics.of(config)
        self.metrics = Metrics(config)
        self.metrics_server: MetricsServer | None = None
        self.stop_requested = asyncio.Event()
        # Active/standby (docs/ha.md): None for a single daemon. A leader also listens to its
        # own status: a deposed node's will ("offline") must not stand over a live leader's.
        self.ha = HaNode(config) if config.ha.enabled else None
        self.deposed: str | None = None
        subscriptions = self.topics.subscriptions()
        if self.ha is not None:
            subscriptions.append(self.topics.status)
        self.session = MqttSession(
            config.mqtt,
            subscriptions,
            self._on_message,
            on_connect=self._on_connect,
            will_topic=self.topics.status,
            will_payload=payloads.dumps({"state": "offline"}),
            # An instruction the QSE publishes while the daemon restarts or is cut off from the
            # broker is queued by the broker and delivered when it is back: nothing is lost.
            persistent=True,
            on_reconnect=self._on_reconnect,
            on_link_lost=self._on_link_lost,
        )
        self.observer = Observer(self.topics, self.clock, self.metrics, self._publish, config)
        self.inputs = Inputs(config, self.clock, self._on_reject)
        self.inputs.hold_baselines()  # released once the site has been seen (startup)
        self.health = HealthBoard(
            self.clock.monotonic,
            policy=BackoffPolicy(),
            on_transition=self.observer.device_transition,
        )
        self.devices = build_devices(
            config,
            self.clock,
            self.health,
            publish=self._publish,
            sink=self.inputs,
            on_protected_refused=self.observer.protected_refused,
        )
        self.inputs.attach_pools(self.devices.pools.values())
        self.applier = Applier(self.devices.pools, self.clock)
        self.loop = ControlLoop(
            config, self.clock, self.inputs, self.applier, self._publish, self.observer
        )
        self.pollers = Pollers(
            config,
            self.inputs,
            self.health,
            self.clock,
            self.devices.meters,
            self.devices.pools,
            self.devices.pdus,
            on_error=self.observer.internal_error,
        )
        self.store: AsyncStateStore | None = None
        self._watchdog_s = systemd.watchdog_interval_s()
        self._last_watchdog = 0.0
        self._notify_failed = False

    # -- wiring ------------------------------------------------------------------------------

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        return self.session.publish(topic, payload, qos, retain)

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        if topic == self.topics.status:
            self._status_seen(payload)
            return
        try:
            self.inputs.on_message(topic, payload, retain)
        except Exception:  # noqa: BLE001 - one message must not stop the daemon (I10)
            self.observer.internal_error("message")

    def _on_reject(self, feed: str, verdict: FeedRejected) -> None:
        reason, detail = verdict.reason, verdict.detail
        self.observer.rejected(feed, reason, detail, verdict.msg_id)
        report = self.loop.report
        if feed == "dispatch":  # every instruction is answered, a bad one with `rejected`
            report.publish_rejected_ack(verdict.msg_id, f"{reason}: {detail}")
        elif feed == "override":
            report.publish_override_state(self.loop.state.override, self.inputs.override_last)

    def _status_seen(self, payload: bytes) -> None:
        """A leader that finds `offline` on its status (the will of the node it replaced)
        publishes its own again; not while stopping (its own `offline` comes back to it)."""
        leading = self.loop.report.ready and not self.stop_requested.is_set()
        if leading and self.deposed is None and b'"offline"' in payload:
            self.loop.report.publish_status()

    async def _on_connect(self) -> None:
        self.metrics.set_mqtt_connected(True)
        log.info("broker connected", host=self.config.mqtt.host, port=self.config.mqtt.port)
        try:
            self.loop.republish_retained()
        except Exception:  # noqa: BLE001
            self.observer.internal_error("publish")

    def _on_reconnect(self) -> None:
        self.metrics.mqtt_reconnected()

    def _on_link_lost(self) -> None:
        self.metrics.set_mqtt_connected(False)  # set again by _on_connect

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
        started = self.clock.monotonic()
        log.info("starting", site=self.config.site.name, pools=len(self.config.pools))
        # The store first: if it cannot be trusted, or another daemon holds it, nothing starts.
        lock_fd = startup.lock_state_dir(Path(self.config.control.state_dir))
        try:
            self.store = await startup.open_store(self.config, self.loop, self.inputs)
            self.metrics_server = self.metrics.start_server(self.config.metrics.listen)
            log.info("metrics served", listen=self.config.metrics.listen)
            await self._prune()
            self._install_signals()
            if self.ha is not None:
                if not await self._lead():
                    return 0  # stopped while standing by: nothing was ever commanded
                started = self.clock.monotonic()  # the takeover is this node's start
            self.loop.on_cycle = self._on_cycle
            async with asyncio.TaskGroup() as group:
                mqtt_task = group.create_task(self.session.run(), name="mqtt")
                pollers = self.pollers.tasks()
                pruner = group.create_task(self._prune_forever(), name="prune")
                watcher = None
                if self.ha is not None:
                    watcher = group.create_task(self.ha.watch(self._lost), name="ha-watch")
                await self._startup(started)
                loop_task = group.create_task(self.loop.run(), name="control-loop")
                await self.stop_requested.wait()
                await self._shutdown(loop_task, pollers)
                pruner.cancel()
                mqtt_task.cancel()
                if watcher is not None:
                    watcher.cancel()
        finally:
            if self.ha is not None:
                await self.ha.close(resign=self.deposed is None)
            self.devices.endpoints.close()
            if self.store is not None:
                await self.store.close()
            if self.metrics_server is not None:
                self.metrics_server.close()
            os.close(lock_fd)
        if self.deposed is not None:
            log.error("stopped: no longer the leader; systemd starts this node again as a standby",
                      why=self.deposed)  # fmt: skip
            return EXIT_DEPOSED
        log.info("stopped")
        return 0

    # -- active/standby (docs/ha.md) ---------------------------------------------------------

    async def _lead(self) -> bool:
        """Stand by until this node leads, then continue from the pair's state and command
        under the epoch; False when stopped first."""
        assert self.ha is not None and self.store is not None
        self.metrics.set_ha(self.config.ha.node_name, None)
        self._notify(systemd.ready)  # a standby is up: systemd must not time its start out
        log.info("standing by", node=self.ha.node)
        stored = await self.ha.lead(self.stop_requested, self._standby_tick, self.store.load)
        if stored is None:
            return False
        try:
            startup.restore_state(self.config, self.loop, self.inputs, stored)
        except persist.RestoreError as exc:
            raise ReplicaUnreadableError(f"replicated state: a row is unreadable ({exc})") from None
        self.loop.replica = self.ha.replica
        self.loop.on_deposed = self._lost
        self.applier.fence = self.ha.epoch
        self.observer.leader.update(node=self.ha.node, epoch=self.ha.replica.epoch)
        self.observer.event("leader", state_from=self.ha.source)  # node, epoch: stamped
        self.metrics.set_ha(self.ha.node, self.ha.epoch())
        return True

    def _standby_tick(self, holder: str) -> None:
        self.metrics.set_ha(self.config.ha.node_name, None)
        self._notify(lambda: systemd.status(f"standby: {holder or 'nobody'} leads"))
        if self._watchdog_s is not None:
            self._notify(systemd.watchdog)

    def _lost(self, why: str) -> None:
        """Leadership ended (fenced or deposed): nothing more goes out; the process ends."""
        if self.deposed is not None:
            return
        self.deposed = why
        self.loop.frozen = True
        self.metrics.set_ha(self.config.ha.node_name, None)
        log.error("no longer the leader: commanding stopped", why=why)
        self.stop_requested.set()

    async def _startup(self, started: float) -> None:
        deadline = started + self.config.control.confirm_timeout_s
        connected = asyncio.create_task(
            self.session.wait_connected(min(STARTUP_BROKER_WAIT_S, deadline - started))
        )
        stopped = asyncio.create_task(self.stop_requested.wait())
        await asyncio.wait((connected, stopped), return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not connected.done():
            connected.cancel()  # a stop was asked: do not sit out the broker wait
        elif connected.exception() is not None:  # reported; the session keeps retrying
            log.error(
                "broker not reachable yet; running on devices, retrying",
                error=str(connected.exception()),
            )
        await startup.wait_for_site(
            self.config,
            self.inputs,
            self.devices.pools.values(),
            self.clock,
            deadline,
            self.stop_requested,
        )
        if self.stop_requested.is_set():
            return  # stopped while starting: no decision, so no write after the signal
        self.inputs.release_baselines()
        await self.loop.step()
        if self.deposed is not None:
            return  # lost the lead in the first decision: no READY, no status over the leader's
        self.loop.report.ready = True
        self.loop.report.publish_status()
        # Everything built so far lives as long as the process: keep it out of GC scans, whose
        # pauses were the tail of decision times when every pool changes (bench_decide).
        gc.freeze()
        self._notify(systemd.ready)
        self._notify(lambda: systemd.status(f"online: {len(self.config.pools)} pools"))

    async def _prune(self) -> None:
        if self.store is None:
            return
        try:
            removed = await self.store.prune(
                self.clock.time(), self.config.control.audit_retention_days
            )
        except Exception:  # noqa: BLE001
            self.observer.internal_error("store")
        else:
            if any(removed):
                log.info("state store pruned", nonces=removed[0], audit_records=removed[1])

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            await self._prune()

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
        if self.deposed is not None:
            # Another node leads: no shutdown action, and no `offline` over its status.
            for task in pollers:
                task.cancel()
            await self.session.close([])
            return
        if action == "curtail":
            await self._curtail_all()
        for task in pollers:
            task.cancel()
        offline = payloads.status("offline", self.clock.time())
        await self.session.close([_retained(self.topics.status, offline)])

    async def _curtail_all(self) -> None:
        """shutdown_action = curtail: every pool commanded to 0, confirmed or timed out."""
        plan = await self.loop.curtail_everything(self.clock.time(), frozenset())
        timeout_s = self.config.control.confirm_timeout_s
        deadline = self.clock.monotonic() + timeout_s
        site = self.loop.site
        while self.clock.monotonic() < deadline:
            if all_curtailed(site, self.inputs.pools):
                break
            await asyncio.sleep(0.1)
        log.info("curtailed for shutdown", mining_target_kw=plan.mining_target_kw)
        await self.session.flush(timeout_s)

    def reload(self) -> None:
        """SIGHUP: all or nothing, READY again either way (CONTRACT 5, 7)."""
        if self.config_path is None:
            return
        self._notify(systemd.reloading)
        try:
            self._reload(self.config_path)
        except Exception:  # noqa: BLE001 - a reload must never stop the daemon
            self.observer.internal_error("reload")
            self.observer.event("reload_refused", problems=["internal error; see the log"])
        self._notify(systemd.ready)

    def _reload(self, path: Path) -> None:
        try:
            new = load_config(path)
        except ConfigError as exc:
            log.error(  # noqa: TRY400 - the problems list is the message
                "reload refused: invalid config, keeping the running one", problems=exc.problems
            )
            self.observer.event("reload_refused", problems=exc.problems)
            return
        if devices_key(new) != devices_key(self.config):
            msg = (
                "reload refused: devices, broker or metrics changed; restart to apply "
                "(systemctl restart curtaild)"
            )
            log.error(msg)
            self.observer.event("reload_refused", problems=[msg])
            return
        # One reconfigure fanned out: everything that can fail is built first, by every
        # component, before any of them changes; then the commits only assign.
        preparers = (
            self.inputs.prepare,
            self.loop.prepare,
            self.pollers.prepare,
            self._prepare_devices,
            self._prepare_metrics,
        )
        commits = [prepare(new) for prepare in preparers]
        for commit in commits:
            commit()
        self.config = new
        self.inputs.notify("reload")
        log.info("config reloaded", path=str(path))
        self.observer.event("reloaded")

    def _prepare_devices(self, new: Config) -> Callable[[], None]:
        pools = {p.name: p for p in new.pools}  # same names and kinds: devices_key checked it

        def commit() -> None:
            for name, driver in self.devices.pools.items():
                driver.reconfigure(pools[name])

        return commit

    def _prepare_metrics(self, new: Config) -> Callable[[], None]:
        return lambda: self.observer.view.configure(new)


def _retained(topic: str, payload: bytes) -> OutMessage:
    return OutMessage(topic, payload, 1, True)


def run_daemon(config_path: Path) -> int:
    config = load_config(config_path)
    return run_main(Daemon(config, config_path).run())


def run_main(main: Coroutine[Any, Any, int]) -> int:
    """uvloop where it is installed (about 2x faster Modbus, LIBRARY-NOTES), else asyncio."""
    try:
        import uvloop  # noqa: PLC0415 - an optional dependency
    except ImportError:  # pragma: no cover - uvloop is in the lock; a source install may lack it
        return asyncio.run(main)
    return uvloop.run(main)
