"""`curtaild feed-ercot` (CONTRACT 2.6): ERCOT's public API polled into MQTT price records.

A process of its own, so that an HTTP stall never touches the control loop: `client` (token,
request budget, retries, paging), `products` (the two reports' windows and records), `state`
(what was last published, kept in `state_dir`), `publish` (MQTT, QoS 1, retained), `poller`
(the loop), `backfill` (history to CSV for `curtaild backtest`).
"""
