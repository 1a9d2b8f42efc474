"""Helpers of the hypothesis properties of decide() (CONTRACT section 4); no tests here.

Every property drives decide() through a SEQUENCE of decisions over advancing time: the pools'
telemetry of step k follows (or lags, ignores, drops) the plan of step k-1, and each step may
bring a price record, meter readings (fresh, stale, absent), a frequency reading, a pool fault,
a dispatch instruction and an override. The test keeps its own model of the inputs (`Oracle`:
active obligations and their levels, the override, price and feed freshness, the frequency
trip, the GPU reservation), written from the CONTRACT rather than from the core, and checks each
decision against it.

Sites and steps are drawn from small tables of meaningful values (see `Digits`): cheap to
generate, easy to shrink, and they hit the edges (0 kW pools, 0 kW outlets, 0 s dwell, 0 s
reset, prices on both sides of every breakeven band) far more often than uniform floats would.
A failure prints the whole scenario, one line per pool and per step, and the step it failed at.

- `sites`: the `Digits` tables and the random site (pools, tenants, config sections);
- `strategies`: the steps, the step profiles and the `scenarios` strategy;
- `oracle`: the contract's model of the inputs (`Oracle`, `View`);
- `world`: the devices and feeds that answer the plans, `run()` and the trace helpers.

The properties themselves are the `tests/unit/test_properties_*.py` modules, next to the
conftest that loads the hypothesis profile.
"""
