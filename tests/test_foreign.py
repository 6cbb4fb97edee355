"""Foreign links (IRForeignLinkField, IRForeignMultiLinkField) against the real Redis.

Assignment by object or pk, lazy fetching, ``<field>__id``, cascade save (one atomic
script call, checked with MONITOR), cascade fetch (no command afterwards, checked with
MONITOR), deleted targets, filtering and index maintenance on link fields, cycles,
change tracking through links, copyModel, pickling and reload.
"""

from __future__ import annotations

import copy
import pickle
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from consistency import decode_record

from IndexedRedis import FieldValueError, IndexedRedisModel, irNull
from IndexedRedis import scripts as ir_scripts
from IndexedRedis.foreign import IRForeignLinkField, IRForeignMultiLinkField
from IndexedRedis.keys import escape_key_name

# ---- models ------------------------------------------------------------------------------------


class Author(IndexedRedisModel):
    FIELDS = ["name", "country"]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "FkAuthor"


class Book(IndexedRedisModel):
    FIELDS = ["title", IRForeignLinkField("author", foreignModel=Author),
              IRForeignMultiLinkField("coauthors", foreignModel=Author)]
    INDEXED_FIELDS = ["title", "author", "coauthors"]
    KEY_NAME = "FkBook"


class Shelf(IndexedRedisModel):
    """Three levels: Shelf -> Book -> Author."""

    FIELDS = ["label", IRForeignMultiLinkField("books", foreignModel=Book),
              IRForeignLinkField("favourite", foreignModel=Book)]
    INDEXED_FIELDS = ["label"]
    KEY_NAME = "FkShelf"


# A model's class must exist before a field can name it, so a cycle is closed after both
# classes are defined by re-pointing the first link (no declarative way exists).
class CycA(IndexedRedisModel):
    FIELDS = ["name", IRForeignLinkField("b", foreignModel=Author)]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "FkCycA"


class CycB(IndexedRedisModel):
    FIELDS = ["name", IRForeignLinkField("a", foreignModel=CycA)]
    INDEXED_FIELDS = ["name"]
    KEY_NAME = "FkCycB"


CycA._meta.fields_by_name["b"].foreignModel = CycB


class Node(IndexedRedisModel):
    FIELDS = ["name", IRForeignLinkField("peer", foreignModel=Author)]
    KEY_NAME = "FkNode"


Node._meta.fields_by_name["peer"].foreignModel = Node


class RemoteAuthor(IndexedRedisModel):
    """Lives in another database of the fixture server."""

    FIELDS = ["name"]
    KEY_NAME = "FkRemoteAuthor"
    REDIS_CONNECTION_PARAMS = {"db": 6}


class LocalBook(IndexedRedisModel):
    FIELDS = ["title", IRForeignLinkField("author", foreignModel=RemoteAuthor)]
    KEY_NAME = "FkLocalBook"


# ---- helpers -----------------------------------------------------------------------------------



# A get by pk: one MULTI/EXEC written at once (one round trip).
GET_BY_PK = [("MULTI", ""), ("GET", ""), ("HMGET", ""), ("EXEC", "")]

def prefix_of(model: type[IndexedRedisModel]) -> bytes:
    assert model.KEY_NAME is not None
    return b"ir:{" + escape_key_name(model.KEY_NAME).encode("ascii") + b"}:"


def gen_prefix(client: redis.Redis, model: type[IndexedRedisModel]) -> bytes:
    return prefix_of(model) + b"g%d:" % int(client.get(prefix_of(model) + b"gen") or 0)


def record(client: redis.Redis, model: type[IndexedRedisModel], pk: int) -> dict[str, Any]:
    blob = client.hget(gen_prefix(client, model) + b"objs", str(pk))
    assert blob is not None, f"{model.__name__} {pk} is not stored"
    return decode_record(client, model, blob)


def index_members(client: redis.Redis, model: type[IndexedRedisModel], field: str,
                  value: str | None) -> set[int]:
    gp = gen_prefix(client, model)
    key = gp + (b"n:" + field.encode() if value is None else b"i:" + field.encode() + b":" + value.encode())
    return {int(pk) for pk in client.smembers(key)}


