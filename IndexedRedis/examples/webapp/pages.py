"""The pages' HTML, from plain values: both back ends render through these, so the
same data gives the same bytes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

__all__ = ["page", "category_page", "product_page", "report_page", "index_page"]

_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
          "td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}td.n{text-align:right}"
          "th{background:#f3f3f3}.src{color:#666;font-size:.9em}")


def page(title: str, body: str, source: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>\n{body}\n"
            f"<p class='src'>served from {escape(source)}</p></body></html>")


def _money(cents: int) -> str:
    return f"{cents / 100:,.2f}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class='n'>{escape(str(v))}</td>" if i in numeric else
                                    f"<td>{escape(str(v))}</td>" for i, v in enumerate(row)) + "</tr>\n"
                   for row in rows)
    return f"<table><tr>{head}</tr>\n{body}</table>"


def category_page(category: str, products: Sequence[dict[str, Any]]) -> str:
    rows = [(p["product_id"], p["name"], _money(p["price_cents"])) for p in products]
    return f"<p>{len(rows)} products</p>" + _table(("id", "name", "price"), rows, {0, 2})


def product_page(product: dict[str, Any] | None) -> str:
    if product is None:
        return "<p>No such product.</p>"
    return _table(("id", "name", "category", "price"),
                  [(product["product_id"], product["name"], product["category"], _money(product["price_cents"]))],
                  {0, 3})


def report_page(rows: Sequence[dict[str, Any]]) -> str:
    total = sum(r["revenue_cents"] for r in rows)
    body = _table(("category", "region", "orders", "units", "revenue", "customers"),
                  [(r["category"], r["region"], f"{r['orders']:,}", f"{r['units']:,}", _money(r["revenue_cents"]),
                    f"{r['customers']:,}") for r in rows], {2, 3, 4, 5})
    return f"<p>Total revenue {_money(total)} over {sum(r['orders'] for r in rows):,} orders.</p>" + body


def index_page(categories: Sequence[str]) -> str:
    links = []
    for backend in ("sql", "redis"):
        items = "".join(f"<li><a href='/{backend}/category/{escape(c)}'>{escape(c)}</a></li>" for c in categories)
        links.append(f"<h2>{backend}</h2><p><a href='/{backend}/report'>Sales report</a> · "
                     f"<a href='/{backend}/product/1'>Product 1</a></p><ul>{items}</ul>")
    return "".join(links)
