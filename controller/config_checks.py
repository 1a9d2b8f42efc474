"""Cross-field configuration rules (CONTRACT section 1 and 7).

Each rule returns its own message with the key path, so `check-config` lists every problem.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from controller.config_model import Config
from controller.drivers.kinds import POOL_KINDS, pool_kind


def check_site(config: Config) -> list[str]:
    """Every cross-field problem of a field-valid config, one message each."""
    problems: list[str] = []
    problems += _check_names(config)
    problems += _check_meters(config)
    problems += _check_pdus(config)
    problems += _check_pools(config)
    problems += _check_addresses(config)
    problems += _check_limits(config)
    return problems


def _check_names(config: Config) -> list[str]:
    problems = []
    devices = [m.name for m in config.meters] + [p.name for p in config.pdus]
    devices += [p.name for p in config.pools]
    for name, count in Counter(devices).items():
        if count > 1:
            problems.append(
                f"device name {name!r}: used by {count} devices (meters, pdus and pools share "
                "one namespace); give each device its own name"
            )
    for name, count in Counter(t.name for t in config.gpu_tenants).items():
        if count > 1:
            problems.append(f"gpu_tenants: name {name!r} is used {count} times")
    return problems


def _check_meters(config: Config) -> list[str]:
    problems = []
    sites = [m.name for m in config.meters if m.role == "site"]
    if len(sites) > 1:
        problems.append(f"meters: {len(sites)} meters have role = 'site' ({sites}); at most one")
    meters = {m.name: m for m in config.meters}
    claimed: Counter[str] = Counter()
    for i, tenant in enumerate(config.gpu_tenants):
        for j, name in enumerate(tenant.meters):
            meter = meters.get(name)
            if meter is None:
                problems.append(f"gpu_tenants.{i}.meters.{j}: no meter named {name!r}")
            elif meter.role != "gpu":
                problems.append(
                    f"gpu_tenants.{i}.meters.{j}: meter {name!r} has role = {meter.role!r}; "
                    "a tenant's meters must have role = 'gpu'"
                )
            claimed[name] += 1
    for name, count in claimed.items():
        if count > 1:
            problems.append(f"meter {name!r}: named by {count} gpu tenants; a meter has one owner")
    return problems


def _check_pdus(config: Config) -> list[str]:
    problems = []
    pdus = {p.name: p for p in config.pdus}
    owners: Counter[str] = Counter()
    for i, tenant in enumerate(config.gpu_tenants):
        for j, name in enumerate(tenant.pdus):
            pdu = pdus.get(name)
            if pdu is None:
                problems.append(f"gpu_tenants.{i}.pdus.{j}: no pdu named {name!r}")
            elif not pdu.protected:
                problems.append(
                    f"gpu_tenants.{i}.pdus.{j}: pdu {name!r} feeds a GPU tenant but has "
                    "protected = false; set protected = true (a tenant's PDU is never written)"
                )
            owners[name] += 1
    for i, pool in enumerate(config.pools):
        for j, name in enumerate(pool.pdus):
            pdu = pdus.get(name)
            if pdu is None:
                problems.append(f"pools.{i}.pdus.{j}: no pdu named {name!r}")
            elif pdu.protected:
                problems.append(
                    f"pools.{i}.pdus.{j}: pdu {name!r} is protected (a GPU tenant's PDU); "
                    "a pool may only name unprotected PDUs"
                )
            owners[name] += 1
    for name, count in owners.items():
        if count > 1:
            problems.append(f"pdu {name!r}: named by {count} pools or tenants; a PDU has one owner")
    return problems


def _check_pools(config: Config) -> list[str]:
    problems = []
    pdus = {p.name: p for p in config.pdus}
    for i, pool in enumerate(config.pools):
        where = f"pools.{i} ({pool.name})"
        kind = pool_kind(pool.driver)
        plc = (pool.host, pool.port, pool.unit_id)
        if kind.plc:
            missing = [
                k for k, v in zip(("host", "port", "unit_id"), plc, strict=True) if v is None
            ]
            if missing:
                problems.append(f"{where}: driver = {kind.name!r} requires {', '.join(missing)}")
        elif any(v is not None for v in plc):
            plcs = " or ".join(repr(k.name) for k in POOL_KINDS.values() if k.plc)
            problems.append(
                f"{where}: host/port/unit_id belong to driver = {plcs} only "
                f"(this pool has driver = {pool.driver!r})"
            )
        if kind.switches_outlets:
            if not pool.pdus:
                problems.append(
                    f"{where}: driver = {kind.name!r} requires at least one PDU in pdus"
                )
            capacity_kw = sum(pdus[n].outlets * pdus[n].outlet_kw for n in pool.pdus if n in pdus)
            if pool.pdus and pool.max_kw > capacity_kw + 1e-9:
                problems.append(
                    f"{where}: max_kw = {pool.max_kw:g} exceeds its PDUs' outlets x outlet_kw "
                    f"= {capacity_kw:g}"
                )
    return problems


def _check_addresses(config: Config) -> list[str]:
    """One Modbus address is one device (CONTRACT 7): otherwise a protected PDU could be
    written as a pool PDU under another name, or a meter read as something it is not."""
    devices: list[tuple[str, str, int, int]] = [
        (f"meters.{i} ({m.name})", m.host, m.port, m.unit_id) for i, m in enumerate(config.meters)
    ]
    devices += [
        (f"pdus.{i} ({p.name}{', protected' if p.protected else ''})", p.host, p.port, p.unit_id)
        for i, p in enumerate(config.pdus)
    ]
    devices += [
        (f"pools.{i} ({p.name})", p.host, p.port, p.unit_id)
        for i, p in enumerate(config.pools)
        if pool_kind(p.driver).plc and p.host is not None and p.port is not None
        and p.unit_id is not None
    ]  # fmt: skip
    first: dict[tuple[str, int, int], tuple[str, str]] = {}
    problems = []
    for where, host, port, unit_id in devices:
        address = (_host_key(host), port, unit_id)
        if address in first:
            other, other_host = first[address]
            problems.append(
                f"{where}: same Modbus address as {other}: host {other_host!r}, port {port}, "
                f"unit_id {unit_id}; one address is one device: correct host, port or unit_id "
                "or remove the duplicate"
            )
        else:
            first[address] = (where, host)
    return problems


def _host_key(host: str) -> str:
    """Hosts compare as written, without DNS (config checks do no I/O, and names can resolve
    differently later): IP literals in canonical form, names case-insensitively."""
    text = host.strip()
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return text.lower().rstrip(".")


def _check_limits(config: Config) -> list[str]:
    site = config.site
    firm_kw = sum(t.firm_kw for t in config.gpu_tenants)
    room_kw = site.poi_limit_kw - site.aux_kw - site.margin_kw
    problems = []
    if firm_kw > room_kw:
        problems.append(
            f"site.poi_limit_kw: {site.poi_limit_kw:g} kW leaves {room_kw:g} kW after aux_kw and "
            f"margin_kw, less than the firm GPU reservations ({firm_kw:g} kW)"
        )
    if config.dispatch.frequency_reset_hz <= config.dispatch.frequency_trip_hz:
        problems.append(
            "dispatch.frequency_reset_hz: must be above frequency_trip_hz "
            f"({config.dispatch.frequency_reset_hz:g} <= {config.dispatch.frequency_trip_hz:g})"
        )
    return problems