def assert_book_indexes_exact(client: redis.Redis) -> None:
    """Every index set of Book matches the stored records (links index as their pk text)."""
    gp = gen_prefix(client, Book)
    expected: dict[bytes, set[int]] = {}
    for pk, blob in client.hgetall(gp + b"objs").items():
        rec = decode_record(client, Book, blob)
        for name in Book.INDEXED_FIELDS:
            value = rec[str(name)]
            key = gp + (b"n:" + str(name).encode() if value is False
                        else b"i:" + str(name).encode() + b":" + value.encode())
            expected.setdefault(key, set()).add(int(pk))
    actual = {key: {int(pk) for pk in client.smembers(key)}
              for key in client.scan_iter(count=1000)
              if key.startswith(gp + b"i:") or key.startswith(gp + b"n:")}
    assert actual == expected


@contextmanager
def recorded(redis_server: Any) -> Iterator[list[list[str]]]:
    """Record (with MONITOR) the commands clients send while the block runs.

    Commands that scripts run inside the server, and connection set-up chatter, are
    left out; what remains is what IndexedRedis itself sent.
    """
    commands: list[list[str]] = []
    watcher = redis_server.client(db=0, socket_timeout=10)
    side = redis_server.client(db=0)
    for script in _all_scripts():  # cached on the server: each call is one EVALSHA
        side.script_load(script.source)
    marker = f"end-of-recording-{uuid.uuid4().hex}"
    try:
        with watcher.monitor() as monitor:
            yield commands
            side.echo(marker)
            while True:
                entry = monitor.next_command()
                if marker in entry["command"]:
                    break
                if entry["client_type"] == "lua":
                    continue
                words = entry["command"].split(" ")
                if words[0].upper() in ("CLIENT", "HELLO", "SELECT", "PING", "ECHO"):
                    continue
                commands.append(words)
    finally:
        watcher.close()
        side.close()


def _all_scripts() -> list[ir_scripts.Script]:
    found = (getattr(ir_scripts, name) for name in ir_scripts.__all__)
    return [script for script in found if isinstance(script, ir_scripts.Script)]


def names(commands: list[list[str]]) -> list[tuple[str, str]]:
    """(command, script name or '') for each recorded command; a read-only script's
    Redis 7 form (EVALSHA_RO) counts as EVALSHA, so that the same calls read the same
    on Redis 6.2 and 7."""
    by_sha = {script.sha: script.name for script in _all_scripts()}
    by_sha.update({script.ro_sha: script.name for script in _all_scripts() if script.readonly})
    out = []
    for words in commands:
        cmd = words[0].upper()
        cmd = "EVALSHA" if cmd == "EVALSHA_RO" else cmd
        out.append((cmd, by_sha.get(words[1], "?") if cmd == "EVALSHA" else ""))
    return out


@pytest.fixture
def db6(redis_server: Any) -> Iterator[redis.Redis]:
    client = redis_server.client(db=6)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


# ---- assignment, lazy fetch, __id ----------------------------------------------------------------


def test_assign_object_or_pk_and_fetch_lazily(redis_client: redis.Redis) -> None:
    ann, bob = Author(name="Ann"), Author(name="Bob")
    ann.save()
    bob.save()
    by_obj = Book(title="one", author=ann, coauthors=[ann, bob])
    by_pk = Book(title="two", author=ann._id, coauthors=[bob._id, str(ann._id)])
    by_obj.save()
    by_pk.save()
    assert record(redis_client, Book, by_obj._id) == {
        "title": "one", "author": str(ann._id), "coauthors": f"{ann._id},{bob._id}"}
    assert record(redis_client, Book, by_pk._id) == {
        "title": "two", "author": str(ann._id), "coauthors": f"{bob._id},{ann._id}"}
    fetched = Book.objects.get(by_pk._id)
    assert fetched is not None
    author = fetched.author
    assert isinstance(author, Author) and author.name == "Ann" and author._id == ann._id
    assert fetched.author is author  # fetched once, then kept
    co = fetched.coauthors
    assert [type(o) for o in co] == [Author, Author]
    assert [o.name for o in co] == ["Bob", "Ann"]


def test_unset_links_read_as_irNull() -> None:
    book = Book(title="none")
    assert book.author is irNull and book.coauthors is irNull
    assert book.author__id is irNull and book.coauthors__id is irNull
    book.save()
    fetched = Book.objects.get(book._id)
    assert fetched is not None
    assert fetched.author is irNull and fetched.coauthors is irNull
    assert fetched.author__id is irNull
    fetched.coauthors = []  # an empty list is no link
    assert fetched.coauthors is irNull


