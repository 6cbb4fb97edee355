"""The implementations run in bench/.venv: the hand-written redis-py baseline,
IndexedRedis (ours), rom, walrus and SQLAlchemy 2 on SQLite / PostgreSQL / MariaDB.
(IndexedRedis 6.0.3 runs in its own venv: see ir6_driver.py.)"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import tempfile
from typing import Any

import redis

from .ops import Adapter, redis_cpu
from .workload import FIELDS, INDEXED, song_model

TRACKS = [str(t) for t in range(1, 13)]


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "?"


class RedisAdapter(Adapter):
    """Common part of the Redis-backed adapters: each gets its own db of the private
    server, FLUSHDB'd between phases, so ``used_memory`` differences are clean."""

    def __init__(self, params: dict[str, Any], db: int) -> None:
        self.params = {**params, "db": db}
        self.admin = redis.Redis(**self.params)

    def clear(self) -> None:
        self.admin.flushdb()

    def used_memory(self) -> int:
        return int(self.admin.info("memory")["used_memory"])

    def server_cpu(self) -> float:
        return redis_cpu(self.admin.info("cpu"))

    def close(self) -> None:
        self.admin.flushdb()
        self.admin.close()


# --- the baseline ------------------------------------------------------------------------------
def queue_baseline_save(pipe: Any, pk: int, row: dict[str, str]) -> None:
    """Queue one object's writes on a pipeline (sync or ``redis.asyncio``: queuing is
    synchronous on both), so the sync and the async baselines send the same commands."""
    pipe.hset(f"bl:{pk}", mapping=row)
    pipe.sadd("bl:ids", pk)
    for name in INDEXED:
        pipe.sadd(f"bl:idx:{name}:{row[name]}", pk)


class Baseline(RedisAdapter):
    """Hand-written redis-py, as WORKLOAD.md describes: a hash per object, a set of all
    ids, a set per (field, value).

    * pk: a counter, ``INCR bl:next`` (one round trip) per save; ``INCRBY bl:next N``
      for the bulk path.  The id must exist before the MULTI that uses it, so a save is
      INCR + one MULTI/EXEC pipeline (HSET, SADD ids, 3 x SADD index): two round trips.
    * bulk: one non-transactional pipeline of those commands for all N objects.
    * query: SMEMBERS (eq) or SDIFF ids index (ne), then one pipeline of HGETALL.
    * results: the HGETALL dicts (decoded to str), no model objects.
    """

    name = "redis-py baseline"
    notes = {"insert_one": "INCR for the pk, then one MULTI/EXEC pipeline per object (2 round trips)",
             "insert_bulk": "INCRBY N, then one plain pipeline"}

    def __init__(self, params: dict[str, Any], db: int) -> None:
        super().__init__(params, db)
        self.r = redis.Redis(**self.params, decode_responses=True)
        from redis.utils import HIREDIS_AVAILABLE

        assert HIREDIS_AVAILABLE, "the baseline must use the hiredis parser"

    def versions(self) -> dict[str, str]:
        return {"redis-py": _version("redis"), "hiredis": _version("hiredis")}

    def _queue(self, pipe: Any, pk: int, row: dict[str, str]) -> None:
        queue_baseline_save(pipe, pk, row)

    def insert_one(self, rows: list[dict[str, str]]) -> list[Any]:
        r, pks = self.r, []
        for row in rows:
            pk = r.incr("bl:next")
            pipe = r.pipeline(transaction=True)
            self._queue(pipe, pk, row)
            pipe.execute()
            pks.append(pk)
        return pks

    def insert_bulk(self, rows: list[dict[str, str]]) -> list[Any]:
        first = self.r.incrby("bl:next", len(rows)) - len(rows) + 1
        pks = list(range(first, first + len(rows)))
        pipe = self.r.pipeline(transaction=False)
        for pk, row in zip(pks, rows):
            self._queue(pipe, pk, row)
        pipe.execute()
        return pks

    def _fetch(self, ids: Any) -> list[dict[str, str]]:
        pipe = self.r.pipeline(transaction=False)
        for pk in ids:
            pipe.hgetall(f"bl:{pk}")
        return pipe.execute()

    def filter_eq(self, artist: str) -> list[Any]:
        return self._fetch(self.r.smembers(f"bl:idx:artist:{artist}"))

    def filter_ne(self, track: str) -> list[Any]:
        return self._fetch(self.r.sdiff(["bl:ids", f"bl:idx:track_number:{track}"]))

    def get(self, pk: Any) -> Any:
        return self.r.hgetall(f"bl:{pk}")

    def value(self, obj: Any, name: str) -> str:
        return obj[name]


