"""curtaild: real-time curtailment controller for mining sites hosting GPU tenants on ERCOT."""

__version__ = "0.1.0"