def test_wrong_values_for_links_are_refused() -> None:
    book = Book(title="x")
    with pytest.raises(FieldValueError):
        book.author = Book(title="not an author")
    with pytest.raises(FieldValueError):
        book.author = "not a pk"
    with pytest.raises(FieldValueError):
        book.coauthors = Author(name="a list is expected")
    assert book.author is irNull


def test_id_suffix_gives_pks_without_any_command(redis_server: Any) -> None:
    ann, bob = Author(name="Ann"), Author(name="Bob")
    Author.saver.save([ann, bob])
    pk = Book(title="t", author=ann, coauthors=[bob, ann]).save()
    fetched = Book.objects.get(pk)
    assert fetched is not None
    with recorded(redis_server) as commands:
        assert fetched.author__id == ann._id
        assert fetched.coauthors__id == [bob._id, ann._id]
    assert commands == []
    with recorded(redis_server) as commands:
        assert fetched.author.name == "Ann"  # the lazy fetch itself does talk to Redis
    assert names(commands) == GET_BY_PK


# ---- cascade save ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_cascade_save_of_new_objects_three_levels_deep_is_one_atomic_step(
        redis_server: Any, redis_client: redis.Redis) -> None:
    ann, bob = Author(name="Ann"), Author(name="Bob")
    novel = Book(title="Novel", author=ann, coauthors=[bob, ann])
    essay = Book(title="Essay", author=bob)
    shelf = Shelf(label="top", books=[novel, essay], favourite=novel)
    Author.objects.count()  # the client's first use reads the eviction policy (one INFO, once)
    with recorded(redis_server) as commands:
        shelf_pk = shelf.save()
    assert names(commands) == [("EVALSHA", "reserve_pks"), ("EVALSHA", "save")]
    assert all(o._id is not None for o in (ann, bob, novel, essay, shelf))
    assert record(redis_client, Shelf, shelf_pk) == {
        "label": "top", "books": f"{novel._id},{essay._id}", "favourite": str(novel._id)}
    assert record(redis_client, Book, novel._id) == {
        "title": "Novel", "author": str(ann._id), "coauthors": f"{bob._id},{ann._id}"}
    assert record(redis_client, Book, essay._id)["author"] == str(bob._id)
    assert {o.name for o in Author.objects.all()} == {"Ann", "Bob"}
    assert not any(o.hasUnsavedChanges(cascadeObjects=True) for o in (ann, bob, novel, essay, shelf))
    again = Shelf.objects.get(shelf_pk)
    assert again is not None
    assert [b.author.name for b in again.books] == ["Ann", "Bob"]
    assert_book_indexes_exact(redis_client)


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_cascade_save_of_changed_linked_objects_is_one_script_call(
        redis_server: Any, redis_client: redis.Redis) -> None:
    ann = Author(name="Ann")
    novel = Book(title="Novel", author=ann)
    shelf = Shelf(label="top", books=[novel])
    shelf.save()
    fetched = Shelf.objects.get(shelf._id, cascadeFetch=True)
    assert fetched is not None
    fetched.books[0].author.country = "NO"  # two levels down
    fetched.books[0].title = "Novel, 2nd ed."
    with recorded(redis_server) as commands:
        fetched.save()  # the shelf itself is unchanged
    assert names(commands) == [("EVALSHA", "save")]
    assert record(redis_client, Author, ann._id)["country"] == "NO"
    assert record(redis_client, Book, novel._id)["title"] == "Novel, 2nd ed."
    newcomer = Book(title="New", author=ann._id)
    fetched.favourite = newcomer  # a new object linked from a saved one
    with recorded(redis_server) as commands:
        fetched.save()
    assert names(commands) == [("EVALSHA", "reserve_pks"), ("EVALSHA", "save")]
    assert record(redis_client, Shelf, shelf._id)["favourite"] == str(newcomer._id)
    assert_book_indexes_exact(redis_client)


