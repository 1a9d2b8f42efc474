"""Site configs from shapes: the one builder of the tests, the benchmarks and the demo.

A site is described as `PoolShape`s and `TenantShape`s; `site_data` turns them into the dict a
TOML file would give (every device on its own Modbus address), `with_sections` lays a test's
overrides on top, and `build_config` validates the result as `load_config` would (field models,
then the cross-field `check_site` rules) without a file.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.config import Config
from controller.config_checks import check_site
from controller.drivers.kinds import pool_kind

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class PoolShape:
    """One mining pool behind `pdus` PDUs of `outlets` x `outlet_kw` (0 outlets: no PDU)."""

    name: str
    driver: str = "mqtt"  # mqtt | modbus | pdu
    max_kw: float = 3000.0
    efficiency_j_per_th: float = 21.5
    strike_usd_per_mwh: float = 0.0
    ufr: bool = False
    outlets: int = 24
    outlet_kw: float = 3.5
    pdus: int = 1

    @property
    def pdu_names(self) -> tuple[str, ...]:
        if self.outlets <= 0 or self.pdus <= 0:
            return ()
        if self.pdus == 1:
            return (f"pdu-{self.name}",)
        return tuple(f"pdu-{self.name}-{i}" for i in range(1, self.pdus + 1))


@dataclass(frozen=True, slots=True)
class TenantShape:
    """One GPU tenant: its meters, and its protected PDUs of `outlets` x `outlet_kw`."""

    name: str
    firm_kw: float = 2000.0
    meters: tuple[str, ...] = ()
    pdus: tuple[str, ...] = ()
    outlets: int = 24
    outlet_kw: float = 10.0

    @classmethod
    def numbered(cls, name: str, firm_kw: float, meters: int = 1, pdus: int = 1) -> TenantShape:
        """A tenant with `meters` GPU meters and `pdus` protected PDUs named after it."""
        return cls(
            name,
            firm_kw,
            tuple(f"gpu-{name}-{i}" for i in range(meters)),
            tuple(f"pdu-gpu-{name}-{i}" for i in range(pdus)),
        )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; a tiny reuse race remains)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def free_ports() -> Iterator[int]:
    """Distinct free ports: the OS may hand the same one out twice in a row, and two devices on
    one port would fail check_site (about 1 site in 300 did)."""
    taken: set[int] = set()
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            yield port


def site_data(
    pools: Sequence[PoolShape],
    tenants: Sequence[TenantShape] = (),
    *,
    poi_limit_kw: float,
    backup_limit_kw: float = 0.0,
    aux_kw: float = 0.0,
    margin_kw: float = 0.0,
    site_meter: bool = True,
    name: str = "site",
    ports: Iterator[int] | None = None,
    sections: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The config dict of a site (the site meter is `poi`); `ports` numbers the devices' Modbus
    ports (default 1, 2, ...); `sections` as in `with_sections`."""
    ports = ports if ports is not None else itertools.count(1)
    meters: list[dict[str, Any]] = []
    pdus: list[dict[str, Any]] = []
    if site_meter:
        meters.append(_device("poi", next(ports), role="site"))
    tenant_entries = []
    for tenant in tenants:
        meters += [_device(m, next(ports), role="gpu") for m in tenant.meters]
        pdus += [_pdu(p, next(ports), tenant.outlets, tenant.outlet_kw, True) for p in tenant.pdus]
        tenant_entries.append(
            {
                "name": tenant.name,
                "firm_kw": float(tenant.firm_kw),
                "meters": list(tenant.meters),
                "pdus": list(tenant.pdus),
            }
        )
    pool_entries = []
    for shape in pools:
        entry: dict[str, Any] = {
            "name": shape.name,
            "driver": shape.driver,
            "max_kw": float(shape.max_kw),
            "efficiency_j_per_th": float(shape.efficiency_j_per_th),
            "strike_usd_per_mwh": float(shape.strike_usd_per_mwh),
            "ufr": shape.ufr,
            "pdus": list(shape.pdu_names),
        }
        if pool_kind(shape.driver).plc:
            entry.update(host=LOOPBACK, port=next(ports), unit_id=1)
        pool_entries.append(entry)
        pdus += [_pdu(p, next(ports), shape.outlets, shape.outlet_kw) for p in shape.pdu_names]
    data: dict[str, Any] = {
        "site": {
            "name": name,
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
    return with_sections(data, sections or {})


def with_sections(data: Mapping[str, Any], sections: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with each of `sections` laid on top: a table merged key by key into the table it
    meets, anything else (a list of pools, say) replacing what was there."""
    out = dict(data)
    for key, value in sections.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def build_config(data: Mapping[str, Any]) -> Config:
    """Validate like `load_config` does, without a file; fail loudly on any cross-field problem
    (a bug in the caller's site, not a user error)."""
    config = Config.model_validate(dict(data))
    problems = check_site(config)
    if problems:
        raise AssertionError("invalid site: " + "; ".join(problems))
    return config


def mixed_pools(n_pools: int, *, outlets: int = 24, outlet_kw: float = 3.5) -> list[PoolShape]:
    """`n_pools` pools cycling through the three drivers and a spread of efficiencies, each
    behind one PDU of `outlets` x `outlet_kw` that its max_kw fills; every fifth one ufr."""
    drivers = ("mqtt", "modbus", "pdu")
    efficiencies = (17.0, 19.5, 21.5, 24.0, 27.0, 30.0, 34.0)
    return [
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


def mixed_site(
    n_pools: int,
    *,
    outlets: int = 24,
    outlet_kw: float = 3.5,
    tenants: int = 1,
    firm_kw: float = 1000.0,
    aux_kw: float = 500.0,
    margin_kw: float = 100.0,
    headroom: float = 1.0,
    sections: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`mixed_pools` and `tenants` tenants of `firm_kw` (backup power for just those); the POI
    leaves `headroom` x the fleet's capacity above the firm GPU load, aux and margin."""
    shapes = mixed_pools(n_pools, outlets=outlets, outlet_kw=outlet_kw)
    tenant_shapes = [TenantShape.numbered(f"t{i}", firm_kw) for i in range(tenants)]
    firm_total_kw = firm_kw * tenants
    return site_data(
        shapes,
        tenant_shapes,
        poi_limit_kw=firm_total_kw + aux_kw + margin_kw + headroom * sum(s.max_kw for s in shapes),
        backup_limit_kw=firm_total_kw,
        aux_kw=aux_kw,
        margin_kw=margin_kw,
        sections=sections,
    )


def _device(name: str, port: int, **fields: Any) -> dict[str, Any]:
    return {"name": name, "host": LOOPBACK, "port": port, "unit_id": 1, **fields}


def _pdu(
    name: str, port: int, outlets: int, outlet_kw: float, protected: bool = False
) -> dict[str, Any]:
    return _device(name, port, outlets=outlets, outlet_kw=float(outlet_kw), protected=protected)
