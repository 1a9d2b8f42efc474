"""The demo's simulated site: 60 MW POI, a 20 MW GPU tenant on protected PDUs, twelve pools.

Economics run at replay speed: a 15-minute interval lasts a fraction of a second, so dwell
times and staleness are scaled to match (see `demo_config`).
"""

from __future__ import annotations

from typing import Any

from controller.config import Config
from controller.drivers.kinds import pool_kind
from controller.sim.configs import PoolShape, TenantShape, build_config, free_ports, site_data

DEMO_PREFIX = "curtaild/demo-west"

# (name, driver, max_kw, J/TH, ufr): mixed generations, least efficient curtailed first.
POOLS = [
    ("s21-a", "mqtt", 4000, 17.5, False),
    ("s21-b", "mqtt", 4000, 17.5, False),
    ("s19xp-a", "mqtt", 3500, 21.5, True),
    ("s19xp-b", "modbus", 3500, 21.5, False),
    ("s19jpro-a", "mqtt", 3000, 29.5, True),
    ("s19jpro-b", "modbus", 3000, 29.5, False),
    ("m30s-a", "mqtt", 3000, 31.0, False),
    ("m30s-b", "modbus", 3000, 31.0, False),
    ("s19-a", "mqtt", 2500, 34.5, False),
    ("s19-b", "mqtt", 2500, 34.5, False),
    ("s17-a", "mqtt", 2000, 45.0, False),
    ("s9-lab", "pdu", 336, 98.0, False),
]


def demo_config(
    broker_port: int, metrics_port: int, state_dir: str, lab_pool: tuple[str, float] | None = None
) -> Config:
    """`lab_pool` (name, max_kw): one more MQTT pool at 30 J/TH, for the real agent's miners."""
    pools: list[tuple[str, str, float, float, bool]] = list(POOLS)
    if lab_pool is not None:
        pools.append((lab_pool[0], "mqtt", lab_pool[1], 30.0, False))
    shapes = [_shape(name, driver, max_kw, eff, ufr) for name, driver, max_kw, eff, ufr in pools]
    tenant = TenantShape(
        "tenant-a",
        20000,
        meters=("gpu-a",),
        pdus=tuple(f"pdu-gpu-{i}" for i in range(1, 5)),
        outlets=48,
        outlet_kw=60.0,
    )
    sections: dict[str, Any] = {
        "site": {"settlement_point": "HB_WEST"},
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "client_id": "curtaild-demo",
            "topic_prefix": DEMO_PREFIX,
            "keepalive_s": 10,
        },
        "feeds": {
            "price_topic": "ercot/prices/#",
            "price_stale_s": 60,
            "dispatch_topic": "qse/demo-west/dispatch",
        },
        # One replayed interval lasts well under a second: dwell and ramp are scaled with it.
        "economics": {
            "hashprice_usd_per_ph_day": 50.0,
            "pool_fee": 0.02,
            "hysteresis_usd_per_mwh": 5.0,
            "min_run_s": 1.0,
            "min_curtail_s": 1.0,
        },
        "control": {
            "tick_s": 0.5,
            "confirm_timeout_s": 3.0,
            "ramp_up_kw_per_s": 20000,
            "state_dir": state_dir,
            "decision_budget_ms": 250,
        },
        "dispatch": {"frequency_reset_s": 5},
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
    }
    data = site_data(
        shapes,
        [tenant],
        poi_limit_kw=60000,
        aux_kw=1500,
        margin_kw=500,
        name="demo-west",
        ports=free_ports(),
        sections=sections,
    )
    return build_config(data)


def _shape(name: str, driver: str, max_kw: float, eff: float, ufr: bool) -> PoolShape:
    kind = pool_kind(driver)
    if kind.switches_outlets:
        return PoolShape(name, driver, max_kw, eff, ufr=ufr, outlets=24, outlet_kw=14.0)
    if kind.reports_itself:
        # Two PDUs feed each agent pool: the hard-cut path if its agent stops listening.
        return PoolShape(
            name, driver, max_kw, eff, ufr=ufr, outlets=48, outlet_kw=max_kw / 96 * 1.2, pdus=2
        )
    return PoolShape(name, driver, max_kw, eff, ufr=ufr, outlets=0)
