"""Builders for site configs, snapshots and validated inputs, for any unit test or property.

Plain functions over plain data (no hypothesis here): a test describes a site as a list of
`PoolShape` and `TenantShape`, `site_data` turns that into the dict a TOML file would give,
and `build_config` validates it exactly as `load_config` would (field models, then the
cross-field `check_site` rules) without needing a file. Snapshot-side builders make the
frozen inputs of `decide()` with their timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.config import Config, PoolConfig
from controller.config_checks import check_site
from controller.core.state import PoolState
from controller.model import (
    ActingPrice,
    DispatchInstruction,
    DispatchType,
    OverrideMode,
    OverrideRequest,
    PoolTelemetry,
    PriceProduct,
    Reading,
)

# A fixed, realistic epoch (2023-11-14T22:13:20Z) so that times in failures are readable.
T0 = 1_700_000_000.0
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class PoolShape:
    """One mining pool; `outlets` = 0 means it has no PDU (no hard-cut path)."""

    name: str
    driver: str = "mqtt"  # mqtt | modbus | pdu
    max_kw: float = 3000.0
    efficiency_j_per_th: float = 21.5
    strike_usd_per_mwh: float = 0.0
    ufr: bool = False
    outlets: int = 24
    outlet_kw: float = 3.5

    @property
    def pdu_name(self) -> str | None:
        return f"pdu-{self.name}" if self.outlets > 0 else None


@dataclass(frozen=True, slots=True)
class TenantShape:
    """One GPU tenant with `meters` GPU meters and `pdus` protected PDUs."""

    name: str
    firm_kw: float = 2000.0
    meters: int = 1
    pdus: int = 1

    @property
    def meter_names(self) -> tuple[str, ...]:
        return tuple(f"gpu-{self.name}-{i}" for i in range(self.meters))

    @property
    def pdu_names(self) -> tuple[str, ...]:
        return tuple(f"pdu-gpu-{self.name}-{i}" for i in range(self.pdus))


def pdu_entry(
    name: str, *, port: int, outlets: int = 24, outlet_kw: float = 3.5, protected: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "host": LOOPBACK,
        "port": port,
        "unit_id": 1,
        "outlets": outlets,
        "outlet_kw": float(outlet_kw),
        "protected": protected,
    }


def meter_entry(name: str, role: str, *, port: int) -> dict[str, Any]:
    return {"name": name, "role": role, "host": LOOPBACK, "port": port, "unit_id": 1}


def pool_entry(shape: PoolShape, *, port: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": shape.name,
        "driver": shape.driver,
        "max_kw": float(shape.max_kw),
        "efficiency_j_per_th": float(shape.efficiency_j_per_th),
        "strike_usd_per_mwh": float(shape.strike_usd_per_mwh),
        "ufr": shape.ufr,
        "pdus": [shape.pdu_name] if shape.pdu_name is not None else [],
    }
    if shape.driver == "modbus":
        entry.update(host=LOOPBACK, port=port, unit_id=1)
    return entry


def site_data(
    pools: Sequence[PoolShape],
    tenants: Sequence[TenantShape] = (),
    *,
    poi_limit_kw: float,
    backup_limit_kw: float = 0.0,
    aux_kw: float = 0.0,
    margin_kw: float = 0.0,
    site_meter: bool = True,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The config dict (as TOML would give it) of a site; `sections` adds or replaces keys."""
    ports = iter(range(1, 65536))
    meters: list[dict[str, Any]] = []
    pdus: list[dict[str, Any]] = []
    if site_meter:
        meters.append(meter_entry("poi", "site", port=next(ports)))
    tenant_entries = []
    for tenant in tenants:
        meters += [meter_entry(m, "gpu", port=next(ports)) for m in tenant.meter_names]
        pdus += [
            pdu_entry(p, port=next(ports), outlets=24, outlet_kw=10.0, protected=True)
            for p in tenant.pdu_names
        ]
        tenant_entries.append(
            {
                "name": tenant.name,
                "firm_kw": float(tenant.firm_kw),
                "meters": list(tenant.meter_names),
                "pdus": list(tenant.pdu_names),
            }
        )
    pool_entries = []
    for shape in pools:
        pool_entries.append(pool_entry(shape, port=next(ports)))
        if shape.pdu_name is not None:
            pdus.append(
                pdu_entry(
                    shape.pdu_name,
                    port=next(ports),
                    outlets=shape.outlets,
                    outlet_kw=shape.outlet_kw,
                )
            )
    data: dict[str, Any] = {
        "site": {
            "name": "prop",
            "poi_limit_kw": float(poi_limit_kw),
            "backup_limit_kw": float(backup_limit_kw),
            "aux_kw": float(aux_kw),
            "margin_kw": float(margin_kw),
        },
        "meters": meters,
        "gpu_tenants": tenant_entries,
        "pools": pool_entries,
        "pdus": pdus,
    }
    for key, values in (sections or {}).items():
        data[key] = {**data.get(key, {}), **values}
    return data


def build_config(data: Mapping[str, Any]) -> Config:
    """Validate like `load_config` does, without a file; fail loudly on any cross-field problem."""
    config = Config.model_validate(dict(data))
    problems = check_site(config)
    if problems:
        raise AssertionError("invalid test site: " + "; ".join(problems))
    return config