# --- IndexedRedis (ours) -----------------------------------------------------------------------
class Ours(RedisAdapter):
    """IndexedRedis through its public API: ``obj.save()``, ``Model.reset(objs)``,
    ``Model.objects.filter(...).all()``, ``Model.objects.get(pk)``."""

    name = "IndexedRedis (ours)"

    def __init__(self, params: dict[str, Any], db: int) -> None:
        super().__init__(params, db)
        from IndexedRedis import setDefaultRedisConnectionParams

        setDefaultRedisConnectionParams(self.params)
        self.Song = song_model("BenchSongs")

    def versions(self) -> dict[str, str]:
        return {"indexedredis (ours)": _version("indexedredis")}

    def insert_one(self, rows: list[dict[str, str]]) -> list[Any]:
        Song, pks = self.Song, []
        for row in rows:
            obj = Song(**row)
            obj.save()
            pks.append(obj._id)
        return pks

    def insert_bulk(self, rows: list[dict[str, str]]) -> list[Any]:
        Song = self.Song
        return list(Song.reset([Song(**row) for row in rows]))

    def filter_eq(self, artist: str) -> list[Any]:
        return self.Song.objects.filter(artist=artist).all()

    def filter_ne(self, track: str) -> list[Any]:
        return self.Song.objects.filter(track_number__ne=track).all()

    def get(self, pk: Any) -> Any:
        return self.Song.objects.get(pk)


# --- rom ---------------------------------------------------------------------------------------
class Rom(RedisAdapter):
    """rom: Text columns, the indexed ones with ``index=True, keygen=rom.IDENTITY``
    (exact-match index).  rom's session (an identity cache that would answer repeated
    gets from memory) is disabled with ``use_null_session()``, so every read hits Redis.

    * insert_one: ``obj.save()``; insert_bulk: ``rom.session.save(objs)`` (rom has no
      bulk write: it saves one object per Lua call).
    * filter_ne: rom has no not-equals filter; the idiomatic equivalent is its OR
      filter over the other values, ``filter(track_number=[the 11 other values])``,
      which needs the value domain to be known (here: 1..12).
    """

    name = "rom"
    notes = {"insert_bulk": "no bulk path: `rom.session.save(objs)` saves one object per Lua call",
             "filter_ne": "no not-equals: OR filter over the 11 other track numbers"}

    def __init__(self, params: dict[str, Any], db: int) -> None:
        super().__init__(params, db)
        import rom
        import rom.util

        self.rom = rom
        rom.util.set_connection_settings(**self.params)
        rom.util.use_null_session()
        text = {name: rom.Text(index=True, keygen=rom.IDENTITY) if name in INDEXED else rom.Text()
                for name in FIELDS}
        self.Song: Any = type("RomSong", (rom.Model,), {**text, "__module__": __name__})

    def versions(self) -> dict[str, str]:
        return {"rom": _version("rom")}

    def insert_one(self, rows: list[dict[str, str]]) -> list[Any]:
        Song, pks = self.Song, []
        for row in rows:
            obj = Song(**row)
            obj.save()
            pks.append(obj.id)
        return pks

    def insert_bulk(self, rows: list[dict[str, str]]) -> list[Any]:
        objs = [self.Song(**row) for row in rows]
        self.rom.session.save(objs)
        return [obj.id for obj in objs]

    def filter_eq(self, artist: str) -> list[Any]:
        return self.Song.query.filter(artist=artist).all()

    def filter_ne(self, track: str) -> list[Any]:
        return self.Song.query.filter(track_number=[t for t in TRACKS if t != track]).all()

    def get(self, pk: Any) -> Any:
        return self.Song.get(pk)


