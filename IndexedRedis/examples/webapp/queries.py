"""The SQL of the pages, shared by the SQL back end (per request) and the refresh
jobs (which copy the results into Redis)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, bindparam, distinct, func, select

from .schema import Shop

__all__ = ["products_query", "report_query", "category_query", "product_query", "category_statement",
           "product_statement"]


def products_query(shop: Shop) -> Select[Any]:
    p = shop.products
    return select(p.c.id.label("product_id"), p.c.name, p.c.category, p.c.price_cents)


def category_query(shop: Shop, category: str) -> Select[Any]:
    return products_query(shop).where(shop.products.c.category == category).order_by(shop.products.c.id)


def product_query(shop: Shop, product_id: int) -> Select[Any]:
    return products_query(shop).where(shop.products.c.id == product_id)


def category_statement(shop: Shop) -> Select[Any]:
    """``category_query`` with the category as a bound parameter (``category``): the
    statement is built once and SQLAlchemy compiles it once (its compiled cache)."""
    return products_query(shop).where(shop.products.c.category == bindparam("category")).order_by(shop.products.c.id)


def product_statement(shop: Shop) -> Select[Any]:
    """``product_query`` with the id as a bound parameter (``product_id``)."""
    return products_query(shop).where(shop.products.c.id == bindparam("product_id"))


def report_query(shop: Shop) -> Select[Any]:
    """Sales by category and region: a join of the three tables, aggregated over
    every order (the expensive page)."""
    o, p, c = shop.orders, shop.products, shop.customers
    return (select(p.c.category, c.c.region, func.count().label("orders"), func.sum(o.c.quantity).label("units"),
                   func.sum(o.c.quantity * p.c.price_cents).label("revenue_cents"),
                   func.count(distinct(o.c.customer_id)).label("customers"))
            .select_from(o.join(p, p.c.id == o.c.product_id).join(c, c.c.id == o.c.customer_id))
            .group_by(p.c.category, c.c.region).order_by(p.c.category, c.c.region))
