"""The /metrics HTTP endpoint: parse `[metrics] listen`, bind, serve a registry from a thread.

The daemon serves its own render function (`Metrics.render`: cached table text plus what
prometheus-client renders), so this is a small WSGI app rather than prometheus-client's
`start_http_server`: same content negotiation (`choose_encoder`: OpenMetrics or text 0.0.4),
same gzip when asked, one thread per request. A plain registry (the feeder's) is served alike.

Bind failures become one `MetricsServerError` naming the address, the cause and the config key
to change, so a daemon that cannot serve metrics says why at startup instead of with a traceback.
"""

from __future__ import annotations

import errno
import gzip
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from controller.errors import CurtaildError


class MetricsServerError(CurtaildError):
    """The metrics endpoint cannot be served: names the address, the cause and the fix."""


# The request's Accept header -> the body and its Content-Type.
Render = Callable[[str], tuple[bytes, str]]


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


def start_server(listen: str, source: CollectorRegistry | Render) -> MetricsServer:
    """Serve `source` (a registry, or a render function) on `listen` from a daemon thread.

    Thread, not event loop: the control loop must not wait for a scrape (it only shares the GIL
    with it, which is why `Metrics.render` is cheap).
    """
    host, port = parse_listen(listen)
    render = registry_render(source) if isinstance(source, CollectorRegistry) else source
    try:
        # IPv4 or IPv6 as the address says (what prometheus-client's server does too).
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = infos[0]
        server_class = type("_Server", (_ThreadingWSGIServer,), {"address_family": family})
        httpd: WSGIServer = make_server(
            str(sockaddr[0]), port, _app(render), server_class, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise MetricsServerError(f"metrics listen {host}:{port}: {_bind_hint(exc)}") from exc
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return MetricsServer(host, int(httpd.server_port), httpd, thread)


def registry_render(registry: CollectorRegistry) -> Render:
    """prometheus-client's rendering of a whole registry, in the format the scraper asked for."""

    def render(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type

    return render


def _app(render: Render) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] != "GET":
            start_response("405 Method Not Allowed", [("Allow", "GET")])
            return [b""]
        body, content_type = render(environ.get("HTTP_ACCEPT", ""))
        headers = [("Content-Type", content_type)]
        encodings = environ.get("HTTP_ACCEPT_ENCODING", "")
        if "gzip" in (e.split(";")[0].strip() for e in encodings.split(",")):
            # Level 1: a fifth of the CPU of the default 9 for a few % more bytes; zlib runs
            # without the GIL either way.
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    return app


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a hung scraper never blocks shutdown


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        """A scrape every few seconds is not news: log nothing."""


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
