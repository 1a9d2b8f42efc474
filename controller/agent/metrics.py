"""The agent's own Prometheus metrics, on `[agent] metrics_listen` (a thread: no loop stalls)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from controller.agent.pool import PoolAgent


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.miners = Gauge("curtaild_agent_miners", "Miners configured", ["pool"], registry=r)
        self.up = Gauge("curtaild_agent_miners_up", "Miners answering", ["pool"], registry=r)
        self.sleeping = Gauge(
            "curtaild_agent_miners_sleeping", "Miners asleep", ["pool"], registry=r
        )
        self.limited = Gauge(
            "curtaild_agent_miners_limited", "Miners under a power limit", ["pool"], registry=r
        )
        self.pending = Gauge(
            "curtaild_agent_miners_pending",
            "Miners whose telemetry does not yet show the wanted state",
            ["pool"],
            registry=r,
        )
        self.power = Gauge("curtaild_agent_power_watts", "Pool draw", ["pool"], registry=r)
        self.seq = Gauge("curtaild_agent_applied_seq", "Last cmd seq carried out", ["pool"],
                         registry=r)  # fmt: skip
        self.commands = Counter(
            "curtaild_agent_commands", "Cmds received", ["pool", "outcome"], registry=r
        )
        self.command_seconds = Histogram(
            "curtaild_agent_command_seconds",
            "From cmd received to every miner commanded",
            ["pool"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.retries = Counter(
            "curtaild_agent_retries", "Actions issued again", ["pool"], registry=r
        )
        self.miner_calls_failed = Gauge(
            "curtaild_agent_miner_calls_failed", "pyasic calls that failed or timed out",
            registry=r,
        )  # fmt: skip

    def serve(self, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)

    def observe(self, pool: PoolAgent) -> None:
        counts = pool.counts()
        name = pool.name
        self.miners.labels(name).set(counts.total)
        self.up.labels(name).set(counts.up)
        self.sleeping.labels(name).set(counts.sleeping)
        self.limited.labels(name).set(counts.limited)
        self.pending.labels(name).set(counts.pending)
        self.power.labels(name).set(pool.state()["power_kw"] * 1000.0)
        self.seq.labels(name).set(pool.applied_seq)
        self.miner_calls_failed.set(pool.driver.failures)
