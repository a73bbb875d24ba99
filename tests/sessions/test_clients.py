"""Unchanged memcached client libraries against a real store process."""

from __future__ import annotations

import concurrent.futures

import memcache
import pytest
from pymemcache.client.base import Client

pytestmark = pytest.mark.slow


def pymemcache_client(address: str) -> Client:
    host, _, port = address.rpartition(":")
    return Client((host, int(port)), timeout=5, connect_timeout=5, default_noreply=False)


def test_pymemcache_full_command_set(store_address: str) -> None:
    client = pymemcache_client(store_address)
    assert client.set("a", b"1")
    assert client.get("a") == b"1"
    assert client.add("a", b"2") is False
    assert client.replace("a", b"3")
    assert client.append("a", b"4")
    assert client.prepend("a", b"0")
    assert client.get("a") == b"034"
    value, unique = client.gets("a")
    assert value == b"034"
    assert client.cas("a", b"5", unique)
    assert client.cas("a", b"6", unique) is False
    assert client.set("n", b"10")
    assert client.incr("n", 5) == 15
    assert client.decr("n", 20) == 0
    assert client.touch("a", 100)
    assert client.get_many(["a", "n", "missing"]) == {"a": b"5", "n": b"0 "}
    assert client.delete("a")
    assert client.get("a") is None
    assert client.version() == b"1.6.18"
    assert int(client.stats()[b"curr_items"]) >= 1
    assert client.flush_all()
    assert client.get("n") is None
    client.close()


def test_pymemcache_noreply_writes_are_applied(store_address: str) -> None:
    client = pymemcache_client(store_address)
    client.set("k", b"v", noreply=True)
    assert client.get("k") == b"v"
    client.close()


def test_python_memcached_full_command_set(store_address: str) -> None:
    client = memcache.Client([store_address], cache_cas=True)
    assert client.set("a", "1")
    assert client.get("a") == "1"
    assert not client.add("a", "2")
    assert client.replace("a", "3")
    assert client.append("a", "4")
    assert client.prepend("a", "0")
    assert client.gets("a") == "034"
    assert client.cas("a", "5")
    assert client.set("n", "10")
    assert client.incr("n", 5) == 15
    assert client.decr("n", 20) == 0
    assert client.touch("a", 100)
    assert client.get_multi(["a", "missing"]) == {"a": "5"}
    assert client.delete("a")
    assert client.get("a") is None
    assert client.set("obj", {"cart": [1, 2]})
    assert client.get("obj") == {"cart": [1, 2]}
    client.disconnect_all()


def test_many_clients_in_parallel_each_see_their_own_keys(store_address: str) -> None:
    def worker(index: int) -> bool:
        client = pymemcache_client(store_address)
        try:
            for round_ in range(50):
                key = f"c{index}-{round_}"
                client.set(key, key.encode())
                if client.get(key) != key.encode():
                    return False
            return True
        finally:
            client.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        assert all(pool.map(worker, range(64)))