# --- walrus ------------------------------------------------------------------------------------
class Walrus(RedisAdapter):
    """walrus: TextFields with ``index=True`` (a set per value), an AutoIncrementField pk.

    * insert_one: ``Model.create(**row)``.  walrus has no bulk write (and
      ``db.atomic()`` cannot be used: the pk comes from an INCR whose result is needed
      mid-save), so insert_bulk is the same loop of ``create``.
    * filter: ``list(Model.query(Model.artist == x))``, ``Model.track_number != k``
      (walrus's own not-equals: SDIFFSTORE of its "all" set into a temp key).  walrus
      loads each match with EXISTS + HGETALL (two round trips per object).
    * get_pk: ``Model.load(pk)``.
    """

    name = "walrus"
    notes = {"insert_bulk": "no bulk path: one `create()` per object, as insert_one"}
    # walrus loads every match with EXISTS + HGETALL and saves with ~7 round trips:
    # the full workload would take minutes per round, so time part of it and scale
    # (see ops.run_round; the report says which)
    caps = {"insert_one": 5_000, "filter_eq": 100, "filter_ne": 3}

    def __init__(self, params: dict[str, Any], db: int) -> None:
        super().__init__(params, db)
        from walrus import AutoIncrementField, Database, Model, TextField

        self.db = Database(**self.params)
        attrs: dict[str, Any] = {"__database__": self.db, "__namespace__": "bench", "__module__": __name__,
                                 "id": AutoIncrementField()}
        for name in FIELDS:
            attrs[name] = TextField(index=name in INDEXED)
        self.Song: Any = type("WalrusSong", (Model,), attrs)

    def versions(self) -> dict[str, str]:
        return {"walrus": _version("walrus")}

    def insert_one(self, rows: list[dict[str, str]]) -> list[Any]:
        create = self.Song.create
        return [create(**row).id for row in rows]

    insert_bulk = insert_one

    def filter_eq(self, artist: str) -> list[Any]:
        Song = self.Song
        return list(Song.query(Song.artist == artist))

    def filter_ne(self, track: str) -> list[Any]:
        Song = self.Song
        return list(Song.query(Song.track_number != track))

    def get(self, pk: Any) -> Any:
        return self.Song.load(pk)


# --- SQLAlchemy 2 ORM --------------------------------------------------------------------------
SQL_TABLE = "irbench_songs"


def sql_urls() -> dict[str, str]:
    """The SQL peers: name -> SQLAlchemy URL (SQLite's is filled in per run)."""
    return {
        "SQLite": "sqlite://",  # placeholder: a file in a private temp dir, see Sql.__init__
        "PostgreSQL": os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
        "MariaDB": os.environ.get("BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"),
    }


