"""Data and write load for integration tests: a mixed dataset, and a writer thread."""

from __future__ import annotations

import json
import random
import threading
import time
from typing import Self

import redis

from tests.support.wait import wait_for


def populate(
    client: redis.Redis, n: int, *, prefix: str = "k", ttl_every: int = 10, seed: int = 1
) -> None:
    """A mix of types; every `ttl_every`-th key has a TTL (far enough not to expire in a test)."""
    rnd = random.Random(seed)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        key = f"{prefix}:{i}"
        kind = i % 20
        if kind < 14:
            pipe.set(key, rnd.randbytes(100))
        elif kind < 16:
            pipe.hset(key, mapping={f"f{j}": rnd.randbytes(10) for j in range(10)})
        elif kind < 18:
            pipe.rpush(key, *[rnd.randbytes(10) for _ in range(10)])
        elif kind < 19:
            pipe.sadd(key, *[rnd.randbytes(10) for _ in range(10)])
        else:
            pipe.zadd(key, {rnd.randbytes(10): rnd.random() for _ in range(10)})
        if i % ttl_every == 0:
            pipe.expire(key, 3600 + i % 100)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


class Load:
    """INCR a counter and RPUSH its new value to a log, one command at a time, until stopped."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        while not self.stop.is_set():
            n = self.client.incr("counter")
            self.client.rpush("log", n)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def caught_up(src: redis.Redis, dst: redis.Redis | redis.RedisCluster, tag: str = "") -> None:
    """Write a marker to the source and wait for it on the destination."""
    value = f"{tag}{time.time_ns()}"
    src.set("__test:marker", value)
    wait_for(lambda: dst.get("__test:marker") == value.encode(), what="the marker on the dest")
    src.delete("__test:marker")
    wait_for(lambda: dst.exists("__test:marker") == 0, what="the marker's delete on the dest")


class BatchLoad:
    """INCR a counter, RPUSH its count to a log and SET one of 5,000 keys, 50 at a time in a
    pipeline, until stopped (the order of the log is checkable)."""

    def __init__(self, client: redis.Redis, prefix: str = "") -> None:
        self.client, self.prefix = client, prefix
        self.n = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            pipe = self.client.pipeline(transaction=False)
            for _ in range(50):
                self.n += 1
                pipe.incr(f"{self.prefix}counter")
                pipe.rpush(f"{self.prefix}log", self.n)
                pipe.set(f"{self.prefix}key:{self.n % 5000}", self.n)
            pipe.execute()
            time.sleep(0.005)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(30)


_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "order",
    "invoice",
    "customer",
    "shipped",
    "pending",
    "delivered",
    "warehouse",
    "berlin",
    "paris",
    "madrid",
    "lisbon",
    "rome",
    "account",
    "active",
    "premium",
    "standard",
    "basic",
    "monthly",
    "yearly",
    "discount",
    "coupon",
]


def document(rnd: random.Random, i: int) -> bytes:
    """A JSON-like document of about 1 KB: what applications keep as text (field names repeat,
    values come from a small vocabulary and numbers)."""
    words = rnd.choices(_WORDS, k=12)
    items = [
        {
            "sku": f"SKU-{rnd.randrange(100000):05d}",
            "qty": rnd.randrange(1, 9),
            "price": round(rnd.uniform(1, 500), 2),
            "note": " ".join(rnd.choices(_WORDS, k=6)),
        }
        for _ in range(4)
    ]
    doc = {
        "id": i,
        "customer": {"name": " ".join(words[:2]).title(), "email": f"{words[2]}{i}@example.com"},
        "status": words[3],
        "city": words[4],
        "created_at": f"2026-{rnd.randrange(1, 13):02d}-{rnd.randrange(1, 29):02d}T12:00:00Z",
        "tags": words[5:9],
        "items": items,
        "comment": " ".join(rnd.choices(_WORDS, k=55)),
    }
    return json.dumps(doc).encode()


def populate_documents(client: redis.Redis, n: int, *, prefix: str = "doc", seed: int = 1) -> int:
    """`n` JSON-like documents of about 1 KB (`document`) as strings; returns their bytes."""
    rnd = random.Random(seed)
    total = 0
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        value = document(rnd, i)
        total += len(value)
        pipe.set(f"{prefix}:{i}", value)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    return total