def test_cascade_save_false_stores_no_link_to_an_unsaved_object(redis_client: redis.Redis) -> None:
    saved = Author(name="Saved")
    saved.save()
    unsaved = Author(name="Unsaved")
    book = Book(title="t", author=unsaved, coauthors=[unsaved, saved])
    pk = book.save(cascadeSave=False)
    assert unsaved.getPk() is None
    assert Author.objects.count() == 1
    assert record(redis_client, Book, pk) == {"title": "t", "author": False, "coauthors": str(saved._id)}
    fetched = Book.objects.get(pk)
    assert fetched is not None
    assert fetched.author is irNull and fetched.author__id is irNull
    assert [o.name for o in fetched.coauthors] == ["Saved"]
    assert index_members(redis_client, Book, "author", None) == {pk}
    assert not book.hasUnsavedChanges()  # its own stored values are all written...
    assert book.hasUnsavedChanges(cascadeObjects=True)  # ...but it links an unsaved object
    book.save()  # a cascading save now stores both
    assert record(redis_client, Book, pk)["author"] == str(unsaved._id)
    assert_book_indexes_exact(redis_client)


def test_cascade_save_false_does_not_save_changes_of_linked_objects(redis_client: redis.Redis) -> None:
    ann = Author(name="Ann")
    book = Book(title="t", author=ann)
    book.save()
    book.author.name = "Changed"
    book.title = "t2"
    book.save(cascadeSave=False)
    assert record(redis_client, Author, ann._id)["name"] == "Ann"
    assert record(redis_client, Book, book._id)["title"] == "t2"
    book.save()
    assert record(redis_client, Author, ann._id)["name"] == "Changed"
    assert Author.objects.filter(name="Changed").getPrimaryKeys() == [ann._id]


def test_changing_a_lazily_fetched_linked_object_and_saving_the_parent(redis_client: redis.Redis) -> None:
    ann, bob = Author(name="Ann"), Author(name="Bob")
    pk = Book(title="t", author=ann, coauthors=[bob]).save()
    fetched = Book.objects.get(pk)
    assert fetched is not None
    fetched.author.country = "SE"
    fetched.coauthors[0].name = "Robert"
    fetched.save()
    assert record(redis_client, Author, ann._id)["country"] == "SE"
    assert record(redis_client, Author, bob._id)["name"] == "Robert"
    assert Author.objects.filter(name="Bob").count() == 0


# ---- deleted targets ---------------------------------------------------------------------------------


def test_deleted_linked_objects_read_as_irNull_or_are_left_out() -> None:
    ann, bob, cid = Author(name="Ann"), Author(name="Bob"), Author(name="Cid")
    pk = Book(title="t", author=ann, coauthors=[ann, bob, cid]).save()
    Author.deleter.deleteMultiple([ann, cid])
    fetched = Book.objects.get(pk)
    assert fetched is not None
    assert fetched.author is irNull
    assert [o.name for o in fetched.coauthors] == ["Bob"]
    cascaded = Book.objects.get(pk, cascadeFetch=True)
    assert cascaded is not None
    assert cascaded.author is irNull
    assert [o.name for o in cascaded.coauthors] == ["Bob"]
    Author.deleter.destroyModel()
    assert Book.objects.get(pk).coauthors == []  # type: ignore[union-attr]
    assert Book.objects.first(cascadeFetch=True).author is irNull  # type: ignore[union-attr]


# ---- filtering and index maintenance -------------------------------------------------------------------


def test_filter_on_link_fields_by_object_and_by_pk(redis_client: redis.Redis) -> None:
    ann, bob = Author(name="Ann"), Author(name="Bob")
    Author.saver.save([ann, bob])
    b1 = Book(title="1", author=ann, coauthors=[ann, bob])
    b2 = Book(title="2", author=bob, coauthors=[bob])
    b3 = Book(title="3")
    Book.saver.save([b1, b2, b3])
    assert Book.objects.filter(author=ann).getPrimaryKeys() == [b1._id]
    assert Book.objects.filter(author=ann._id).getPrimaryKeys() == [b1._id]
    assert Book.objects.filter(author=str(bob._id)).getPrimaryKeys() == [b2._id]
    assert Book.objects.filter(author=irNull).getPrimaryKeys() == [b3._id]
    assert Book.objects.filter(author__ne=ann).getPrimaryKeys() == [b2._id, b3._id]
    assert Book.objects.filter(coauthors=[ann, bob]).getPrimaryKeys() == [b1._id]
    assert Book.objects.filter(coauthors=[ann._id, bob._id]).getPrimaryKeys() == [b1._id]
    assert Book.objects.filter(coauthors=[bob]).getPrimaryKeys() == [b2._id]
    assert Book.objects.filter(coauthors=[bob, ann]).count() == 0  # order matters: the whole list
    assert Book.objects.filter(author=bob, coauthors=[bob]).getPrimaryKeys() == [b2._id]
    assert_book_indexes_exact(redis_client)


