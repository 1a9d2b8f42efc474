"""The demo's simulated site: 60 MW POI, a 20 MW GPU tenant on protected PDUs, twelve pools.

Economics run at replay speed: a 15-minute interval lasts a fraction of a second, so dwell
times and staleness are scaled to match (see `demo_config`).
"""

from __future__ import annotations

import socket
from typing import Any

from controller.config import Config
from controller.config_checks import check_site

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_config(broker_port: int, metrics_port: int, state_dir: str) -> Config:
    pools: list[dict[str, Any]] = []
    pdus: list[dict[str, Any]] = []
    for name, driver, max_kw, eff, ufr in POOLS:
        pool: dict[str, Any] = {
            "name": name,
            "driver": driver,
            "max_kw": max_kw,
            "efficiency_j_per_th": eff,
            "ufr": ufr,
        }
        if driver == "pdu":
            pdus.append(
                {
                    "name": f"pdu-{name}",
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "outlets": 24,
                    "outlet_kw": 14.0,
                }
            )
            pool["pdus"] = [f"pdu-{name}"]
        elif driver == "mqtt":
            # Two PDUs feed each agent pool: the hard-cut path if its agent stops listening.
            names = [f"pdu-{name}-1", f"pdu-{name}-2"]
            pdus.extend(
                {
                    "name": pdu,
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "outlets": 48,
                    "outlet_kw": max_kw / 96 * 1.2,
                }
                for pdu in names
            )
            pool["pdus"] = names
        else:
            pool.update({"host": "127.0.0.1", "port": free_port(), "unit_id": 1})
        pools.append(pool)
    gpu_pdus = [f"pdu-gpu-{i}" for i in range(1, 5)]
    pdus.extend(
        {
            "name": name,
            "host": "127.0.0.1",
            "port": free_port(),
            "outlets": 48,
            "outlet_kw": 60.0,
            "protected": True,
        }
        for name in gpu_pdus
    )
    data: dict[str, Any] = {
        "site": {
            "name": "demo-west",
            "poi_limit_kw": 60000,
            "aux_kw": 1500,
            "margin_kw": 500,
            "settlement_point": "HB_WEST",
        },
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "client_id": "curtaild-demo",
            "topic_prefix": "curtaild/demo-west",
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
        "meters": [
            {"name": "poi", "role": "site", "host": "127.0.0.1", "port": free_port()},
            {"name": "gpu-a", "role": "gpu", "host": "127.0.0.1", "port": free_port()},
        ],
        "gpu_tenants": [
            {"name": "tenant-a", "firm_kw": 20000, "meters": ["gpu-a"], "pdus": gpu_pdus}
        ],
        "pools": pools,
        "pdus": pdus,
    }
    config = Config.model_validate(data)
    problems = check_site(config)
    if problems:  # a bug in this module, not a user error
        raise AssertionError(problems)
    return config
