"""Simulated pool agents (CONTRACT 2.4) for the demo, the integration tests and the benchmarks.

An agent follows the retained desired state on `{prefix}/pools/{pool}/cmd` after a response
delay and reports `{prefix}/pools/{pool}/state` (retained) at start, on every change and every
`state_interval_s`. `SimPoolFleet` runs any number of agents over one MQTT connection, so a
200-pool site costs one client, not 200.

Faults to test against: `ignore_commands=True` is a stuck agent (keeps drawing, never applies a
seq), `ramp_kw_per_s` a slow one, `force_power_kw()` the PDU outlets being switched off under it,
`go_silent()` a dead agent process (its miners keep drawing, nothing is reported or carried out;
`alive=False` at construction is an agent absent at start), `come_back()` its restart (it reads
the retained cmd again), and `reboot_at_full_power()` miners that come back from a reboot flat out
and deaf to commands for a while. Like the real agent (CONTRACT 2.7) a cmd whose `seq` is not above
the last one carried out is ignored, except the retained one re-read after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from controller.adapters.mqtt import MqttSession, OutMessage
from controller.agent.protocol import Command, admits, parse_cmd
from controller.config import MqttConfig

Clock = Callable[[], float]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


class SimPoolAgent:
    """One pool's agent. Power model: draw = min(target, available), capped by `force_power_kw`."""

    def __init__(
        self,
        prefix: str,
        pool_name: str,
        max_kw: float,
        response_delay_s: float = 0.2,
        ignore_commands: bool = False,
        ramp_kw_per_s: float | None = None,
        *,
        alive: bool = True,
        applied_seq: int = 0,
    ) -> None:
        self.prefix = prefix
        self.name = pool_name
        self.max_kw = max_kw
        self.response_delay_s = response_delay_s
        self.ignore_commands = ignore_commands
        self.ramp_kw_per_s = ramp_kw_per_s
        self.cmd_topic = f"{prefix}/pools/{pool_name}/cmd"
        self.state_topic = f"{prefix}/pools/{pool_name}/state"
        self.available_kw = max_kw
        self.online = True
        self.alive = alive  # False: the agent process is down (absent or silent)
        self.applied_seq = applied_seq
        self.epoch = 0  # the highest leadership epoch obeyed (docs/ha.md); 0: none seen
        self.target_kw: float | None = None  # None: never commanded, mines flat out
        self.last_command: dict[str, Any] | None = None
        self.commands_received = 0
        self.commands_rejected = 0
        self.commands_ignored = 0  # valid, but a seq not above the last carried out
        self.commands_fenced = 0  # valid, but from an epoch below one obeyed (a deposed leader)
        self._unread_cmd: bytes | None = None  # the retained cmd a dead agent will read on restart
        self._deaf_until = -math.inf  # loop time: rebooting miners ignore commands until then
        self._drawn_kw = max_kw  # what the miners draw before any PDU cap
        self._cap_kw: float | None = None
        # Set by the fleet: called whenever the reported state changes.
        self.on_change: Callable[[SimPoolAgent], None] | None = None

    @property
    def power_kw(self) -> float:
        if self._cap_kw is None:
            return self._drawn_kw
        return min(self._drawn_kw, self._cap_kw)

    @property
    def goal_kw(self) -> float:
        """Where the miners are heading: the applied target within what is available."""
        target = self.available_kw if self.target_kw is None else self.target_kw
        return max(0.0, min(target, self.available_kw))

    def force_power_kw(self, kw: float | None) -> None:
        """Cap the pool's draw at `kw` whatever the agent does (0: every outlet off); None lifts it.

        The hook a simulated PDU calls when it switches outlets: power follows the outlets, the
        applied seq does not.
        """
        self._cap_kw = None if kw is None else max(0.0, kw)
        self._changed()

    def set_available_kw(self, kw: float) -> None:
        self.available_kw = max(0.0, kw)
        if self.ramp_kw_per_s is None:
            self._drawn_kw = self.goal_kw
        self._changed()

    def set_online(self, online: bool) -> None:
        self.online = online
        self._changed()

    def handle_command(self, payload: bytes, *, reread: bool = False) -> None:
        """A cmd message: validate, then apply after the response delay (never for a stuck one).

        `reread`: the retained cmd read again after a restart, carried out even at the same seq.
        """
        if not self.alive:
            self._unread_cmd = payload  # retained by the broker, read when the agent is back
            return
        self.commands_received += 1
        command = parse_cmd(payload)  # the real agent's own check of a cmd (CONTRACT 2.4)
        if command is None:
            self.commands_rejected += 1
            return
        self.last_command = json.loads(payload)
        if self.ignore_commands:
            return  # stuck: the miners keep drawing, the seq is never reported applied
        loop = asyncio.get_running_loop()
        if loop.time() < self._deaf_until:
            return  # rebooting: read again once the miners listen (see reboot_at_full_power)
        loop.call_later(self.response_delay_s, self._apply, command, reread)

    def _apply(self, command: Command, reread: bool = False) -> None:
        verdict = admits(command, self.applied_seq, self.epoch, reread)  # the real agent's rule
        if verdict == "fenced":
            self.commands_fenced += 1
            return
        if verdict == "ignored":
            self.commands_ignored += 1  # not above the last carried out: seq only grows
            return
        self.applied_seq = command.seq
        self.epoch = max(self.epoch, command.epoch or 0)
        self.target_kw = command.target_kw
        if self.ramp_kw_per_s is None:
            self._drawn_kw = self.goal_kw
        self._changed()

    # -- agent process faults ----------------------------------------------------------------

    def go_silent(self) -> None:
        """The agent process dies: its miners keep drawing; no state, no command carried out."""
        self.alive = False

    def come_back(self) -> None:
        """The agent (re)starts: reports its state and carries out the retained cmd again."""
        self.alive = True
        self._changed()
        unread, self._unread_cmd = self._unread_cmd, None
        if unread is not None:
            self.handle_command(unread, reread=True)
        elif self.last_command is not None:
            self.handle_command(_dumps(self.last_command), reread=True)

    def reboot_at_full_power(self, deaf_s: float) -> None:
        """Miners come back from a reboot drawing all they can and ignore commands for `deaf_s`;
        then the agent carries out the latest cmd it holds (the retained one), whatever its seq."""
        loop = asyncio.get_running_loop()
        self._deaf_until = loop.time() + deaf_s
        self._drawn_kw = self.available_kw
        self._changed()
        loop.call_later(deaf_s, self._listen_again)

    def _listen_again(self) -> None:
        self._deaf_until = -math.inf
        if self.last_command is not None and self.alive:
            self.handle_command(_dumps(self.last_command), reread=True)

    def step(self, dt_s: float) -> bool:
        """Advance a ramping agent by `dt_s`; True when its reported power changed."""
        if self.ramp_kw_per_s is None or self._drawn_kw == self.goal_kw:
            return False
        before = self.power_kw
        step_kw = self.ramp_kw_per_s * dt_s
        delta = self.goal_kw - self._drawn_kw
        self._drawn_kw = (
            self.goal_kw
            if abs(delta) <= step_kw
            else self._drawn_kw + math.copysign(step_kw, delta)
        )
        return self.power_kw != before

    def state(self, now: float) -> dict[str, Any]:
        state = {
            "seq": self.applied_seq,
            "power_kw": round(self.power_kw, 3),
            "available_kw": round(self.available_kw, 3),
            "online": self.online,
            "at": iso(now),
        }
        if self.epoch:
            state["epoch"] = self.epoch
        return state

    def state_payload(self, now: float) -> bytes:
        return _dumps(self.state(now))

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class SimPoolFleet:
    """Many agents on one MQTT session: one wildcard subscription per prefix, routed by topic."""

    def __init__(
        self,
        cfg: MqttConfig,
        agents: Iterable[SimPoolAgent],
        *,
        client_id: str | None = None,
        state_interval_s: float = 1.0,
        tick_s: float = 0.1,
        clock: Clock = time.time,
    ) -> None:
        self.agents = {agent.cmd_topic: agent for agent in agents}
        self.state_interval_s = state_interval_s
        self.tick_s = tick_s
        self.clock = clock
        for agent in self.agents.values():
            agent.on_change = self._publish_state
        subscriptions = sorted({f"{a.prefix}/pools/+/cmd" for a in self.agents.values()})
        self.session = MqttSession(
            cfg,
            subscriptions,
            self._on_message,
            self._on_connect,
            client_id=client_id or f"{cfg.client_id}-sim-pools",
        )
        self._stop = asyncio.Event()

    def __getitem__(self, pool_name: str) -> SimPoolAgent:
        for agent in self.agents.values():
            if agent.name == pool_name:
                return agent
        raise KeyError(pool_name)

    async def run(self) -> None:
        """Serve until `close()`; the session reconnects by itself."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.session.run())
            group.create_task(self._tick())

    async def close(self) -> None:
        """Report every agent offline, then disconnect."""
        self._stop.set()
        now = self.clock()
        finals = []
        for agent in self.agents.values():
            if not agent.alive:
                continue  # a dead agent says no goodbye
            agent.online = False
            finals.append(OutMessage(agent.state_topic, agent.state_payload(now), retain=True))
        await self.session.close(finals)

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        agent = self.agents.get(topic)
        if agent is not None:
            agent.handle_command(payload)

    async def _on_connect(self) -> None:
        self._publish_all()

    def _publish_state(self, agent: SimPoolAgent) -> None:
        if agent.alive and not self._stop.is_set():
            self.session.publish(agent.state_topic, agent.state_payload(self.clock()), retain=True)

    def _publish_all(self) -> None:
        for agent in self.agents.values():
            self._publish_state(agent)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last_tick = last_full = loop.time()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.tick_s)
            now = loop.time()
            for agent in self.agents.values():
                if agent.step(now - last_tick):
                    self._publish_state(agent)
            last_tick = now
            if now - last_full >= self.state_interval_s:
                last_full = now
                self._publish_all()
