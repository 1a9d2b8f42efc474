"""What one way of running the site earns and pays, by month: the value stack's rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from controller.value.hours import local


@dataclass
class MonthValue:
    """Energy, money and hours of one strategy over one month (or a year, or the whole run)."""

    hours: float = 0.0  # hours of prices valued
    energy_mwh: float = 0.0  # mining energy
    energy_cost_usd: float = 0.0
    mining_revenue_usd: float = 0.0
    reserve_mw_h: float = 0.0  # MW x hours awarded
    reserve_revenue_usd: float = 0.0
    fourcp_charge_usd: float = 0.0  # the year's 4CP charge, a quarter in each peak's month
    curtailed_h: float = 0.0  # hours with no mining at all (price, or off for 4CP)
    fourcp_off_h: float = 0.0  # hours off for 4CP

    @property
    def net_usd(self) -> float:
        return (
            self.mining_revenue_usd
            - self.energy_cost_usd
            + self.reserve_revenue_usd
            - self.fourcp_charge_usd
        )

    def add(self, other: MonthValue) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "net_usd": self.net_usd}


@dataclass
class Strategy:
    """One way of running the site: its months (`YYYY-MM`), summed into years and a total."""

    name: str
    months: dict[str, MonthValue] = field(default_factory=dict)
    peak_kw: dict[float, float] = field(default_factory=dict)  # 4CP start -> mining kW there

    def month(self, key: str) -> MonthValue:
        return self.months.setdefault(key, MonthValue())

    def years(self) -> dict[str, MonthValue]:
        out: dict[str, MonthValue] = {}
        for key in sorted(self.months):
            out.setdefault(key[:4], MonthValue()).add(self.months[key])
        return out

    def total(self) -> MonthValue:
        out = MonthValue()
        for value in self.months.values():
            out.add(value)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "months": {k: self.months[k].as_dict() for k in sorted(self.months)},
            "years": {k: v.as_dict() for k, v in self.years().items()},
            "total": self.total().as_dict(),
            "fourcp_load_kw": {f"{local(t):%Y-%m-%d %H:%M}": kw for t, kw in self.peak_kw.items()},
        }
