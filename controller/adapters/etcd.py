"""etcd v3 through its JSON gateway (`/v3/...` over HTTP): leases, reads and transactions.

What leader election and fenced state need, nothing more (docs/ha.md): grant, keep alive and
revoke a lease; create a key only if it does not exist, bound to a lease; read a key or a
prefix; write keys only while a given leadership still holds the leader key (fencing). The
gateway ships with every etcd 3.4+ and speaks JSON, so this is aiohttp (already the feeder's
client) instead of a gRPC stack; int64 fields come as strings, keys and values as base64.

Every call is bounded by `timeout_s` and tries the endpoints in turn: a member that is down or
partitioned costs one timeout, then the next member answers. Any failure is an `EtcdError`
naming the endpoints and the cause; the caller decides what an unanswered renewal means.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import aiohttp


class EtcdError(Exception):
    """No member answered, or an answer made no sense."""


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    create_revision: int  # etcd's global revision when the key was created: only grows
    lease: int


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _kv(doc: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=_unb64(doc["key"]),
        value=_unb64(doc.get("value", "")),
        create_revision=int(doc["create_revision"]),
        lease=int(doc.get("lease", 0)),
    )


class EtcdClient:
    def __init__(self, endpoints: list[str], timeout_s: float) -> None:
        if not endpoints:
            raise ValueError("etcd: no endpoints")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._preferred = 0  # the member that answered last: asked first next time

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        causes: list[str] = []
        count = len(self.endpoints)
        for i in range(count):
            index = (self._preferred + i) % count
            url = self.endpoints[index] + path
            try:
                async with self._session.post(url, data=json.dumps(body)) as reply:
                    text = await reply.text()
                    if reply.status != 200:
                        causes.append(f"{url}: HTTP {reply.status} {text[:200]}")
                        continue
                    self._preferred = index
                    doc = json.loads(text)
                    if not isinstance(doc, dict):
                        raise EtcdError(f"{url}: not a JSON object: {text[:200]}")
                    return doc
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                causes.append(f"{url}: {str(exc) or type(exc).__name__}")
        raise EtcdError("etcd unanswered: " + "; ".join(causes))

    async def grant(self, ttl_s: int) -> tuple[int, int]:
        """A new lease: (its id, the TTL etcd granted)."""
        doc = await self._post("/v3/lease/grant", {"TTL": ttl_s})
        if "ID" not in doc or doc.get("error"):
            raise EtcdError(f"lease grant refused: {doc}")
        return int(doc["ID"]), int(doc.get("TTL", ttl_s))

    async def keepalive(self, lease: int) -> int:
        """Renew: the TTL restarted, in seconds; 0 when the lease has expired or was revoked."""
        doc = await self._post("/v3/lease/keepalive", {"ID": str(lease)})
        result = doc.get("result")
        if not isinstance(result, dict):
            raise EtcdError(f"lease keepalive: no result: {doc}")
        return int(result.get("TTL", 0))

    async def revoke(self, lease: int) -> None:
        """End the lease now: every key bound to it is deleted (a resignation)."""
        await self._post("/v3/lease/revoke", {"ID": str(lease)})

    async def create(self, key: str, value: str, lease: int) -> tuple[bool, KeyValue | None]:
        """Put `key` only if it does not exist: (True, ours) or (False, the holder's; None if it
        vanished in between)."""
        k = _b64(key)
        doc = await self._post(
            "/v3/kv/txn",
            {
                "compare": [{"key": k, "target": "CREATE", "create_revision": "0"}],
                "success": [{"request_put": {"key": k, "value": _b64(value), "lease": str(lease)}}],
                "failure": [{"request_range": {"key": k}}],
            },
        )
        revision = int(doc["header"]["revision"])
        if doc.get("succeeded"):  # proto3 JSON leaves a false out
            return True, KeyValue(key, value, revision, lease)
        responses = doc.get("responses") or [{}]
        kvs = responses[0].get("response_range", {}).get("kvs", [])
        return False, (_kv(kvs[0]) if kvs else None)

    async def get(self, key: str) -> KeyValue | None:
        doc = await self._post("/v3/kv/range", {"key": _b64(key)})
        kvs = doc.get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    async def get_prefix(self, prefix: str) -> list[KeyValue]:
        """Every key under `prefix`, in key order."""
        raw = prefix.encode()
        # range_end = the prefix with its last byte + 1: etcd's "every key with this prefix"
        end = raw[:-1] + bytes([raw[-1] + 1])
        doc = await self._post(
            "/v3/kv/range",
            {"key": _b64(prefix), "range_end": base64.b64encode(end).decode()},
        )
        return [_kv(kv) for kv in doc.get("kvs", [])]

    async def fenced_put(
        self, leader_key: str, epoch: int, puts: dict[str, str], deletes: tuple[str, ...] = ()
    ) -> bool:
        """Write `puts` and delete `deletes` in one transaction, only while `leader_key` is still
        the one created at revision `epoch`: False (nothing written) for a deposed leader."""
        ops: list[dict[str, Any]] = [
            {"request_put": {"key": _b64(k), "value": _b64(v)}} for k, v in puts.items()
        ]
        ops += [{"request_delete_range": {"key": _b64(k)}} for k in deletes]
        doc = await self._post(
            "/v3/kv/txn",
            {
                "compare": [
                    {
                        "key": _b64(leader_key),
                        "target": "CREATE",
                        "result": "EQUAL",
                        "create_revision": str(epoch),
                    }
                ],
                "success": ops,
            },
        )
        return bool(doc.get("succeeded"))