def test_updating_an_indexed_link_moves_its_index_entry(redis_client: redis.Redis) -> None:
    ann, bob = Author(name="Ann"), Author(name="Bob")
    Author.saver.save([ann, bob])
    book = Book(title="t", author=ann, coauthors=[ann])
    book.save()
    other = Book(title="o", author=ann)
    other.save()
    book.author = bob
    book.coauthors = [ann, bob]
    book.save()
    assert index_members(redis_client, Book, "author", str(ann._id)) == {other._id}
    assert index_members(redis_client, Book, "author", str(bob._id)) == {book._id}
    assert Book.objects.filter(author=ann).getPrimaryKeys() == [other._id]
    assert Book.objects.filter(coauthors=[ann, bob]).getPrimaryKeys() == [book._id]
    assert Book.objects.filter(coauthors=[ann]).count() == 0
    stale = Book.objects.get(other._id)  # through a fetched copy, by pk, then to no link
    assert stale is not None
    stale.author = bob._id
    stale.save()
    assert Book.objects.filter(author=bob).getPrimaryKeys() == [book._id, other._id]
    assert Book.objects.filter(author=ann).count() == 0
    stale.author = irNull
    stale.save()
    assert Book.objects.filter(author=irNull).getPrimaryKeys() == [other._id]
    assert_book_indexes_exact(redis_client)


# ---- cycles ---------------------------------------------------------------------------------------------


def test_cycle_of_two_models_saves_and_cascade_fetches(redis_server: Any, redis_client: redis.Redis) -> None:
    a = CycA(name="a")
    b = CycB(name="b", a=a)
    a.b = b
    a_pk = a.save()
    assert b._id is not None
    assert record(redis_client, CycA, a_pk) == {"name": "a", "b": str(b._id)}
    assert record(redis_client, CycB, b._id) == {"name": "b", "a": str(a_pk)}
    a.name = "a2"
    b.name = "b2"
    a.save()  # the cycle does not make the cascade loop
    assert CycB.objects.get(b._id).name == "b2"  # type: ignore[union-attr]
    fetched = CycA.objects.get(a_pk, cascadeFetch=True)
    assert fetched is not None
    with recorded(redis_server) as commands:
        assert fetched.b.a is fetched
        assert fetched.b.a.b.name == "b2"
    assert commands == []
    fetched.b.name = "b3"
    fetched.save()
    assert CycB.objects.get(b._id).name == "b3"  # type: ignore[union-attr]
    lazy = CycB.objects.get(b._id)
    assert lazy is not None and lazy.a.b.a.name == "a2"
    lazy.cascadeFetch()  # the instance method terminates on the cycle too


# Regression: hasUnsavedChanges / getUpdatedFields(cascadeObjects=True) recursed forever on a cycle.
def test_hasUnsavedChanges_cascadeObjects_terminates_on_a_cycle() -> None:
    a = CycA(name="a")
    a.b = CycB(name="b", a=a)
    a.save()
    fetched = CycA.objects.get(a._id, cascadeFetch=True)
    assert fetched is not None
    assert not fetched.hasUnsavedChanges(cascadeObjects=True)
    fetched.b.name = "changed"
    assert fetched.hasUnsavedChanges(cascadeObjects=True)
    assert list(fetched.getUpdatedFields(cascadeObjects=True)) == ["b"]


# Regression: hasSameValues (cascadeObject=True) recursed forever on two cyclic graphs.
def test_hasSameValues_terminates_on_a_cycle() -> None:
    a = CycA(name="a")
    a.b = CycB(name="b", a=a)
    a.save()
    one = CycA.objects.get(a._id, cascadeFetch=True)
    two = CycA.objects.get(a._id, cascadeFetch=True)
    assert one is not None and two is not None
    assert one.hasSameValues(two)
    two.b.name = "changed"
    assert not one.hasSameValues(two)


