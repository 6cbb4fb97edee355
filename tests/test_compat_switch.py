"""The 6.x compatibility switch (``INDEXEDREDIS_COMPAT=6`` / ``setCompatibility(6)``)
and the strict default it relaxes: unknown constructor keywords, and when a broken
model raises."""

from __future__ import annotations

import warnings

import pytest

import IndexedRedis
from IndexedRedis import (
    IndexedRedisModel,
    InvalidModelException,
    IRField,
    IRPickleField,
    UnknownFieldError,
    getCompatibility,
    setCompatibility,
)
from IndexedRedis.fields import pickled


class Song(IndexedRedisModel):
    FIELDS = ["artist", IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist"]
    KEY_NAME = "test_compat_switch:Song"


@pytest.fixture
def compat() -> None:
    setCompatibility(6)


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pickled, "_pickle_allowed", None)
    monkeypatch.delenv(pickled.PICKLE_ENV_VAR, raising=False)


def define_broken(kind: str) -> type:
    """A model class with one mistake of the given kind."""
    if kind == "no KEY_NAME":
        class NoKey(IndexedRedisModel):
            FIELDS = ["a"]
        return NoKey
    if kind == "no FIELDS":
        class NoFields(IndexedRedisModel):
            KEY_NAME = "test_compat_switch:NoFields"
        return NoFields
    if kind == "unknown indexed field":
        class BadIndex(IndexedRedisModel):
            FIELDS = ["a", "b"]
            INDEXED_FIELDS = ["c"]
            KEY_NAME = "test_compat_switch:BadIndex"
        return BadIndex
    class Legacy(IndexedRedisModel):
        FIELDS = ["a", "b"]
        BASE64_FIELDS = ["b"]
        KEY_NAME = "test_compat_switch:Legacy"
    return Legacy


BROKEN = {"no KEY_NAME": "KEY_NAME", "no FIELDS": "FIELDS", "unknown indexed field": "INDEXED_FIELDS",
          "legacy BASE64_FIELDS": "BASE64_FIELDS"}


# ---- the strict default -------------------------------------------------------------


def test_strict_by_default() -> None:
    assert getCompatibility() is None


def test_strict_unknown_keyword_raises() -> None:
    with pytest.raises(UnknownFieldError, match="'artsit'.*Did you mean 'artist'"):
        Song(artsit="x")


@pytest.mark.parametrize("kind", BROKEN)
def test_strict_broken_model_raises_at_class_statement(kind: str) -> None:
    with pytest.raises(InvalidModelException, match=BROKEN[kind]):
        define_broken(kind)


# ---- with the switch --------------------------------------------------------------


def test_unknown_keywords_ignored_with_a_warning_naming_them(compat: None) -> None:
    with pytest.warns(DeprecationWarning, match=r"Song\(\) ignores 'value', 'colour'.*UnknownFieldError") as caught:
        song = Song(artist="A", value="cheese", colour="red", track=3)
    assert caught[0].filename == __file__  # points at the caller
    assert (song.artist, song.track) == ("A", 3)
    assert "value" not in vars(song) and not hasattr(song, "colour")
    song.save()
    assert Song.objects.get(song._id).asDict() == {"artist": "A", "track": 3}


def test_known_keywords_give_no_warning(compat: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Song(artist="A", track=1)


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_model_raises_from_validateModel_and_first_use(compat: None, kind: str) -> None:
    model: type[IndexedRedisModel] = define_broken(kind)  # no error yet, as in 6.x
    uses = {
        "validateModel": model.validateModel,
        "construct": model,
        "objects": lambda: model.objects,
        "saver": lambda: model.saver,
        "deleter": lambda: model.deleter,
        "reset": lambda: model.reset([]),
    }
    for _ in range(2):  # every use raises, not only the first
        for call in uses.values():
            with pytest.raises(InvalidModelException, match=BROKEN[kind]):
                call()


def test_valid_model_validates(compat: None) -> None:
    assert Song.validateModel() is True


def test_environment_variable_turns_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXEDREDIS_COMPAT", "6")
    assert getCompatibility() == 6
    broken = define_broken("no KEY_NAME")
    with pytest.raises(InvalidModelException, match="KEY_NAME"):
        broken.validateModel()
    with pytest.warns(DeprecationWarning, match="'stray'"):
        Song(stray=1)


def test_call_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXEDREDIS_COMPAT", "6")
    setCompatibility(None)
    assert getCompatibility() is None
    with pytest.raises(UnknownFieldError):
        Song(stray=1)


@pytest.mark.parametrize("raw", ["5", "7", "yes", "6.0.3"])
def test_unknown_environment_value_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("INDEXEDREDIS_COMPAT", raw)
    with pytest.raises(ValueError, match="INDEXEDREDIS_COMPAT"):
        getCompatibility()


@pytest.mark.parametrize("version", [5, 7, True, "6"])
def test_unknown_version_is_refused(version: object) -> None:
    with pytest.raises(ValueError, match="6 or None"):
        setCompatibility(version)  # type: ignore[arg-type]


def test_the_switch_never_enables_pickle(compat: None, no_pickle: None) -> None:
    class Pickled(IndexedRedisModel):
        FIELDS = [IRPickleField("blob")]
        KEY_NAME = "test_compat_switch:Pickled"

    with pytest.raises(InvalidModelException, match="INDEXEDREDIS_ALLOW_PICKLE"):
        Pickled.validateModel()
    with pytest.raises(InvalidModelException, match="pickle"):
        Pickled(blob=[1])


def test_public_names() -> None:
    assert IndexedRedis.setCompatibility is setCompatibility
    assert {"setCompatibility", "getCompatibility"} <= set(IndexedRedis.__all__)
