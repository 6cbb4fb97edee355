"""The example web app over real HTTP: a uvicorn server on a free port, the same pages
from SQL (SQLite, PostgreSQL, MariaDB) and from IndexedRedis fed by the refresh jobs;
every page must show the same content either way."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
from sqldbs import sql_engine, table_name  # noqa: F401  (fixture)

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from IndexedRedis.embedded import free_port  # noqa: E402
from IndexedRedis.examples.webapp.app import create_app, make_async_engine  # noqa: E402
from IndexedRedis.examples.webapp.jobs import make_jobs  # noqa: E402
from IndexedRedis.examples.webapp.schema import CATEGORIES, Shop, generate  # noqa: E402

# the async drivers of each database's sync one (SQLite: none, the app's sync path only)
ASYNC_DRIVERS = {"postgresql+psycopg": "postgresql+psycopg", "mysql+pymysql": "mysql+asyncmy"}


@pytest.fixture(params=["sync", "async"])
def served(request: pytest.FixtureRequest, sql_engine) -> Iterator[tuple[str, object, Shop]]:  # noqa: F811
    """The app on ``sql_engine`` (sync: queries in the thread pool) or on an AsyncEngine
    on the same database."""
    app_engine = sql_engine
    if request.param == "async":
        driver = sql_engine.url.drivername
        if driver not in ASYNC_DRIVERS:
            pytest.skip(f"no async driver for {driver}")
        pytest.importorskip("greenlet")
        if driver.startswith("mysql"):
            pytest.importorskip("asyncmy")
        app_engine = make_async_engine(str(sql_engine.url.set(drivername=ASYNC_DRIVERS[driver])))
    shop = Shop.define(prefix=table_name("shop") + "_")
    generate(sql_engine, shop, orders=3000, products=120, customers=300)
    for job in make_jobs(sql_engine, shop):
        assert job.run().status == "swapped"
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(app_engine, shop), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", sql_engine, shop
    finally:
        server.should_exit = True
        thread.join(10)
        shop.metadata.drop_all(sql_engine)


def _content(html: str) -> str:
    assert "served from" in html
    return html.split("<p class='src'>")[0]


def test_pages_are_the_same_from_sql_and_from_redis(served):
    base, engine, shop = served
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.get("/").status_code == 200
        for path in [f"/category/{c}" for c in CATEGORIES[:4]] + ["/category/Nothing", "/product/7",
                                                                  "/product/99999", "/report"]:
            sql, red = client.get("/sql" + path), client.get("/redis" + path)
            assert sql.status_code == red.status_code == 200, path
            assert "served from SQL" in sql.text and "served from IndexedRedis" in red.text
            assert _content(sql.text) == _content(red.text), path
        report = client.get("/redis/report").text
        assert report.count("<tr>") == 1 + 12 * 6  # header + every (category, region)
        total = re.search(r"over ([\d,]+) orders", report)
        assert total is not None and total[1] == "3,000"
        for backend in ("sql", "redis"):  # the id is a path converter's: not a number, no such page
            assert client.get(f"/{backend}/product/seven").status_code == 404
            assert client.get(f"/{backend}/nothing").status_code == 404
        books = client.get("/redis/category/Books").text
        assert "10 products" in books  # 120 products over 12 categories

        # the SQL changes: the Redis pages follow after the next refresh, not before
        with engine.begin() as conn:
            conn.execute(shop.products.update().where(shop.products.c.id == 7).values(name="Renamed seven"))
        assert "Renamed seven" in client.get("/sql/product/7").text
        assert "Renamed seven" not in client.get("/redis/product/7").text
        results = [job.run().status for job in make_jobs(engine, shop)]
        assert results == ["swapped", "unchanged"]
        assert _content(client.get("/sql/product/7").text) == _content(client.get("/redis/product/7").text)