def test_cycle_of_two_new_objects_of_one_model(redis_client: redis.Redis) -> None:
    n1, n2 = Node(name="n1"), Node(name="n2")
    n1.peer = n2
    n2.peer = n1
    n1.save()
    assert record(redis_client, Node, n1._id)["peer"] == str(n2._id)
    assert record(redis_client, Node, n2._id)["peer"] == str(n1._id)
    fetched = Node.objects.get(n1._id, cascadeFetch=True)
    assert fetched is not None and fetched.peer.peer is fetched


# Regression: a new object linking to itself stored irNull on its first save (no pk reserved).
def test_new_object_linking_to_itself_keeps_the_link(redis_client: redis.Redis) -> None:
    node = Node(name="self")
    node.peer = node
    pk = node.save()
    assert record(redis_client, Node, pk)["peer"] == str(pk)
    assert not node.hasUnsavedChanges()


# ---- change tracking through links -----------------------------------------------------------------------


def test_hasUnsavedChanges_cascadeObjects_sees_changed_linked_objects() -> None:
    ann, bob = Author(name="Ann"), Author(name="Bob")
    novel = Book(title="Novel", author=ann, coauthors=[bob])
    shelf = Shelf(label="s", books=[novel])
    shelf.save()
    fetched = Shelf.objects.get(shelf._id, cascadeFetch=True)
    assert fetched is not None
    assert not fetched.hasUnsavedChanges(cascadeObjects=True)
    fetched.books[0].coauthors[0].name = "Robert"  # two levels down, through a multi link
    assert not fetched.hasUnsavedChanges()
    assert fetched.getUpdatedFields() == {}
    assert fetched.hasUnsavedChanges(cascadeObjects=True)
    assert list(fetched.getUpdatedFields(cascadeObjects=True)) == ["books"]
    book = fetched.books[0]
    assert not book.hasUnsavedChanges()
    assert book.hasUnsavedChanges(cascadeObjects=True)
    assert list(book.getUpdatedFields(cascadeObjects=True)) == ["coauthors"]
    fetched.favourite = book  # changing the link itself is a change of the parent
    assert fetched.getUpdatedFields() == {"favourite": (irNull, fetched.__dict__["favourite"])}
    fetched.save()
    assert not fetched.hasUnsavedChanges(cascadeObjects=True)


# ---- cascade fetch ---------------------------------------------------------------------------------------


def _library() -> Shelf:
    ann, bob = Author(name="Ann"), Author(name="Bob")
    novel = Book(title="Novel", author=ann, coauthors=[ann, bob])
    essay = Book(title="Essay", author=bob, coauthors=[bob])
    shelf = Shelf(label="top", books=[novel, essay], favourite=essay)
    shelf.save()
    Shelf(label="empty").save()
    return shelf


def _touch_everything(shelf: Shelf) -> list[str]:
    seen = []
    for book in shelf.books:
        seen.append(book.title)
        seen.append(book.author.name)
        seen += [o.name for o in book.coauthors]
    seen.append(shelf.favourite.title)
    return seen


EXPECTED_TOUCH = ["Novel", "Ann", "Ann", "Bob", "Essay", "Bob", "Bob", "Essay"]


@pytest.mark.parametrize("fetch", ["all", "allByAge", "first", "get", "getMultiple", "filter.first",
                                   "last", "random", "allOnlyFields", "getOnlyFields", "instance"])
def test_cascade_fetch_loads_every_level_so_reading_issues_no_command(
        fetch: str, redis_server: Any) -> None:
    shelf = _library()
    pk = shelf._id
    query = Shelf.objects.filter(label="top")
    got: Any
    if fetch == "all":
        got = query.all(cascadeFetch=True)[0]
    elif fetch == "allByAge":
        got = Shelf.objects.allByAge(cascadeFetch=True)[0]
    elif fetch == "first":
        got = Shelf.objects.first(cascadeFetch=True)
    elif fetch == "get":
        got = Shelf.objects.get(pk, cascadeFetch=True)
    elif fetch == "getMultiple":
        got = Shelf.objects.getMultiple([999, pk], cascadeFetch=True)[1]
    elif fetch == "filter.first":
        got = query.first(cascadeFetch=True)
    elif fetch == "last":
        got = query.last(cascadeFetch=True)
    elif fetch == "random":
        got = query.random(cascadeFetch=True)
    elif fetch == "allOnlyFields":
        got = query.allOnlyFields(["books", "favourite"], cascadeFetch=True)[0]
    elif fetch == "getOnlyFields":
        got = Shelf.objects.getOnlyFields(pk, ["books", "favourite"], cascadeFetch=True)
    else:
        got = Shelf.objects.get(pk)
        got.cascadeFetch()
    assert got is not None and got._id == pk
    with recorded(redis_server) as commands:
        assert _touch_everything(got) == EXPECTED_TOUCH
    assert commands == []


