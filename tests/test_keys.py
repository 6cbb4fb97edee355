"""Key isolation: every key of a model carries its own hash tag, models whose KEY_NAMEs
look alike never touch each other's data, and awkward values round trip and filter."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
import redis
from consistency import decode_record, stored_ids
from redis.crc import key_slot

from IndexedRedis import IndexedRedisModel
from IndexedRedis.keys import escape_key_name

FIELDS = ["artist", "title", "n"]
INDEXED = ["artist", "n"]


def make_model(key_name: str, class_name: str = "KeyModel") -> type[IndexedRedisModel]:
    return type(class_name, (IndexedRedisModel,), {
        "__module__": __name__, "FIELDS": list(FIELDS), "INDEXED_FIELDS": list(INDEXED),
        "KEY_NAME": key_name})


def tag_of(key: bytes) -> bytes:
    """The Redis Cluster hash tag of a key (what ``key_slot`` hashes)."""
    start = key.index(b"{")
    end = key.index(b"}", start + 1)
    return key[start + 1:end]


def model_prefix(model: type[IndexedRedisModel]) -> bytes:
    return b"ir:{" + escape_key_name(model.KEY_NAME).encode("ascii") + b"}:"


def dump(client: redis.Redis, keys: Any = None) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for key in (client.scan_iter(count=1000) if keys is None else keys):
        kind = client.type(key)
        if kind == b"string":
            out[key] = ("string", client.get(key))
        elif kind == b"hash":
            out[key] = ("hash", client.hgetall(key))
        elif kind == b"set":
            out[key] = ("set", frozenset(client.smembers(key)))
        elif kind == b"zset":
            out[key] = ("zset", tuple(client.zrange(key, 0, -1, withscores=True)))
        else:
            out[key] = (kind, None)
    return out


def model_keys(client: redis.Redis, model: type[IndexedRedisModel]) -> list[bytes]:
    prefix = model_prefix(model)
    return [key for key in client.scan_iter(count=1000) if key.startswith(prefix)]


def dump_model(client: redis.Redis, model: type[IndexedRedisModel]) -> dict[bytes, Any]:
    return dump(client, model_keys(client, model))


def snapshot(model: type[IndexedRedisModel]) -> list[dict[str, Any]]:
    return [obj.asDict(includeMeta=True) for obj in model.objects.all()]


def assert_indexes_exact(client: redis.Redis, model: type[IndexedRedisModel]) -> None:
    prefix = model_prefix(model)
    gen = int(client.get(prefix + b"gen") or 0)
    gprefix = prefix + b"g%d:" % gen
    records = {int(pk): decode_record(client, model, blob)
               for pk, blob in client.hgetall(gprefix + b"objs").items()}
    assert stored_ids(client, gprefix + b"ids") == set(records)
    expected: dict[bytes, set[int]] = {}
    for pk, record in records.items():
        for field in INDEXED:
            key = gprefix + b"i:" + field.encode() + b":" + record[field].encode("utf-8")
            expected.setdefault(key, set()).add(pk)
    actual = {key: {int(pk) for pk in client.smembers(key)}
              for key in client.scan_iter(count=1000) if key.startswith(gprefix + b"i:")}
    assert actual == expected


def exercise(model: type[IndexedRedisModel]) -> None:
    """Every kind of write and read a model can do, leaving some data behind."""
    objs = [model(artist=f"artist {i % 3}", title=f"t{i}", n=i % 2) for i in range(6)]
    for obj in objs:
        obj.save()
    objs[0].artist = "changed"
    objs[0].save()
    objs[1].delete()
    model.objects.filter(artist="artist 2").delete()
    assert model.objects.filter(n=1).count() >= 0
    model.objects.filter(artist__ne="changed").all()
    model.objects.filter(artist="changed", n__ne=5).first()
    model.objects.last()
    model.objects.getMultiple([1, 2, 3])
    model.objects.exists(1)
    model.reset([model(artist="reset", title=str(i), n=i) for i in range(4)])
    fetched = model.objects.filter(artist="reset").first()
    fetched.n = 9
    fetched.save()
    model(artist="after reset", title="x", n=0).save()
    model.objects.filter(n=2).delete()


AWKWARD_NAMES = ["Songs", "a*", "x:y", "{x}", "}", "{", "my model", "100%", "a%2A", "é ♫",
                 "*", "?[a]", "ir:{x}:gen", "\\", "tab\tname"]


@pytest.mark.parametrize("key_name", AWKWARD_NAMES)
def test_every_key_carries_the_escaped_hash_tag(redis_client: redis.Redis, key_name: str) -> None:
    model = make_model(key_name)
    exercise(model)
    keys = list(redis_client.scan_iter(count=1000))
    assert keys
    escaped = escape_key_name(key_name)
    expected_tag = ("{" + escaped + "}").encode("ascii")
    for key in keys:
        assert key.startswith(b"ir:" + expected_tag + b":"), key
        assert tag_of(key) == escaped.encode()
    assert unquote(escaped) == key_name
    for forbidden in "{}:* ":
        assert forbidden not in escaped
    slots = {key_slot(key) for key in keys}
    assert slots == {key_slot(expected_tag)}
    assert_indexes_exact(redis_client, model)


def test_keys_of_every_generation_share_one_slot(redis_client: redis.Redis) -> None:
    model = make_model("slot check")
    seen: set[bytes] = set()
    for _ in range(3):
        model.reset([model(artist=f"{{v{i}}}", title=str(i), n=f"}}{i}{{") for i in range(5)])
        model(artist="{other}", n="x{y}z").save()
        seen.update(redis_client.scan_iter(count=1000))
    assert {key_slot(key) for key in seen} == {key_slot(b"{slot%20check}")}


PAIRS = [
    ("Song", "Songs"),
    ("a", "a*"),
    ("x:y", "x"),
    ("a*", "a%2A"),
    ("{x}", "x"),
    ("x}", "x"),
    ("{x", "x"),
    ("my model", "my"),
    ("*", "a"),
    ("100%", "100%25"),
    ("x:y", "x:y:"),
    ("x", "x:g0"),
    ("ab", "a}b"),
]


@pytest.mark.parametrize("pair", PAIRS, ids=[f"{a}|{b}" for a, b in PAIRS])
@pytest.mark.parametrize("swap", [False, True], ids=["first-acts", "second-acts"])
def test_lookalike_key_names_never_touch_each_other(redis_client: redis.Redis,
                                                    pair: tuple[str, str], swap: bool) -> None:
    name_active, name_bystander = pair[::-1] if swap else pair
    active = make_model(name_active, "Active")
    bystander = make_model(name_bystander, "Bystander")
    bystander.reset([bystander(artist=f"artist {i % 3}", title=f"b{i}", n=i % 2) for i in range(5)])
    bystander(artist="artist 0", title="saved", n=1).save()
    before_keys = dump_model(redis_client, bystander)
    before_objs = snapshot(bystander)
    assert before_objs

    exercise(active)
    assert active.objects.filter(artist="artist 0").count() == 0  # none of the bystander's
    assert {o["title"] for o in snapshot(active)}.isdisjoint({o["title"] for o in before_objs})
    assert dump_model(redis_client, bystander) == before_keys
    assert snapshot(bystander) == before_objs
    assert bystander.objects.filter(artist="artist 0").count() == 3

    active.objects.delete()
    active.reset([])
    assert active.objects.count() == 0
    assert dump_model(redis_client, bystander) == before_keys
    assert snapshot(bystander) == before_objs

    # every key in the database belongs to exactly one of the two models
    for key in redis_client.scan_iter(count=1000):
        owners = [m for m in (active, bystander) if key.startswith(model_prefix(m))]
        assert len(owners) == 1, key
    assert_indexes_exact(redis_client, bystander)
    assert_indexes_exact(redis_client, active)


def test_many_lookalike_models_side_by_side(redis_client: redis.Redis) -> None:
    names = ["a", "a*", "a%2A", "a:", "a:b", "{a}", "a}", "A", "a ", " a", "aa"]
    models = [make_model(name, f"M{i}") for i, name in enumerate(names)]
    for i, model in enumerate(models):
        for j in range(i + 1):
            model(artist="same", title=f"{model.KEY_NAME}-{j}", n=j).save()
    for i, model in enumerate(models):
        objs = model.objects.filter(artist="same").all()
        assert len(objs) == i + 1
        assert {o.title for o in objs} == {f"{model.KEY_NAME}-{j}" for j in range(i + 1)}
        assert model.objects.count() == i + 1
    tags = {tag_of(key) for key in redis_client.scan_iter(count=1000)}
    assert len(tags) == len(names)
    models[0].objects.delete()
    for i, model in enumerate(models[1:], start=1):
        assert model.objects.count() == i + 1


AWKWARD_VALUES = [
    "{", "}", "{tag}", "}{", ":", "a:b:c", "*", "a*", "?", "[a-z]", " ", "two words",
    " leading", "trailing ", "line\nbreak", "\r\n", "tab\there", "é", "日本語", "♫ 🎵",
    "\x00nul", "back\\slash", "%2A", "ir:{Songs}:gen", "", "'quote\"", "-", "0", "1.0",
]


def test_awkward_values_round_trip_and_filter(redis_client: redis.Redis) -> None:
    model = make_model("Values:{*}")
    pks = {}
    for i, value in enumerate(AWKWARD_VALUES):
        pks[value] = model(artist=value, title=value, n=str(i)).save()
    for value, pk in pks.items():
        obj = model.objects.get(pk)
        assert obj.artist == value and obj.title == value
        found = model.objects.filter(artist=value).all()
        assert [o._id for o in found] == [pk], value
        assert model.objects.filter(artist=value).count() == 1
        assert model.objects.filter(artist__ne=value).count() == len(AWKWARD_VALUES) - 1
        assert pk not in model.objects.filter(artist__ne=value).getPrimaryKeys()
    assert_indexes_exact(redis_client, model)
    keys = list(redis_client.scan_iter(count=1000))
    assert {key_slot(key) for key in keys} == {key_slot(keys[0])}
    assert {tag_of(key) for key in keys} == {escape_key_name("Values:{*}").encode()}
    # update every object to the next awkward value: indexes follow exactly
    for i, pk in enumerate(pks.values()):
        obj = model.objects.get(pk)
        obj.artist = AWKWARD_VALUES[(i + 1) % len(AWKWARD_VALUES)]
        obj.save()
    for i, value in enumerate(AWKWARD_VALUES):
        previous = AWKWARD_VALUES[i - 1]
        assert [o._id for o in model.objects.filter(artist=value)] == [pks[previous]]
    assert_indexes_exact(redis_client, model)
    for pk in pks.values():
        model.objects.get(pk).delete()
    assert list(redis_client.scan_iter(match=b"*:g0:i:*")) == []


def test_values_that_look_like_other_index_keys_do_not_collide() -> None:
    model = make_model("collide")
    tricky = model(artist="n:1", n="x").save()        # would be '...i:artist:n:1'
    plain = model(artist="y", n="1").save()           # '...i:n:1'
    colon = model(artist="n", n=":1").save()
    assert [o._id for o in model.objects.filter(artist="n:1")] == [tricky]
    assert [o._id for o in model.objects.filter(n="1")] == [plain]
    assert [o._id for o in model.objects.filter(artist="n")] == [colon]
    assert [o._id for o in model.objects.filter(n=":1")] == [colon]
    assert model.objects.filter(artist="n:").count() == 0
    assert model.objects.filter(n__ne="1").getPrimaryKeys() == [tricky, colon]


def _grouped(key_name: str, group: str | None, class_name: str) -> type[IndexedRedisModel]:
    from IndexedRedis.fields.links import IRForeignLinkField

    namespace: dict[str, Any] = {"__module__": __name__, "FIELDS": list(FIELDS), "INDEXED_FIELDS": list(INDEXED),
                                 "KEY_NAME": key_name}
    if group is not None:
        namespace["KEY_GROUP"] = group
        namespace["FIELDS"] = [*FIELDS, IRForeignLinkField("other", make_model("LinkTarget", "LinkTarget"))]
    return type(class_name, (IndexedRedisModel,), namespace)


def test_key_group_models_share_one_slot_and_never_meet_a_model_named_like_the_group(
        redis_client: redis.Redis) -> None:
    first = _grouped("g0", "shop", "GroupedFirst")      # 'g0' looks like a generation prefix
    second = _grouped("orders", "shop", "GroupedSecond")
    lone = _grouped("shop", None, "LoneShop")           # a model whose own tag is the group's
    for model, artist in ((first, "a"), (second, "b"), (lone, "c")):
        for n in range(3):
            model(artist=artist, title=f"{artist}{n}", n=str(n)).save()
    seen = {key for key in redis_client.scan_iter(match=b"ir:*", count=1000)}
    first_keys = {k for k in seen if k.startswith(first._meta.keys.prefix)}
    second_keys = {k for k in seen if k.startswith(second._meta.keys.prefix)}
    lone_keys = {k for k in seen if k.startswith(lone._meta.keys.prefix)}
    assert first_keys and second_keys and lone_keys
    assert not (first_keys & lone_keys) and not (second_keys & lone_keys)
    assert {key_slot(k) for k in first_keys | second_keys} == {key_slot(b"{shop}")}
    assert not any(k.startswith(b"ir:{shop}@") for k in lone_keys)
    for model, artist in ((first, "a"), (second, "b"), (lone, "c")):
        assert sorted(o.title for o in model.objects.filter(artist=artist).all()) == [f"{artist}{n}" for n in range(3)]
    lone.reset([])
    assert first.objects.count() == 3 and second.objects.count() == 3


@pytest.mark.parametrize("group", ["", 5, b"shop"])
def test_key_group_must_be_a_non_empty_str(group: Any) -> None:
    from IndexedRedis import InvalidModelException

    with pytest.raises(InvalidModelException, match="KEY_GROUP must be a non-empty str"):
        type("BadGroup", (IndexedRedisModel,), {"__module__": __name__, "FIELDS": ["a"], "KEY_NAME": "bad",
                                                "KEY_GROUP": group})
