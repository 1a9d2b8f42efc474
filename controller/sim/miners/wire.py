"""The two wire protocols miners speak: cgminer-style JSON RPC (TCP 4028) and HTTP (80).

RPC: the client sends one JSON object (`{"command": "a+b", "parameter": "..."}`) without a
terminator and reads until the server closes; the reply is JSON followed by a NUL byte, as
cgminer/bmminer/luxminer send it. HTTP: just enough HTTP/1.1 for httpx (keep-alive, a body by
Content-Length) and RFC 7616 Digest authentication (MD5, qop=auth) as Bitmain's lighttpd does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

RpcHandler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_REQUEST_BYTES = 65536
IDLE_S = 30.0  # a keep-alive connection left unused this long is closed


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


async def _hang_up(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def _silent_until(answering: Callable[[], bool]) -> None:
    """Hold a connection without a word until the miner answers again (then hang up)."""
    while not answering():  # noqa: ASYNC110 (a flag the tests flip; no event to wait on)
        await asyncio.sleep(0.1)


def rpc_server(
    handle: RpcHandler, answering: Callable[[], bool]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(4096), IDLE_S)
                if not chunk or len(buffer) > MAX_REQUEST_BYTES:
                    return
                buffer += chunk
                try:
                    request = json.loads(buffer)
                except ValueError:
                    continue  # not all of it yet
                break
            if not answering():
                await _silent_until(answering)  # a hung firmware: open, silent
                return
            reply = handle(request) if isinstance(request, dict) else {}
            writer.write(json.dumps(reply).encode() + b"\x00")
            await writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            return
        finally:
            await _hang_up(writer)

    return serve


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class HttpResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, doc: Any) -> HttpResponse:
        return cls(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    @classmethod
    def html(cls, text: str) -> HttpResponse:
        return cls(200, text.encode(), {"Content-Type": "text/html"})


HttpHandler = Callable[[HttpRequest], HttpResponse]
REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 400: "Bad Request"}


class DigestGuard:
    """Digest authentication for one realm and one user, nonces issued by this miner."""

    def __init__(self, realm: str, user: str, password: str) -> None:
        self.realm = realm
        self.ha1 = md5_hex(f"{user}:{realm}:{password}")
        self.user = user
        self.nonces: set[str] = set()

    def challenge(self) -> HttpResponse:
        nonce = secrets.token_hex(16)
        self.nonces.add(nonce)
        header = f'Digest realm="{self.realm}", nonce="{nonce}", qop="auth"'
        return HttpResponse(401, b"401 Unauthorized", {"WWW-Authenticate": header})

    def allows(self, request: HttpRequest) -> bool:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Digest "):
            return False
        parts = dict(_digest_fields(auth[len("Digest ") :]))
        if parts.get("username") != self.user or parts.get("nonce") not in self.nonces:
            return False
        ha2 = md5_hex(f"{request.method}:{parts.get('uri', '')}")
        expected = md5_hex(
            f"{self.ha1}:{parts['nonce']}:{parts.get('nc', '')}:{parts.get('cnonce', '')}"
            f":{parts.get('qop', '')}:{ha2}"
        )
        return secrets.compare_digest(expected, parts.get("response", ""))


def _digest_fields(text: str) -> list[tuple[str, str]]:
    fields = []
    for item in text.split(","):
        key, _, value = item.strip().partition("=")
        fields.append((key.strip().lower(), value.strip().strip('"')))
    return fields


def http_server(
    handle: HttpHandler, answering: Callable[[], bool]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await asyncio.wait_for(_read_request(reader), IDLE_S)
                if request is None:
                    return
                if not answering():
                    await _silent_until(answering)
                    return
                response = handle(request)
                head = [f"HTTP/1.1 {response.status} {REASONS.get(response.status, 'OK')}"]
                headers = {"Content-Length": str(len(response.body)), **response.headers}
                head += [f"{name}: {value}" for name, value in headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + response.body)
                await writer.drain()
        except (TimeoutError, ConnectionError, OSError, ValueError, asyncio.IncompleteReadError):
            return  # the client gave up (a timeout on its side) or sent nonsense
        finally:
            await _hang_up(writer)

    return serve


async def _read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length > MAX_REQUEST_BYTES:
        raise ValueError("request body too large")
    body = await reader.readexactly(length) if length else b""
    return HttpRequest(method, path, headers, body)