def test_without_cascade_fetch_links_are_fetched_on_access(redis_server: Any) -> None:
    shelf = _library()
    got = Shelf.objects.get(shelf._id)
    assert got is not None
    with recorded(redis_server) as commands:
        assert _touch_everything(got) == EXPECTED_TOUCH
    assert len(commands) >= 3
    assert {name for name in names(commands)} == set(GET_BY_PK)


@pytest.mark.usefixtures("evalsha_only")  # counts the EVALSHA path
def test_cascade_fetch_is_one_round_trip_per_level(redis_server: Any) -> None:
    shelf = _library()
    Shelf.objects.get(shelf._id, cascadeFetch=True)  # the server learns the scripts
    with recorded(redis_server) as commands:
        Shelf.objects.get(shelf._id, cascadeFetch=True)
    # the shelf, then its books, then their authors
    assert names(commands) == GET_BY_PK + [("EVALSHA", "query")] * 2


# ---- copyModel, pickling, reload ---------------------------------------------------------------------


def test_copyModel_of_a_model_with_links(redis_client: redis.Redis) -> None:
    ann = Author(name="Ann")
    pk = Book(title="t", author=ann, coauthors=[ann]).save()
    BookCopy = Book.copyModel()
    got = BookCopy.objects.get(pk)
    assert got is not None and type(got) is BookCopy
    assert got.author.name == "Ann" and got.author__id == ann._id
    assert [o.name for o in got.coauthors] == ["Ann"]
    assert BookCopy.objects.filter(author=ann).getPrimaryKeys() == [pk]
    bob = Author(name="Bob")
    copy_pk = BookCopy(title="c", author=bob).save()
    assert record(redis_client, Book, copy_pk)["author"] == str(bob._id)
    assert Book.objects.filter(author=bob).getPrimaryKeys() == [copy_pk]
    field = BookCopy._meta.fields_by_name["author"]
    assert field is not Book._meta.fields_by_name["author"]
    assert field.foreignModel is Author
    assert_book_indexes_exact(redis_client)


def test_pickling_objects_with_links(redis_server: Any) -> None:
    ann = Author(name="Ann")
    pk = Book(title="t", author=ann, coauthors=[ann]).save()
    fetched = Book.objects.get(pk, cascadeFetch=True)
    loaded = pickle.loads(pickle.dumps(fetched))
    assert loaded == fetched
    with recorded(redis_server) as commands:
        assert loaded.author.name == "Ann"
        assert loaded.coauthors[0] is loaded.author  # one object, as before pickling
    assert commands == []
    lazy = pickle.loads(pickle.dumps(Book.objects.get(pk)))
    assert lazy.author__id == ann._id
    assert lazy.author.name == "Ann"  # fetched after unpickling
    new = pickle.loads(pickle.dumps(Book(title="new", author=Author(name="new author"))))
    new.save()
    assert new.author.getPk() is not None
    assert Book.objects.get(new._id).author.name == "new author"  # type: ignore[union-attr]


def test_reload_follows_a_link_changed_in_redis() -> None:
    ann = Author(name="Ann")
    pk = Book(title="t", author=ann).save()
    book = Book.objects.get(pk, cascadeFetch=True)
    assert book is not None and book.author.name == "Ann"
    other = Book.objects.get(pk)
    assert other is not None
    bob = Author(name="Bob")
    other.author = bob
    other.save()
    changes = book.reload()
    assert list(changes) == ["author"]
    assert book.author.name == "Bob" and book.author__id == bob._id
    assert not book.hasUnsavedChanges()


