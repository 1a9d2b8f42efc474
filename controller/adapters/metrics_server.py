"""The /metrics HTTP endpoint: parse `[metrics] listen`, bind, serve a registry from a thread.

Bind failures become one `MetricsServerError` naming the address, the cause and the config key
to change, so a daemon that cannot serve metrics says why at startup instead of with a traceback.
"""

from __future__ import annotations

import errno
import socket
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from controller.errors import CurtaildError


class MetricsServerError(CurtaildError):
    """The metrics endpoint cannot be served: names the address, the cause and the fix."""


def parse_listen(listen: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[::1]:9108"); an empty host means every IPv4 interface."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise MetricsServerError(
            f"metrics listen {listen!r}: expected host:port with a port 0-65535; "
            "set [metrics] listen, e.g. 127.0.0.1:9108"
        )
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"  # noqa: S104 (asked for)
    return host, int(port_text)


@dataclass(slots=True)
class MetricsServer:
    """A running /metrics endpoint; `port` is the bound one (useful when asked for port 0)."""

    host: str
    port: int
    _httpd: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving and free the port; blocks up to the server's 0.5 s poll interval."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5.0)


def start_server(listen: str, registry: CollectorRegistry) -> MetricsServer:
    """Serve `registry` on `listen` from a daemon thread.

    Thread, not event loop: rendering thousands of series takes tens of ms, and the control loop
    must not stall for a scrape.
    """
    host, port = parse_listen(listen)
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsServerError(f"metrics listen {host}:{port}: {_bind_hint(exc)}") from exc
    return MetricsServer(host, int(httpd.server_port), httpd, thread)


def _bind_hint(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror}); set [metrics] listen to an address"
    if exc.errno == errno.EADDRINUSE:
        return "address in use; set [metrics] listen to a free port"
    if exc.errno in (errno.EACCES, errno.EPERM):
        # Below 1024 without privileges, or outside the unit's SocketBindAllow=.
        return (
            "permission denied; use a port above 1023 in [metrics] listen and allow it in "
            "the unit's SocketBindAllow="
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not on this host; set [metrics] listen to a local address"
    return f"{exc.strerror or exc}; check [metrics] listen"
