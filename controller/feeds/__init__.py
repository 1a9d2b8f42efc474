"""Inbound feeds: pure parsers that turn MQTT payloads and ERCOT files into domain values.

Each parser takes bytes (or a path) and the current time as an argument, and returns a frozen
value from `controller.model` or raises `FeedRejected(reason, detail)` /
`controller.feeds.ercot.PriceFileError`. None of them logs, reads a clock or does network I/O.
"""

from controller.feeds.common import FeedRejected, RejectReason

__all__ = ["FeedRejected", "RejectReason"]
