"""Where a refresh job's rows come from: an SQLAlchemy 2 ``select()`` (Core or ORM),
streamed through a server-side cursor, or any callable that yields dicts or model
objects.  Each source turns rows into field dicts for the job's model.

This is the job's input, outside IndexedRedis' I/O-free core: it talks to the SQL
database itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

__all__ = ["Source", "SQLSource", "CallableSource", "make_source", "make_fingerprint", "Mapping_"]

#: How a row becomes field values: None (same-named columns), {field: column}, or a
#: callable taking the row as a dict (column -> value) and returning {field: value}.
Mapping_ = None | Mapping[str, str] | Callable[[dict[str, Any]], Mapping[str, Any]]


class Source:
    """Yields, per run, the field dicts (or model objects) of the new dataset."""

    description = "source"

    def rows(self) -> Iterator[Any]:
        raise NotImplementedError


def _mapper(job_name: str, field_names: tuple[str, ...], mapping: Mapping_) -> Callable[[dict[str, Any]], Any]:
    if callable(mapping):
        return mapping
    if mapping is None:
        wanted = {name: name for name in field_names}
    else:
        unknown = sorted(set(mapping) - set(field_names))
        if unknown:
            raise ValueError(f"refresh job {job_name}: the mapping names {unknown}, which are not fields of the "
                             f"model (its fields: {list(field_names)})")
        wanted = dict(mapping)
    checked = False

    def by_column(row: dict[str, Any]) -> dict[str, Any]:
        nonlocal checked
        if not checked:
            missing = sorted(f"{field} (column {column!r})" for field, column in wanted.items() if column not in row)
            if missing and mapping is not None or len(missing) == len(wanted):
                raise ValueError(f"refresh job {job_name}: the query's rows have columns {sorted(row)}, and lack "
                                 f"{', '.join(missing)}; name them in the select (label()) or give a mapping")
            checked = True
        return {field: row[column] for field, column in wanted.items() if column in row}

    return by_column


class SQLSource(Source):
    """An SQLAlchemy ``select()`` run on ``engine`` (an Engine, a URL, or a callable
    returning an Engine), its rows streamed ``yield_per`` at a time through a
    server-side cursor (``stream_results``): client memory stays flat however many
    rows there are."""

    def __init__(self, statement: Any, engine: Any, job_name: str, field_names: tuple[str, ...],
                 mapping: Mapping_ = None, yield_per: int = 1000) -> None:
        self.statement = statement
        self._engine = engine
        self.map_row = _mapper(job_name, field_names, mapping)
        self.yield_per = yield_per
        self.field_names = field_names

    @property
    def engine(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import Engine

        if isinstance(self._engine, str):
            self._engine = create_engine(self._engine)
        elif not isinstance(self._engine, Engine) and callable(self._engine):
            self._engine = self._engine()
        return self._engine

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"SQL on {self.engine.url.render_as_string(hide_password=True)}"

    def rows(self) -> Iterator[dict[str, Any]]:
        from sqlalchemy import inspect
        from sqlalchemy.orm import Session

        with Session(self.engine) as session:
            result = session.execute(self.statement.execution_options(yield_per=self.yield_per,
                                                                      stream_results=True))
            for row in result:
                if len(row) == 1 and inspect(row[0], raiseerr=False) is not None:  # an ORM entity
                    entity = row[0]
                    values = {name: getattr(entity, name) for name in self.field_names if hasattr(entity, name)}
                    yield self.map_row(values)
                    session.expunge(entity)
                else:
                    yield self.map_row(dict(row._mapping))


class CallableSource(Source):
    """A callable returning an iterable of dicts or model objects, called per run."""

    def __init__(self, function: Callable[[], Iterable[Any]]) -> None:
        self.function = function
        self.description = f"callable {getattr(function, '__qualname__', repr(function))}"

    def rows(self) -> Iterator[Any]:
        yield from self.function()


def make_source(source: Any, engine: Any, job_name: str, field_names: tuple[str, ...],
                mapping: Mapping_, yield_per: int) -> Source:
    if isinstance(source, Source):
        return source
    try:
        from sqlalchemy.sql import Executable
    except ImportError:  # pragma: no cover - SQLAlchemy is optional
        Executable = ()  # type: ignore[assignment,misc]
    if isinstance(source, Executable):
        if engine is None:
            raise TypeError(f"refresh job {job_name}: an SQL statement needs engine= (an Engine or a database URL)")
        return SQLSource(source, engine, job_name, field_names, mapping, yield_per)
    if callable(source):
        if mapping is not None:
            raise TypeError(f"refresh job {job_name}: mapping= applies to SQL sources; a callable yields "
                            f"field dicts or model objects itself")
        return CallableSource(source)
    raise TypeError(f"refresh job {job_name}: the source must be an SQLAlchemy select() or a callable yielding "
                    f"dicts or model objects, got {type(source).__name__}")


def make_fingerprint(fingerprint: Any, source: Source, job_name: str) -> Callable[[], Any] | None:
    """A job's ``fingerprint=``: None, a callable returning a value whose ``str`` changes
    whenever the source's rows do, or an SQLAlchemy statement (for example
    ``select(func.max(t.c.updated_at), func.count())``) run on the SQL source's engine,
    whose rows are the fingerprint."""
    if fingerprint is None:
        return None
    try:
        from sqlalchemy.sql import Executable
    except ImportError:  # pragma: no cover - SQLAlchemy is optional
        Executable = ()  # type: ignore[assignment,misc]
    if isinstance(fingerprint, Executable):
        if not isinstance(source, SQLSource):
            raise TypeError(f"refresh job {job_name}: a fingerprint statement needs an SQL source (its engine "
                            f"runs it); give a callable instead")
        statement = fingerprint

        def run_statement() -> Any:
            with source.engine.connect() as conn:
                return [tuple(row) for row in conn.execute(statement)]

        return run_statement
    if callable(fingerprint):
        return fingerprint  # type: ignore[no-any-return]
    raise TypeError(f"refresh job {job_name}: fingerprint= must be a callable or an SQLAlchemy select(), "
                    f"got {type(fingerprint).__name__}")