class Sql(Adapter):
    """SQLAlchemy 2 ORM: one mapped class, table ``irbench_songs`` (an integer
    autoincrement pk, 7 VARCHAR columns, an index on each of artist, title,
    track_number), the same on every engine.

    * insert_one: per row, a new Session, ``add`` + ``commit``.
    * insert_bulk: one Session, one transaction, ``session.scalars(insert(Song)
      .returning(Song.id, sort_by_parameter_order=True), rows)`` (the 2.0 ORM bulk
      INSERT; batched multi-row INSERTs with RETURNING so the pks are known).
    * filter_eq / filter_ne: a new Session per query, ``session.scalars(select(Song)
      .where(Song.artist == x)).all()`` / ``.where(Song.track_number != k)``: ORM
      objects.
    * get_pk: a new Session per get, ``session.get(Song, pk)`` (a fresh identity map,
      so it really queries).
    * SQLite: a file in a private temp dir, journal_mode=WAL, synchronous=NORMAL
      (durable across a crash of the process; Redis here has no persistence at all).
      PostgreSQL / MariaDB: the servers' own settings (both fsync on commit).
    """

    notes: dict[str, str] = {}

    def __init__(self, kind: str, url: str) -> None:
        from sqlalchemy import Index, String, create_engine, event, text
        from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

        self.name = f"SQLAlchemy + {kind}"
        self.kind = kind
        if kind != "SQLite":  # a commit per row waits for the server's fsync: ~3 ms a row
            self.caps = {"insert_one": 5_000}
        self.tmpdir: str | None = None
        if kind == "SQLite":
            self.tmpdir = tempfile.mkdtemp(prefix="irbench-sqlite-")
            url = f"sqlite:///{os.path.join(self.tmpdir, 'bench.db')}"
        self.engine = create_engine(url)
        if kind == "SQLite":
            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        class Base(DeclarativeBase):
            pass

        columns: dict[str, Any] = {
            "__tablename__": SQL_TABLE,
            "__module__": __name__,
            "__annotations__": {"id": Mapped[int], **{f: Mapped[str] for f in FIELDS}},
            "id": mapped_column(primary_key=True, autoincrement=True),
        }
        for f in FIELDS:
            columns[f] = mapped_column(String(100), nullable=False)
        Song: Any = type("SqlSong", (Base,), columns)
        for f in INDEXED:
            Index(f"ix_{SQL_TABLE}_{f}", getattr(Song, f))
        self.Base, self.Song = Base, Song
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        with self.engine.connect() as conn:  # fail early if the server is absent
            self.server_version = ".".join(map(str, self.engine.dialect.server_version_info or ()))
            conn.execute(text("SELECT 1"))

    def versions(self) -> dict[str, str]:
        v = {"SQLAlchemy": _version("SQLAlchemy"), f"{self.kind} server": self.server_version}
        if self.kind == "PostgreSQL":
            v["psycopg"] = _version("psycopg")
        elif self.kind == "MariaDB":
            v["PyMySQL"] = _version("PyMySQL")
        return v

    def clear(self) -> None:
        self.Base.metadata.drop_all(self.engine)
        self.Base.metadata.create_all(self.engine)

    def insert_one(self, rows: list[dict[str, str]]) -> list[Any]:
        Song, Session, pks = self.Song, self.Session, []
        for row in rows:
            with Session() as session:
                obj = Song(**row)
                session.add(obj)
                session.commit()
                pks.append(obj.id)
        return pks

    def insert_bulk(self, rows: list[dict[str, str]]) -> list[Any]:
        from sqlalchemy import insert

        Song = self.Song
        with self.Session() as session, session.begin():
            stmt = insert(Song).returning(Song.id, sort_by_parameter_order=True)
            return list(session.scalars(stmt, rows))

    def filter_eq(self, artist: str) -> list[Any]:
        from sqlalchemy import select

        with self.Session() as session:
            return session.scalars(select(self.Song).where(self.Song.artist == artist)).all()

    def filter_ne(self, track: str) -> list[Any]:
        from sqlalchemy import select

        with self.Session() as session:
            return session.scalars(select(self.Song).where(self.Song.track_number != track)).all()

    def get(self, pk: Any) -> Any:
        with self.Session() as session:
            return session.get(self.Song, pk)

    def close(self) -> None:
        try:
            self.Base.metadata.drop_all(self.engine)
        finally:
            self.engine.dispose()
            if self.tmpdir:
                shutil.rmtree(self.tmpdir, ignore_errors=True)