def mixed_site(
    n_pools: int,
    *,
    outlets: int = 24,
    outlet_kw: float = 3.5,
    tenants: int = 1,
    headroom: float = 1.0,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A site of `n_pools` pools cycling through the three drivers and a spread of efficiencies.

    Every pool has one PDU of `outlets` x `outlet_kw`; each pool's max_kw is its PDU capacity.
    The POI leaves `headroom` x total mining capacity above the firm GPU load, aux and margin.
    """
    drivers = ("mqtt", "modbus", "pdu")
    efficiencies = (17.0, 19.5, 21.5, 24.0, 27.0, 30.0, 34.0)
    shapes = [
        PoolShape(
            name=f"p{i:04d}",
            driver=drivers[i % 3],
            max_kw=outlets * outlet_kw,
            efficiency_j_per_th=efficiencies[i % len(efficiencies)],
            ufr=i % 5 == 0,
            outlets=outlets,
            outlet_kw=outlet_kw,
        )
        for i in range(n_pools)
    ]
    tenant_shapes = [TenantShape(f"t{i}", firm_kw=1000.0) for i in range(tenants)]
    firm_kw = sum(t.firm_kw for t in tenant_shapes)
    mining_kw = sum(s.max_kw for s in shapes)
    return site_data(
        shapes,
        tenant_shapes,
        poi_limit_kw=firm_kw + 500.0 + 100.0 + headroom * mining_kw,
        backup_limit_kw=firm_kw,
        aux_kw=500.0,
        margin_kw=100.0,
        sections=sections,
    )


def protected_pdu_names(config: Config) -> frozenset[str]:
    return frozenset(p.name for p in config.pdus if p.protected)


def breakeven_usd_per_mwh(pool: PoolConfig, hashprice_usd_per_ph_day: float, fee: float) -> float:
    """CONTRACT section 7, written out independently of the core's precomputed factor."""
    if pool.strike_usd_per_mwh > 0:
        return pool.strike_usd_per_mwh
    return hashprice_usd_per_ph_day * (1.0 - fee) * 1000.0 / (24.0 * pool.efficiency_j_per_th)


def outlet_capacity_kw(config: Config, pool: PoolConfig) -> list[float]:
    """The outlet sizes of a pool's PDUs in their fixed switching order."""
    pdus = {p.name: p for p in config.pdus}
    return [pdus[n].outlet_kw for n in pool.pdus for _ in range(pdus[n].outlets)]


# Snapshot side -------------------------------------------------------------------------


def reading(value: float, at: float) -> Reading:
    return Reading(float(value), float(at))


def acting_price(
    price_usd_per_mwh: float,
    received_at: float,
    *,
    interval_start: float | None = None,
    product: PriceProduct = "rt_spp",
) -> ActingPrice:
    start = received_at if interval_start is None else interval_start
    return ActingPrice(float(price_usd_per_mwh), start, received_at, product)


def telemetry(
    power_kw: float,
    at: float,
    *,
    available_kw: float | None = None,
    online: bool = True,
    applied_seq: int = 0,
) -> PoolTelemetry:
    return PoolTelemetry(float(power_kw), available_kw, online, applied_seq, at)


def following_telemetry(
    config: Config, pools: Mapping[str, PoolState], at: float
) -> dict[str, PoolTelemetry]:
    """Every pool at its target with the last seq applied (a cut pool at 0 kW)."""
    out: dict[str, PoolTelemetry] = {}
    for pool in config.pools:
        ps = pools.get(pool.name)
        power_kw = 0.0 if ps is None or ps.cut else ps.target_kw
        out[pool.name] = PoolTelemetry(
            power_kw=power_kw,
            available_kw=None if pool.driver == "pdu" else pool.max_kw,
            online=True,
            applied_seq=0 if ps is None else ps.seq,
            at=at,
        )
    return out


def dispatch(
    kind: str | DispatchType,
    msg_id: str,
    now: float,
    *,
    mining_kw_at_receipt: float = 0.0,
    mw: float | None = None,
    level: int | None = None,
    start: float | None = None,
    end: float | None = None,
    deadline_s: float = 0.0,
    recall_id: str | None = None,
) -> DispatchInstruction:
    """A validated instruction as the dispatch feed hands it over, received at `now`."""
    return DispatchInstruction(
        id=msg_id,
        type=DispatchType(kind),
        notified_at=now,
        received_at=now,
        mining_kw_at_receipt=mining_kw_at_receipt,
        mw=mw,
        level=level,
        start=start,
        end=end,
        deadline_s=deadline_s,
        recall_id=recall_id,
    )


def override(
    mode: OverrideMode,
    now: float,
    *,
    ttl_s: float = 600.0,
    limit_kw: float | None = None,
    nonce: str | None = None,
    operator: str = "op",
) -> OverrideRequest:
    """A validated override request issued at `now` (auto: no expiry)."""
    return OverrideRequest(
        mode=mode,
        limit_kw=limit_kw,
        expires_at=None if mode == "auto" else now + ttl_s,
        operator=operator,
        reason="test",
        issued_at=now,
        nonce=nonce if nonce is not None else f"n-{now!r}-{mode}",
    )
