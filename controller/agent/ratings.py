"""Rated wall power of common models, for firmwares that report no wattage (stock Antminer).

pyasic knows a miner's model and expected hashrate but not its rated power; a stock Antminer
reports hashrate only, so its draw is estimated as rated watts x hashrate / expected hashrate.
Figures are Bitmain's published ratings at stock settings. A model not listed counts at
`miner_nominal_w` from the config.
"""

from __future__ import annotations

RATED_W = {
    "S19": 3250.0,
    "S19 PRO": 3250.0,
    "S19J": 3100.0,
    "S19J PRO": 3068.0,
    "S19J PRO+": 3355.0,
    "S19K PRO": 2760.0,
    "S19 XP": 3010.0,
    "S19 XP HYD.": 5304.0,
    "T19": 3150.0,
    "S21": 3500.0,
    "S21 PRO": 3510.0,
    "S21+": 3564.0,
    "S21 XP": 3645.0,
    "T21": 3610.0,
}


def rated_w(model: str) -> float | None:
    """The rating of `model` ("Antminer S19j Pro", "S19j Pro (Stock)" ...), None if unknown."""
    name = model.upper().split(" (")[0].removeprefix("ANTMINER ").strip()
    return RATED_W.get(name)
