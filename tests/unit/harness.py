"""A tiny closed-loop harness for table tests: pools follow (or ignore) their targets."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from controller.config import Config
from controller.config_checks import check_site
from controller.core.decide import decide
from controller.core.plan import Decision, DispatchAck, Snapshot
from controller.core.site import SiteModel, compile_site
from controller.core.state import ControllerState, initial_state
from controller.model import (
    ActingPrice,
    DispatchInstruction,
    DispatchType,
    OverrideRequest,
    PoolTelemetry,
    Reading,
)


def make_config(**sections: Any) -> Config:
    """A valid small site: 30 MW POI, one 10 MW GPU tenant, three pools of falling efficiency."""
    data: dict[str, Any] = {
        "site": {"poi_limit_kw": 30000, "aux_kw": 1000, "margin_kw": 500},
        "economics": {"min_run_s": 0, "min_curtail_s": 0, "hysteresis_usd_per_mwh": 10},
        "control": {"ramp_up_kw_per_s": 1_000_000, "confirm_timeout_s": 5, "tick_s": 1.0},
        "meters": [
            {"name": "poi", "role": "site", "host": "127.0.0.1", "port": 1},
            {"name": "gpu-a", "role": "gpu", "host": "127.0.0.1", "port": 2},
        ],
        "gpu_tenants": [
            {"name": "tenant-a", "firm_kw": 10000, "meters": ["gpu-a"], "pdus": ["pdu-gpu"]}
        ],
        "pools": [
            {"name": "eff", "driver": "mqtt", "max_kw": 6000, "efficiency_j_per_th": 17.0,
             "pdus": ["pdu-eff"]},
            {"name": "mid", "driver": "mqtt", "max_kw": 6000, "efficiency_j_per_th": 22.0,
             "pdus": ["pdu-mid"], "ufr": True},
            {"name": "old", "driver": "mqtt", "max_kw": 6000, "efficiency_j_per_th": 30.0},
        ],
        "pdus": [
            {"name": "pdu-eff", "host": "127.0.0.1", "port": 3, "outlets": 24, "outlet_kw": 10},
            {"name": "pdu-mid", "host": "127.0.0.1", "port": 4, "outlets": 24, "outlet_kw": 10},
            {"name": "pdu-gpu", "host": "127.0.0.1", "port": 5, "outlets": 24, "outlet_kw": 10,
             "protected": True},
        ],
    }  # fmt: skip
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    config = Config.model_validate(data)
    problems = check_site(config)
    assert not problems, problems
    return config


@dataclass
class SiteSim:
    """Steps decide() with telemetry that follows the plan of the previous step."""

    config: Config
    now: float = 1000.0
    price: float | None = 20.0
    gpu_kw: float = 9000.0
    frequency_hz: float | None = 60.0
    islanded: bool = False
    site_meter_fresh: bool = True
    stuck: set[str] = field(default_factory=set)  # pools that ignore commands
    stuck_power_kw: dict[str, float] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)
    power_kw: dict[str, float] = field(default_factory=dict)
    applied_seq: dict[str, int] = field(default_factory=dict)
    state: ControllerState | None = None
    last: Decision | None = None
    inbox: list[DispatchInstruction] = field(default_factory=list)
    overrides: list[OverrideRequest] = field(default_factory=list)
    acks: list[tuple[str, str]] = field(default_factory=list)
    ack_log: list[DispatchAck] = field(default_factory=list)  # every ack, whole
    unreported: set[str] = field(default_factory=set)  # pools with no telemetry at all
    silent: dict[str, PoolTelemetry] = field(default_factory=dict)  # last report, frozen in time
    cmd_seq: dict[str, int] = field(default_factory=dict)  # our retained cmd, read back
    delayed: set[str] = field(default_factory=set)  # pools that lower a step late
    pending: dict[str, tuple[float, int]] = field(default_factory=dict)  # (power, seq) to come
    hashprice: float | None = None
    price_at: float | None = None  # the price was received then (None: fresh every step)

    def __post_init__(self) -> None:
        self.state = initial_state(self.now)
        self._site: SiteModel | None = None

    @property
    def site(self) -> SiteModel:
        """The compiled `config`, recompiled when a test swaps the config."""
        if self._site is None or self._site.config is not self.config:
            self._site = compile_site(self.config)
        return self._site

    @property
    def mining_kw(self) -> float:
        return sum(self.power_kw.values())

    def go_silent(self, name: str) -> None:
        """The pool's agent stops publishing: its last report stays, ageing."""
        self.silent[name] = PoolTelemetry(
            self.power_kw.get(name, 0.0), None, True, self.applied_seq.get(name, 0), self.now
        )

    def snapshot(self) -> Snapshot:
        t = self.now
        pools = {}
        for pool in self.config.pools:
            if pool.name in self.unreported:
                continue
            if pool.name in self.silent:
                pools[pool.name] = self.silent[pool.name]
                continue
            power = self.power_kw.get(pool.name, 0.0)
            pools[pool.name] = PoolTelemetry(
                power_kw=power,
                available_kw=pool.max_kw,
                online=pool.name not in self.offline,
                applied_seq=self.applied_seq.get(pool.name, 0),
                at=t,
            )
        site_kw = self.gpu_kw + self.mining_kw + self.config.site.aux_kw
        meters = {"gpu-a": Reading(self.gpu_kw, t)}
        if self.site_meter_fresh:
            meters["poi"] = Reading(site_kw, t)
        price = None
        if self.price is not None:
            at = t if self.price_at is None else self.price_at
            price = ActingPrice(self.price, at, at, "rt_spp")
        return Snapshot(
            price=price,
            hashprice_usd_per_ph_day=self.hashprice,
            meters_kw=meters,
            frequency_hz=None if self.frequency_hz is None else Reading(self.frequency_hz, t),
            islanded=Reading(1.0 if self.islanded else 0.0, t),
            pools=pools,
            dispatch_inbox=tuple(self.inbox),
            override_inbox=tuple(self.overrides),
            cmd_seq=dict(self.cmd_seq),
        )

    def step(self, dt_s: float = 1.0) -> Decision:
        """Advance time, decide, then let pools apply the new plan (telemetry for next step)."""
        self.now += dt_s
        assert self.state is not None
        decision = decide(self.snapshot(), self.state, self.now, self.site)
        self.inbox.clear()
        self.overrides.clear()
        self.state = decision.next_state
        self.last = decision
        self.acks += [(a.id, a.status) for a in decision.acks]
        self.ack_log += decision.acks
        for name, ps in decision.plan.pools.items():
            if name in self.unreported or name in self.silent:
                continue  # nobody there to carry the command out
            if name in self.stuck and not ps.cut:
                self.power_kw[name] = self.stuck_power_kw.get(name, self.power_kw.get(name, 0.0))
                continue
            follow = (0.0 if ps.cut else ps.target_kw, ps.seq)
            if name in self.delayed and follow[0] < self.power_kw.get(name, 0.0):
                # A lowering it was told last step happens now (raises act at once).
                follow, self.pending[name] = self.pending.get(name, follow), follow
            elif name in self.delayed:
                self.pending[name] = follow
            self.power_kw[name], self.applied_seq[name] = follow
        return decision

    def run(self, seconds: float, dt_s: float = 1.0) -> Decision:
        steps = max(1, int(seconds / dt_s))
        for _ in range(steps):
            decision = self.step(dt_s)
        return decision

    def targets(self) -> dict[str, float]:
        assert self.last is not None
        return {name: ps.target_kw for name, ps in self.last.plan.pools.items()}

    def dispatch(self, kind: str, msg_id: str = "D1", **fields: Any) -> None:
        values: dict[str, Any] = {
            "id": msg_id,
            "type": DispatchType(kind),
            "notified_at": self.now,
            "received_at": self.now,
            "mining_kw_at_receipt": self.mining_kw,
        }
        values.update(fields)
        self.inbox.append(DispatchInstruction(**values))

    def override(self, mode: str, ttl_s: float = 600, limit_kw: float | None = None) -> None:
        expires = None if mode == "auto" else self.now + ttl_s
        self.overrides.append(
            OverrideRequest(mode, limit_kw, expires, "op", "test", self.now, f"n{self.now}")  # type: ignore[arg-type]
        )


def with_pools(sim: SiteSim, **power_kw: float) -> SiteSim:
    sim.power_kw.update(power_kw)
    return sim


__all__ = ["SiteSim", "make_config", "replace", "with_pools"]
