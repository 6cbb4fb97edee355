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

__all__ = ["PG_URL", "MYSQL_URL", "sql_engine", "table_name"]


def table_name(stem: str = "t") -> str:
    return f"ir_test_{stem}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def sql_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[object]:
    """An Engine on each database in turn (a test that needs one names it with -k)."""
    url = {"sqlite": f"sqlite:///{tmp_path}/test.db", "postgresql": PG_URL, "mariadb": MYSQL_URL}[request.param]
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except Exception as exc:  # a database this machine lacks
        engine.dispose()
        pytest.skip(f"{request.param} not reachable at {url}: {exc}")
    try:
        yield engine
    finally:
        engine.dispose()
