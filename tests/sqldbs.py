"""The SQL databases the refresh and web app tests run on: this machine's (and CI's)
PostgreSQL and MariaDB, and SQLite files.  Every test makes tables of its own, named
``ir_test_<random>``, and drops them afterwards: other suites may share the databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")

PG_URL = os.environ.get("IR_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("IR_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

__all__ = ["PG_URL", "MYSQL_URL", "sql_engine", "table_name", "unreachable", "engine_or_skip"]


def unreachable(name: str, url: str, exc: BaseException) -> None:
    """Skip (fail under CI=true) a test whose database does not answer."""
    message = f"{name} not reachable at {url}: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: the databases must be there)")
    pytest.skip(message)


def engine_or_skip(name: str, url: str, **options: object) -> object:
    """An Engine on ``url`` that answered a ``SELECT 1``, or the test is skipped (failed under CI)."""
    engine = sqlalchemy.create_engine(url, **options)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        unreachable(name, url, exc)
    return engine


def table_name(stem: str = "t") -> str:
    return f"ir_test_{stem}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def sql_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[object]:
    """An Engine on each database in turn (a test that needs one names it with -k)."""
    url = {"sqlite": f"sqlite:///{tmp_path}/test.db", "postgresql": PG_URL, "mariadb": MYSQL_URL}[request.param]
    engine = engine_or_skip(request.param, url)
    try:
        yield engine
    finally:
        engine.dispose()
