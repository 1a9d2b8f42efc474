"""Safety envelope (I2, I3): what mining may draw under the POI or backup limit.

The first stage of the pipeline: the envelope is the first limit on the cap, and a stale site
meter or decisions over budget stop every raise (failsafes `site_meter_stale`,
`decision_budget`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from controller.core.plan import Reason, Snapshot
from controller.core.policies import Cap
from controller.core.site import SiteModel
from controller.core.totals import PoolTotals
from controller.model import Reading

_ON_POI = "POI limit less the GPU reservation, aux and margin"
_ON_BACKUP = "backup limit (islanded) less the GPU reservation, aux and margin"
_METER_STALE = Reason(
    "failsafe", None, "site_meter_stale: no fresh site meter reading; no pool is raised"
)
_OVER_BUDGET = Reason(
    "failsafe", None, "decision_budget: decisions over their time budget; no pool is raised"
)


class Envelope(NamedTuple):
    envelope_kw: float  # limit - GPU reservation - aux - margin, floored at 0
    limit_kw: float  # POI, or backup while islanded
    gpu_reserved_kw: float
    gpu_measured_kw: dict[str, float]  # per tenant, what its meters last said (stale included)
    aux_kw: float  # configured aux, or the larger unexplained load the site meter shows
    site_kw: float | None  # fresh site meter reading, None when stale or absent
    site_meter_stale: bool
    islanded: bool


class SafetyStage(NamedTuple):
    cap: Cap
    envelope: Envelope
    failsafe: tuple[str, ...]
    never_raise: bool
    reasons: tuple[Reason, ...]


def stage(
    cap: Cap,
    site: SiteModel,
    snap: Snapshot,
    totals: PoolTotals,
    aux_estimate_kw: float | None,
    now: float,
) -> SafetyStage:
    """The cap narrowed to the envelope. `aux_estimate_kw`: the last decision's aux estimate,
    held while pools are in transition (a stuck pool holds it for confirm_timeout_s at most)."""
    held_kw = aux_estimate_kw if totals.in_transition else None
    env = safety_envelope(
        site, snap.meters_kw, snap.islanded, totals.mining_kw, totals.complete, now, held_kw
    )
    narrowed = cap.narrow(env.envelope_kw, "safety")
    reasons: tuple[Reason, ...] = ()
    if narrowed is not cap:  # the figures are in the plan: the detail says where they come from
        reasons = (Reason("safety", narrowed.kw, _ON_BACKUP if env.islanded else _ON_POI),)
    if not (env.site_meter_stale or snap.budget_failsafe):
        return SafetyStage(narrowed, env, (), False, reasons)
    failsafe: tuple[str, ...] = ()
    if env.site_meter_stale:
        failsafe, reasons = ("site_meter_stale",), (*reasons, _METER_STALE)
    if snap.budget_failsafe:
        failsafe, reasons = (*failsafe, "decision_budget"), (*reasons, _OVER_BUDGET)
    return SafetyStage(narrowed, env, failsafe, True, reasons)


def safety_envelope(
    site: SiteModel,
    meters_kw: Mapping[str, Reading],
    islanded: Reading | None,
    mining_measured_kw: float,
    mining_complete: bool,
    now: float,
    held_aux_kw: float | None = None,
) -> Envelope:
    """`held_aux_kw`: while pools are in transition, the last steady estimate of aux (or None
    to estimate afresh); the larger of it and the configured aux_kw counts."""
    config = site.config
    max_age_s = config.control.meter_stale_s
    reserved_kw = 0.0
    accounted_kw = 0.0  # what we believe the tenants draw, for the closed loop below
    gpu_kw: dict[str, float] = {}
    for tenant in site.tenants:
        measured = 0.0
        complete = bool(tenant.meters)
        for meter in tenant.meters:
            reading = meters_kw.get(meter)
            if reading is None:
                complete = False
                continue
            # I3: a stale tenant meter still counts, at its last reading.
            measured += reading.value
        gpu_kw[tenant.name] = measured
        reserved_kw += max(tenant.firm_kw, measured)
        # A tenant without (all its) readings is taken to draw its firm reservation: its real
        # draw is in the site meter and must not count a second time as unexplained load.
        accounted_kw += measured if complete else max(tenant.firm_kw, measured)

    site_kw: float | None = None
    site_stale = False
    if site.site_meter is not None:
        reading = meters_kw.get(site.site_meter)
        if reading is None or now - reading.at > max_age_s:
            site_stale = True
        else:
            site_kw = reading.value

    aux_kw = config.site.aux_kw
    if held_aux_kw is not None:
        aux_kw = max(aux_kw, held_aux_kw)
    elif site_kw is not None and mining_complete:
        # Closed loop: load the site meter sees beyond GPU and mining is aux we were not told of.
        aux_kw = max(aux_kw, site_kw - accounted_kw - mining_measured_kw)

    # The islanded flag comes from the site meter; when that is stale the last known value
    # stands and the never-raise rule of I3 covers the uncertainty.
    on_backup = islanded is not None and islanded.value >= 0.5
    limit_kw = config.site.backup_limit_kw if on_backup else config.site.poi_limit_kw
    envelope_kw = max(0.0, limit_kw - reserved_kw - aux_kw - config.site.margin_kw)
    return Envelope(
        envelope_kw=envelope_kw,
        limit_kw=limit_kw,
        gpu_reserved_kw=reserved_kw,
        gpu_measured_kw=gpu_kw,
        aux_kw=aux_kw,
        site_kw=site_kw,
        site_meter_stale=site_stale,
        islanded=on_backup,
    )
