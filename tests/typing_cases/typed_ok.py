"""A typed model as user code writes it: mypy must find no error here (tests/test_typing.py).

Checked, never run.  ``assert_type`` makes mypy compare what it infers with what is written.
"""

from __future__ import annotations

import datetime
from typing import Any

from typing_extensions import assert_type

from IndexedRedis import Field, IndexedRedisModel, IRCompressedField, IRField, IRQueryableList, QuerySet


class Song(IndexedRedisModel):
    KEY_NAME = "TypingSongs"
    artist: str = Field(index=True)
    track: int = Field(index=True, default=0)
    price: float | None = Field()
    tags: bytes = Field(default=b"")
    cover: bytes = Field(IRCompressedField(compressMode="bz2"), default=b"")
    when: datetime.datetime = Field(index=True, default=datetime.datetime(2000, 1, 1))


class Album(IndexedRedisModel):
    KEY_NAME = "TypingAlbums"
    title: str = Field()
    songs: list[Song] = Field(default=[])
    best: Song | None = Field(default=None)


class LiveSong(Song):
    KEY_NAME = "TypingLiveSongs"
    venue: str = Field(default="")


class Legacy(IndexedRedisModel):
    """The FIELDS style with annotations beside: they tell type checkers the attributes
    and the constructor's keywords (at run time FIELDS alone decides)."""

    KEY_NAME = "TypingLegacy"
    FIELDS = ["name", IRField("n", valueType=int)]
    name: str
    n: int


class Plain(IndexedRedisModel):
    """The FIELDS style alone: its constructor takes keywords unchecked, as before."""

    KEY_NAME = "TypingPlain"
    FIELDS = ["name"]


song = Song(artist="Pink Floyd", price=None)
song2 = Song(artist="Pink Floyd", track=3, price=1.5, tags=b"x", when=datetime.datetime(2001, 2, 3))
assert_type(song.artist, str)
assert_type(song.track, int)
assert_type(song.price, float | None)
assert_type(song.when, datetime.datetime)
song.track = 4
song.price = None
song._connection = None  # a per-instance client (README: "_connection")
pk: int = song.save()
as_json: dict[str, Any] = song.asDict(forJSON=True)

assert_type(Song.objects, QuerySet[Song])
assert_type(Song.objects.filter(artist="Pink Floyd"), QuerySet[Song])
assert_type(Song.objects.all(), IRQueryableList[Song])
assert_type(Song.objects.filter(track__gt=2).orderBy("-track").first(), Song | None)
assert_type(Song.objects.get(pk), Song | None)
assert_type(Song.objects.getMultiple([pk]), IRQueryableList[Song | None])
assert_type(Song.objects[0], Song)
assert_type(Song.objects[0:10], IRQueryableList[Song])
for each in Song.objects.iterate():
    assert_type(each, Song)
found = Song.objects.first()
if found is not None:
    print(found.artist.upper(), found.track + 1)
first_of_all: Song = Song.objects.all()[0]

album = Album(title="Meddle", songs=[song], best=song)
assert_type(album.best, Song | None)
assert_type(album.songs, list[Song])
if album.best is not None:
    assert_type(album.best.artist, str)

live = LiveSong(artist="Queen", price=2.0, venue="Wembley")
assert_type(live.venue, str)
assert_type(LiveSong.objects.first(), LiveSong | None)
assert_type(LiveSong.objects.all(), IRQueryableList[LiveSong])
Copy = Song.copyModel()
assert_type(Copy.objects.first(), Song | None)

legacy = Legacy(name="x", n=1)
plain = Plain(name="x")
assert_type(legacy.n, int)
assert_type(Legacy.objects.first(), Legacy | None)


async def async_reads() -> None:
    assert_type(await Song.objects.aall(), IRQueryableList[Song])
    assert_type(await Song.objects.afirst(), Song | None)
    assert_type(await Song.objects.aget(1), Song | None)
    async for each in Song.objects.aiterate():
        assert_type(each, Song)
    await song.asave()


class SongQuerySet(QuerySet[Song]):
    """A query set subclass keeps its type through filter / orderBy (they return Self)."""

    def loud(self) -> SongQuerySet:
        return self.filter(track__gte=10)


assert_type(SongQuerySet(Song).filter(artist="x").orderBy("track"), SongQuerySet)
assert_type(SongQuerySet(Song).loud().first(), Song | None)
