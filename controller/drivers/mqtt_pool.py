"""MQTT pool driver (CONTRACT 2.4, driver = "mqtt"): a pool agent behind two topics.

The command is a retained `{seq, target_kw, at, reason}` on `<prefix>/pools/<name>/cmd`; the
agent answers with its state on `.../state`, which carries the seq it applied. The retained cmd
we read back at start is our own last command: its seq is reported so that the next command
goes out above it (CONTRACT 7 Startup). A publish the session cannot queue is tried again with
the next plan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from controller.clock import iso
from controller.config import PoolConfig
from controller.drivers.deps import PoolDeps, Publish
from controller.drivers.outlets import OutletGroup
from controller.drivers.pool import MessageHandler, PoolCommand, PoolDriver, PoolSink, SendLog
from controller.feeds.pool_state import parse_pool_state, peek_seq


def cmd_payload(cmd: PoolCommand) -> bytes:
    doc: dict[str, object] = {"seq": cmd.seq, "target_kw": round(cmd.target_kw, 3),
                              "at": iso(cmd.at)}  # fmt: skip
    doc["reason"] = cmd.reason
    if cmd.epoch is not None:  # a pair's leader: the agents refuse a deposed one's (2.4)
        doc["epoch"] = cmd.epoch
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


class MqttPool(PoolDriver):
    def __init__(
        self,
        cfg: PoolConfig,
        outlets: OutletGroup,
        *,
        publish: Publish,
        topic_prefix: str,
        sink: PoolSink,
    ) -> None:
        super().__init__(cfg, outlets)
        self._publish = publish
        self._sink = sink
        base = f"{topic_prefix.rstrip('/')}/pools/{cfg.name}"
        self.cmd_topic, self.state_topic = f"{base}/cmd", f"{base}/state"
        self._restored = False

    async def _send_command(self, cmd: PoolCommand, log: SendLog) -> None:
        if self._publish(self.cmd_topic, cmd_payload(cmd), 1, True):
            self.sent_seq = cmd.seq
            log.sent(self.kind.name)

    def restore(self, seq: int) -> None:
        super().restore(seq)
        self._restored = True  # the stored last cmd is ours too: repeated after a reconnect

    def republish(self, cmd: PoolCommand) -> None:
        """The retained cmd again with the same seq: a broker that lost it (restarted without
        persistence) gets it back (CONTRACT 7). A pool never commanded, by this life or the
        last, has nothing of ours to repeat."""
        if not (cmd.commanded or self._restored):
            return
        if self._publish(self.cmd_topic, cmd_payload(cmd), 1, True):
            self.sent_seq = cmd.seq

    def topics(self) -> Mapping[str, MessageHandler]:
        return {self.state_topic: self._on_state, self.cmd_topic: self._on_own_cmd}

    def _on_state(self, payload: bytes, received_at: float) -> None:
        self._sink.pool_telemetry(self.name, parse_pool_state(payload, self.max_kw, received_at))

    def _on_own_cmd(self, payload: bytes, _received_at: float) -> None:
        seq = peek_seq(payload)
        if seq is not None:
            self._sink.command_seq(self.name, seq)


def make(cfg: PoolConfig, deps: PoolDeps) -> MqttPool:
    return MqttPool(
        cfg, deps.outlets(cfg), publish=deps.publish, topic_prefix=deps.topic_prefix, sink=deps.sink
    )
