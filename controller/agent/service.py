"""The agent process: one MQTT session, a worker per pool (cmds at once, telemetry every poll_s).

A cmd is carried out when its seq is above the last carried out, or, for the first cmd after a
start, equal to it (the retained cmd is carried out again after a restart). With an
active/standby pair the cmds carry the leadership's `epoch`: one below an epoch already obeyed
is a deposed leader's and is refused at once (protocol.admits). A newer cmd arriving
while one is being carried out waits for it and then replaces any still waiting. Nothing a miner,
the network or the broker does ends the process: errors are logged and the loops go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time

from controller.adapters.mqtt import MqttSession, OutMessage
from controller.agent.config import AgentConfig
from controller.agent.driver import MinerDriver
from controller.agent.metrics import AgentMetrics
from controller.agent.pool import Defaults, PoolAgent
from controller.agent.protocol import Command, admits, parse_cmd, state_payload
from controller.agent.store import PoolStore

logger = logging.getLogger("curtaild.agent")
# Miners take about a second to settle after a change (fans, boards): read the acted ones
# again this long after a cmd rather than waiting for the next poll.
FOLLOW_UP_S = 1.5


class PoolWorker:
    def __init__(self, pool: PoolAgent, prefix: str, session: MqttSession, metrics: AgentMetrics,
                 poll_s: float) -> None:  # fmt: skip
        self.pool = pool
        self.session = session
        self.metrics = metrics
        self.poll_s = poll_s
        self.cmd_topic = f"{prefix}/pools/{pool.name}/cmd"
        self.state_topic = f"{prefix}/pools/{pool.name}/state"
        self.pending: tuple[Command, float] | None = None
        self.wake = asyncio.Event()
        self.started_fresh = True  # no cmd carried out since this process started
        self.polled = asyncio.Event()  # the first telemetry round is done
        self.quiet = asyncio.Event()  # no cmd waiting or being carried out
        self.quiet.set()
        self._round: asyncio.Task[None] | None = None  # the telemetry round in flight
        self.round_done_at = -math.inf  # monotonic end of the last complete telemetry round
        self.follow_ups: set[asyncio.Task[None]] = set()

    def offer(self, payload: bytes) -> None:
        command = parse_cmd(payload)
        if command is None:
            self.metrics.commands.labels(self.pool.name, "rejected").inc()
            logger.warning("pool %s: cmd rejected: %r", self.pool.name, payload[:200])
            return
        if command.epoch is not None and command.epoch < self.highest_epoch():
            # A deposed leader's: it neither replaces a waiting cmd nor interrupts the reads.
            self.metrics.commands.labels(self.pool.name, "fenced").inc()
            logger.warning("pool %s: cmd seq %d of epoch %d refused: epoch %d leads",
                           self.pool.name, command.seq, command.epoch,
                           self.highest_epoch())  # fmt: skip
            return
        self.pending = (command, time.monotonic())
        self.wake.set()
        # A cmd goes first: a telemetry round (thousands of reads on a big pool) would hold
        # the call slots and the CPU. None starts until the cmd is carried out (its follow-up
        # reads the miners it acted on), and the one in flight gives way, unless the last
        # complete round is old: cmds coming faster than a round (CLR base points every few
        # seconds) must not starve the reads the retries and the reported power depend on.
        if self.polled.is_set():
            self.quiet.clear()
            in_flight = self._round
            recent = time.monotonic() - self.round_done_at < 2 * self.poll_s
            if in_flight is not None and not in_flight.done() and recent:
                in_flight.cancel()

    def highest_epoch(self) -> int:
        """The highest epoch obeyed or waiting to be."""
        waiting = self.pending[0].epoch if self.pending is not None else None
        return max(self.pool.memory.epoch, waiting or 0)

    def publish_state(self) -> None:
        self.session.publish(self.state_topic, state_payload(self.pool.state(), time.time()),
                             retain=True)  # fmt: skip
        self.metrics.observe(self.pool)

    async def run_commands(self) -> None:
        await self.polled.wait()  # plan against real readings, not the nominal defaults
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.pending is None:
                continue
            (command, received), self.pending = self.pending, None
            try:
                await self._carry_out(command, received)
            except Exception:
                logger.exception("pool %s: cmd %d failed", self.pool.name, command.seq)
            if self.pending is None:
                self.quiet.set()

    async def _carry_out(self, command: Command, received: float) -> None:
        applied, epoch = self.pool.applied_seq, self.pool.memory.epoch
        verdict = admits(command, applied, epoch, self.started_fresh)
        if verdict != "carry_out":
            self.metrics.commands.labels(self.pool.name, verdict).inc()
            logger.info("pool %s: cmd seq %d epoch %s %s (last carried out %d, epoch %d)",
                        self.pool.name, command.seq, command.epoch, verdict, applied,
                        epoch)  # fmt: skip
            return
        self.started_fresh = False
        result = await self.pool.carry_out(command.seq, command.target_kw, command.epoch)
        elapsed = time.monotonic() - received
        self.metrics.command_seconds.labels(self.pool.name).observe(elapsed)
        self.metrics.commands.labels(self.pool.name, "carried_out").inc()
        logger.info("pool %s: cmd seq %d target %.1f kW: %d changes, plan %.1f kW, %.3f s",
                    self.pool.name, command.seq, command.target_kw, len(result.actions),
                    result.planned_w / 1000.0, elapsed)  # fmt: skip
        self.publish_state()
        if result.actions:
            follow_up = asyncio.create_task(self._follow_up(list(result.actions)))
            self.follow_ups.add(follow_up)
            follow_up.add_done_callback(self.follow_ups.discard)

    async def _follow_up(self, ips: list[str]) -> None:
        """Read the acted miners again once they have had time to settle, and report: the
        controller confirms by telemetry, so the sooner it sees the new draw the better."""
        await asyncio.sleep(FOLLOW_UP_S)
        await self.pool.refresh(ips)
        self.publish_state()

    async def run_telemetry(self) -> None:
        while True:
            await self.quiet.wait()
            started = time.monotonic()
            self._round = asyncio.create_task(self._telemetry_round())
            try:
                await self._round
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the agent is stopping
                logger.debug("pool %s: telemetry round gave way to a cmd", self.pool.name)
            except Exception:
                logger.exception("pool %s: telemetry round failed", self.pool.name)
            await asyncio.sleep(max(0.0, self.poll_s - (time.monotonic() - started)))

    async def _telemetry_round(self) -> None:
        await self.pool.refresh()
        self.polled.set()
        await self.pool.replan_if_changed()
        retried = await self.pool.reconcile()
        if retried:
            self.metrics.retries.labels(self.pool.name).inc(retried)
        self.pool.save()
        self.publish_state()
        self.round_done_at = time.monotonic()


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        section = config.agent
        self.metrics = AgentMetrics()
        self.driver = MinerDriver(section.miner_timeout_s, section.concurrency)
        defaults = Defaults(section.miner_nominal_w, section.miner_j_per_th)
        self.session = MqttSession(
            config.mqtt,
            [f"{section.topic_prefix}/pools/{p.name}/cmd" for p in section.pools],
            self._on_message,
            self._on_connect,
            client_id=f"{config.mqtt.client_id}-agent",
        )
        self.workers = {}
        for spec in section.pools:
            pool = PoolAgent(spec.name, spec.ips, self.driver,
                             PoolStore(section.state_dir, spec.name), defaults,
                             settle_s=max(3.0, section.poll_s))  # fmt: skip
            worker = PoolWorker(pool, section.topic_prefix, self.session, self.metrics,
                                section.poll_s)  # fmt: skip
            self.workers[worker.cmd_topic] = worker
        self._stop = asyncio.Event()

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        worker = self.workers.get(topic)
        if worker is not None:
            worker.offer(payload)

    async def _on_connect(self) -> None:
        for worker in self.workers.values():
            if worker.polled.is_set():
                worker.publish_state()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        if self.config.agent.metrics_listen:
            self.metrics.serve(self.config.agent.metrics_listen)
        tasks = [asyncio.create_task(self.session.run())]
        for worker in self.workers.values():
            tasks.append(asyncio.create_task(worker.run_telemetry()))
            tasks.append(asyncio.create_task(worker.run_commands()))
        await self._stop.wait()
        finals = []
        for worker in self.workers.values():
            worker.pool.save()
            offline = {**worker.pool.state(), "online": False}
            finals.append(OutMessage(worker.state_topic, state_payload(offline, time.time()),
                                     retain=True))  # fmt: skip
        for worker in self.workers.values():
            tasks.extend(worker.follow_ups)
        for task in tasks[1:]:
            task.cancel()
        await self.session.close(finals)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def serve(config: AgentConfig) -> int:
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stop)
    await agent.run()
    return 0
