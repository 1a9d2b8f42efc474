"""The backtest's value stack: energy over whole years, reserves and 4CP (README, "Value stack").

hours: ERCOT hour stamps and gaps. hub_prices: the hourly hub-price table. reserve_prices:
DAM clearing prices for capacity (NP4-181-ER wide, NP4-188-CD long). fourcp: the official 4CP
intervals, ERCOT load and the causal rule. stack: the strategies' ledgers. report, chart: the
tables, JSON and PNG.
"""
