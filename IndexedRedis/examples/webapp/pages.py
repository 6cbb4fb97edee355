"""The pages' HTML, from rows with attributes (an SQLAlchemy ``Row`` and an IndexedRedis
object alike): both back ends render through these, so the same data gives the same
bytes.

Plain string building, one f-string per table row, with the constant parts made once:
both back ends pay it, and it is a small part of a request (see the README's web app
benchmark for the profile).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

__all__ = ["page", "category_page", "product_page", "report_page", "index_page"]

_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
          "td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}"
          "th{background:#f3f3f3}.src{color:#666;font-size:.9em}")
_HEAD = f"<!doctype html><html><head><meta charset='utf-8'><title>{{title}}</title><style>{_STYLE}</style></head>"
_HEAD_START, _HEAD_END = _HEAD.split("{title}")


def page(title: str, body: str, source: str) -> str:
    title = escape(title)
    return (f"{_HEAD_START}{title}{_HEAD_END}<body><h1>{title}</h1>\n{body}\n"
            f"<p class='src'>served from {escape(source)}</p></body></html>")


def _money(cents: Any) -> str:
    return f"{cents / 100:,.2f}"


def _header(*names: str) -> str:
    return "<table><tr>" + "".join(f"<th>{escape(name)}</th>" for name in names) + "</tr>\n"


_PRODUCTS_HEAD = _header("id", "name", "price")
_PRODUCT_HEAD = _header("id", "name", "category", "price")
_REPORT_HEAD = _header("category", "region", "orders", "units", "revenue", "customers")


def category_page(category: str, products: Sequence[Any]) -> str:
    """``products``: rows with ``product_id``, ``name`` and ``price_cents``."""
    rows = "".join([f"<tr><td class='n'>{p.product_id}</td><td>{escape(p.name)}</td>"
                    f"<td class='n'>{p.price_cents / 100:,.2f}</td></tr>\n" for p in products])
    return f"<p>{len(products)} products</p>{_PRODUCTS_HEAD}{rows}</table>"


def product_page(product: Any | None) -> str:
    if product is None:
        return "<p>No such product.</p>"
    return (f"{_PRODUCT_HEAD}<tr><td class='n'>{product.product_id}</td><td>{escape(product.name)}</td>"
            f"<td>{escape(product.category)}</td><td class='n'>{_money(product.price_cents)}</td></tr>\n</table>")


def report_page(rows: Sequence[Any]) -> str:
    """``rows``: with ``category``, ``region``, ``orders``, ``units``, ``revenue_cents``
    and ``customers`` (ints: SQL sums may come as Decimal, convert them first)."""
    total = sum(r.revenue_cents for r in rows)
    body = "".join([f"<tr><td>{escape(r.category)}</td><td>{escape(r.region)}</td><td class='n'>{r.orders:,}</td>"
                    f"<td class='n'>{r.units:,}</td><td class='n'>{_money(r.revenue_cents)}</td>"
                    f"<td class='n'>{r.customers:,}</td></tr>\n" for r in rows])
    return (f"<p>Total revenue {_money(total)} over {sum(r.orders for r in rows):,} orders.</p>"
            f"{_REPORT_HEAD}{body}</table>")


def index_page(categories: Iterable[str]) -> str:
    categories = list(categories)
    links = []
    for backend in ("sql", "redis"):
        items = "".join(f"<li><a href='/{backend}/category/{escape(c)}'>{escape(c)}</a></li>" for c in categories)
        links.append(f"<h2>{backend}</h2><p><a href='/{backend}/report'>Sales report</a> · "
                     f"<a href='/{backend}/product/1'>Product 1</a></p><ul>{items}</ul>")
    return "".join(links)
