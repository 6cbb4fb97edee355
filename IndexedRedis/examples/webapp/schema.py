"""The shop's SQL schema and its generated data: products, customers, and orders
(the big table: the expensive page aggregates all of it)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert

__all__ = ["Shop", "CATEGORIES", "REGIONS", "generate"]

CATEGORIES = ("Books", "Music", "Garden", "Toys", "Kitchen", "Tools", "Games", "Sports", "Office", "Pets",
              "Health", "Travel")
REGIONS = ("North", "South", "East", "West", "Central", "Islands")


@dataclass
class Shop:
    """The tables, named ``<prefix>products`` etc. (tests use a prefix of their own)."""

    metadata: MetaData
    products: Table
    customers: Table
    orders: Table

    @classmethod
    def define(cls, prefix: str = "ir_demo_") -> Shop:
        metadata = MetaData()
        products = Table(f"{prefix}products", metadata, Column("id", Integer, primary_key=True),
                         Column("name", String(80), nullable=False),
                         Column("category", String(40), nullable=False, index=True),
                         Column("price_cents", Integer, nullable=False))
        customers = Table(f"{prefix}customers", metadata, Column("id", Integer, primary_key=True),
                          Column("name", String(80), nullable=False), Column("region", String(40), nullable=False))
        orders = Table(f"{prefix}orders", metadata, Column("id", Integer, primary_key=True),
                       Column("product_id", Integer, nullable=False, index=True),
                       Column("customer_id", Integer, nullable=False, index=True),
                       Column("quantity", Integer, nullable=False), Column("day", Integer, nullable=False))
        return cls(metadata, products, customers, orders)


def _chunks(rows: Iterator[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def generate(engine: Engine, shop: Shop, orders: int, products: int = 2000, customers: int = 20000,
             seed: int = 11, progress: Callable[[int, int], None] | None = None) -> None:
    """(Re)create the tables and fill them; the same ``seed`` gives the same data."""
    rng = random.Random(seed)
    shop.metadata.drop_all(engine)
    shop.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(shop.products), [
            {"id": i, "name": f"{CATEGORIES[i % len(CATEGORIES)]} item {i}",
             "category": CATEGORIES[i % len(CATEGORIES)], "price_cents": rng.randint(199, 19999)}
            for i in range(1, products + 1)])
        conn.execute(insert(shop.customers), [
            {"id": i, "name": f"Customer {i}", "region": REGIONS[rng.randrange(len(REGIONS))]}
            for i in range(1, customers + 1)])
    rows = ({"id": i, "product_id": rng.randint(1, products), "customer_id": rng.randint(1, customers),
             "quantity": rng.randint(1, 5), "day": rng.randint(0, 364)} for i in range(1, orders + 1))
    done = 0
    for chunk in _chunks(rows, 20000):
        with engine.begin() as conn:
            conn.execute(insert(shop.orders), chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, orders)