# Regression: reload() replaced every link before cascading, so held linked objects were never
# reloaded (the cascade branch was dead code).
def test_reload_reloads_changed_linked_objects_in_place() -> None:
    ann = Author(name="Ann")
    pk = Book(title="t", author=ann).save()
    book = Book.objects.get(pk, cascadeFetch=True)
    assert book is not None
    held = book.author
    held.name = "local"
    book.reload()
    assert held.name == "Ann"
    assert book.author is held


# Regression: this was a bug in an earlier version of the model layer.
def test_reload_reports_a_reloaded_linked_object() -> None:
    """README (6.x): with cascadeObjects, linked objects with local changes are reloaded
    "(and reflected in the return value)"."""
    ann = Author(name="Ann")
    pk = Book(title="t", author=ann).save()
    book = Book.objects.get(pk, cascadeFetch=True)
    assert book is not None
    book.author.name = "local"
    changes = book.reload()
    assert list(changes) == ["author"]
    assert book.author.name == "Ann"
    assert book.reload() == {}


# Regression: reload(cascadeObjects=False) replaced links whose pk had not changed (6.0.3 only set
# the changed fields).
def test_reload_without_cascade_keeps_unchanged_links() -> None:
    ann = Author(name="Ann")
    pk = Book(title="t", author=ann).save()
    book = Book.objects.get(pk, cascadeFetch=True)
    assert book is not None
    held = book.author
    held.name = "local"
    assert book.reload(cascadeObjects=False) == {}
    assert book.author is held and book.author.name == "local"


# ---- regressions found while writing this suite ------------------------------------------


# Regression: saver.save([a, b]) with b new and linked from a stored no link (pks were reserved
# only for objects found by cascading beyond the list).
def test_saver_save_list_with_new_objects_linking_each_other(redis_client: redis.Redis) -> None:
    parent, child = Node(name="parent"), Node(name="child")
    child.peer = parent
    Node.saver.save([child, parent])
    assert record(redis_client, Node, child._id)["peer"] == str(parent._id)
    assert not child.hasUnsavedChanges()


# Regression: saveMultiple did not cascade (6.0.3's saveMultiple is save(objs), cascadeSave=True).
def test_saveMultiple_cascades_like_6x(redis_client: redis.Redis) -> None:
    ann = Author(name="Ann")
    book = Book(title="t", author=ann)
    Book.saver.saveMultiple([book])
    assert ann.getPk() is not None
    assert record(redis_client, Book, book._id)["author"] == str(ann._id)


# Regression: cascade save wrote linked objects through the parent's connection, into the wrong
# Redis.
def test_cascade_save_writes_a_linked_object_to_its_own_database(db6: redis.Redis,
                                                                 redis_client: redis.Redis) -> None:
    book = LocalBook(title="t", author=RemoteAuthor(name="far"))
    book.save()
    assert not any(key.startswith(prefix_of(RemoteAuthor)) for key in redis_client.scan_iter())
    assert any(key.startswith(prefix_of(RemoteAuthor)) for key in db6.scan_iter())
    assert [o.name for o in RemoteAuthor.objects.all()] == ["far"]
    assert LocalBook.objects.get(book._id).author.name == "far"  # type: ignore[union-attr]


# Regression: this was a bug in an earlier version of the model layer.
def test_reset_saves_new_linked_objects(redis_client: redis.Redis) -> None:
    author = Author(name="new")
    (pk,) = Book.reset([Book(title="r", author=author)])
    assert author.getPk() is not None
    assert record(redis_client, Book, pk)["author"] == str(author._id)
    assert Book.objects.get(pk).author.name == "new"  # type: ignore[union-attr]


# Regression: this was a bug in an earlier version of the model layer.
def test_deep_copies_keep_links_to_the_same_stored_objects() -> None:
    ann = Author(name="Ann")
    pk = Book(title="t", author=ann, coauthors=[ann]).save()
    lazy = Book.objects.get(pk)
    fetched = Book.objects.get(pk, cascadeFetch=True)
    assert lazy is not None and fetched is not None
    for original in (lazy, fetched):
        for clone in (original.copy(copyValues=True), copy.deepcopy(original)):
            assert clone.author__id == ann._id
            assert clone.coauthors__id == [ann._id]
            clone.save()
    assert Author.objects.count() == 1
