"""The oracle: the contract's model of the inputs, kept independently of the core."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.config import Config
from controller.core.plan import Snapshot
from controller.model import (
    REDUCTION_TYPES,
    DispatchInstruction,
    DispatchType,
    OverrideRequest,
    Reading,
)


@dataclass
class ObligationModel:
    instruction: DispatchInstruction
    level_kw: float  # mining load at the first receipt of this id and type (I5)


@dataclass(frozen=True)
class View:
    """What the contract says must hold at one decision."""

    caps: tuple[tuple[str, float], ...]  # every active cap on mining load, with its origin
    reductions: tuple[tuple[str, float], ...]  # active reduction deployments: level - mw
    eea_fraction: float | None
    override: OverrideRequest | None
    price_fresh: bool
    price_usd_per_mwh: float | None
    hashprice: float
    never_raise: tuple[str, ...]  # why no pool may rise (I3, hold failsafes)
    gpu_reserved_kw: float
    gpu_measured_kw: Mapping[str, float]
    limit_kw: float  # POI or backup
    ufr_must_trip: bool
    trip_seen: bool
    # I12: the active awards' MW as kW, no more than any reduction deployment's cap (0: none)
    floor_kw: float = 0.0
    award_ids: tuple[str, ...] = ()


@dataclass
class Oracle:
    config: Config
    started_at: float
    obligations: dict[str, ObligationModel] = field(default_factory=dict)
    eea_level: int = 0
    override: OverrideRequest | None = None
    last_dispatch_at: float | None = None
    trip_seen: bool = False
    tripped: bool = False
    above_since: float | None = None

    def observe(self, snap: Snapshot, now: float) -> View:
        cfg = self.config
        for msg in snap.dispatch_inbox:
            self._fold(msg)
        self.obligations = {
            k: o
            for k, o in self.obligations.items()
            if o.instruction.end is None or now < o.instruction.end
        }
        for request in snap.override_inbox:
            self.override = None if request.mode == "auto" else request
        expires_at = None if self.override is None else self.override.expires_at
        if expires_at is not None and now >= expires_at:
            self.override = None

        max_age_s = cfg.control.meter_stale_s
        reserved_kw = 0.0
        gpu_measured: dict[str, float] = {}
        for tenant in cfg.gpu_tenants:
            measured = sum(snap.meters_kw[m].value for m in tenant.meters if m in snap.meters_kw)
            gpu_measured[tenant.name] = measured
            reserved_kw += max(tenant.firm_kw, measured)
        islanded = snap.islanded is not None and snap.islanded.value >= 0.5
        limit_kw = cfg.site.backup_limit_kw if islanded else cfg.site.poi_limit_kw
        envelope_kw = max(0.0, limit_kw - reserved_kw - cfg.site.aux_kw - cfg.site.margin_kw)

        caps: list[tuple[str, float]] = [("safety envelope", envelope_kw)]
        reductions: list[tuple[str, float]] = []
        awarded_kw = 0.0
        award_ids: list[str] = []
        for key, ob in self.obligations.items():
            msg = ob.instruction
            start = msg.start if msg.start is not None else msg.notified_at
            if now < start:
                continue
            mw_kw = (msg.mw or 0.0) * 1000.0
            if msg.type is DispatchType.AWARD:
                awarded_kw += mw_kw
                award_ids.append(key)
            if msg.type in REDUCTION_TYPES:
                cap = max(0.0, ob.level_kw - mw_kw)
                reductions.append((key, cap))
                caps.append((f"{msg.type} {key}", cap))
            elif msg.type is DispatchType.CLR:
                caps.append((f"CLR {key}", mw_kw))
            elif msg.type is DispatchType.LIMIT:
                room = mw_kw - cfg.site.margin_kw - reserved_kw - cfg.site.aux_kw
                caps.append((f"LIMIT {key}", max(0.0, room)))
            elif msg.type is DispatchType.FOUR_CP:
                caps.append((f"4CP {key}", 0.0))
        if self.override is not None and self.override.mode == "curtail":
            caps.append(("override curtail", 0.0))
        if self.override is not None and self.override.mode == "limit":
            caps.append(("override limit", self.override.limit_kw or 0.0))

        if snap.price is None:
            price_stale = now - self.started_at > cfg.feeds.price_stale_s
        else:
            price_stale = now - snap.price.received_at > cfg.feeds.price_stale_s
        floor_kw = min([awarded_kw, *(cap for _, cap in reductions)])
        if price_stale and cfg.feeds.on_price_stale == "curtail":
            # Not knowing the price is a price reason: an award's floor stays (I12).
            caps.append(("price stale: curtail", floor_kw))

        never_raise: list[str] = []
        for msg in snap.dispatch_inbox:
            seen = self.last_dispatch_at
            self.last_dispatch_at = msg.received_at if seen is None else max(seen, msg.received_at)
        heartbeat_s = cfg.feeds.dispatch_heartbeat_s
        last_seen = self.last_dispatch_at if self.last_dispatch_at is not None else self.started_at
        if heartbeat_s > 0 and now - last_seen > heartbeat_s:
            if cfg.feeds.on_dispatch_stale == "curtail":
                caps.append(("dispatch stale: curtail", 0.0))
            else:
                never_raise.append("dispatch stale: hold")
        site_meters = [m.name for m in cfg.meters if m.role == "site"]
        if site_meters:
            reading = snap.meters_kw.get(site_meters[0])
            if reading is None or now - reading.at > max_age_s:
                never_raise.append("site meter stale")
        if snap.budget_failsafe:
            never_raise.append("decision budget")
        running_anyway = self.override is not None and self.override.mode == "run"
        if (snap.price is None or price_stale) and not running_anyway:
            never_raise.append("no usable price: hold")

        self._observe_frequency(snap.frequency_hz, now)
        must_trip = self.tripped and not (
            self.above_since is not None
            and now - self.above_since >= cfg.dispatch.frequency_reset_s
        )
        eea_fraction = None
        if self.eea_level > 0:
            d = cfg.dispatch
            eea_fraction = {1: d.eea1_fraction, 2: d.eea2_fraction}.get(
                self.eea_level, d.eea3_fraction
            )
        return View(
            caps=tuple(caps),
            reductions=tuple(reductions),
            eea_fraction=eea_fraction,
            override=self.override,
            price_fresh=snap.price is not None and not price_stale,
            price_usd_per_mwh=None if snap.price is None else snap.price.price_usd_per_mwh,
            hashprice=snap.hashprice_usd_per_ph_day or cfg.economics.hashprice_usd_per_ph_day,
            never_raise=tuple(never_raise),
            gpu_reserved_kw=reserved_kw,
            gpu_measured_kw=gpu_measured,
            limit_kw=limit_kw,
            ufr_must_trip=must_trip,
            trip_seen=self.trip_seen,
            floor_kw=floor_kw,
            award_ids=tuple(award_ids),
        )

    def _fold(self, msg: DispatchInstruction) -> None:
        if msg.type is DispatchType.HEARTBEAT:
            return
        if msg.type is DispatchType.RECALL:
            self.obligations.pop(msg.recall_id or "", None)
            return
        if msg.type is DispatchType.EEA:
            self.eea_level = msg.level or 0
            return
        if msg.id in self.obligations:
            # An active id: a resend keeps the obligation as it is (same baseline), another
            # type is rejected (id_conflict) and the active one stays (CONTRACT 7 Dispatch ids).
            return
        self.obligations[msg.id] = ObligationModel(msg, msg.mining_kw_at_receipt)

    def _observe_frequency(self, frequency: Reading | None, now: float) -> None:
        """I11: tripped at or below trip_hz; a trip needs reset_s of fresh readings above reset_hz.

        Stale readings neither trip nor reset, and do not break a run above reset_hz here
        (the weakest reading of the contract; the core may be stricter).
        """
        d = self.config.dispatch
        if frequency is None or now - frequency.at > self.config.control.meter_stale_s:
            return
        if frequency.value <= d.frequency_trip_hz:
            self.tripped, self.trip_seen, self.above_since = True, True, None
        elif frequency.value <= d.frequency_reset_hz:
            self.above_since = None
        elif self.tripped and self.above_since is None:
            self.above_since = now
        if (
            self.tripped
            and self.above_since is not None
            and now - self.above_since >= d.frequency_reset_s
        ):
            self.tripped, self.above_since = False, None
