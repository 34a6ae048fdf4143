from __future__ import annotations

import redis

from lazcancel.embedded_redis import RedisServer


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
