"""Simulated miner firmwares on their real wire protocols, for pyasic to talk to.

Each simulated miner listens on its own loopback address (127.0.0.0/8 all routes to `lo`) on the
firmware's real ports, 4028 (cgminer-style JSON RPC) and 80 (web), so pyasic's `get_miner`
detects it exactly as it would a real one. Families: `stock_antminer` (Bitmain's stock firmware:
sleep or mine, no power limit, no wattage reported) and `luxos` (Luxor's LuxOS: power profiles,
curtail sleep/wakeup, wattage reported).
"""
