"""The incremental mode of refresh jobs: only what changed is written, and the result
is the dataset a full reset would give, for any change set."""

from __future__ import annotations

from _refresh_models import Stock, stock_rows
from consistency import assert_indexes_consistent, current_generation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from IndexedRedis.refresh import RefreshJob


def _dataset():
    return sorted((o.sku, o.name, o.qty, o.shelf) for o in Stock.objects.all())


def _apply(rows, changes):
    out = {r["sku"]: dict(r) for r in rows}
    for kind, index, value in changes:
        sku = f"s{index}"
        if kind == "remove":
            out.pop(sku, None)
        elif kind == "add" or sku not in out:
            out[sku] = {"sku": sku, "name": f"new {value}", "qty": value, "shelf": f"sh{value % 3}"}
        else:
            out[sku] = {**out[sku], "qty": value, "shelf": f"sh{value % 5}"}
    return list(out.values())


def test_incremental_writes_only_the_changes(redis_client):
    rows = stock_rows(300)
    source = {"rows": rows}
    job = RefreshJob(Stock, lambda: iter(source["rows"]), natural_key="sku", batch_size=50)
    first = job.run()
    assert (first.status, first.rows, first.changed) == ("updated", 300, 300)
    pks = {o.sku: o._id for o in Stock.objects.all()}
    gen = current_generation(redis_client, Stock)

    assert job.run().status == "unchanged"
    source["rows"] = _apply(rows, [("change", 3, 999), ("remove", 7, 0), ("add", 1000, 4)])
    result = job.run()
    assert (result.status, result.rows, result.changed) == ("updated", 300, 3)
    after = {o.sku: o for o in Stock.objects.all()}
    assert "s7" not in after and after["s3"].qty == 999 and after["s1000"].qty == 4
    assert all(after[sku]._id == pk for sku, pk in pks.items() if sku in after)  # objects kept their pks
    assert current_generation(redis_client, Stock) == gen  # written in place, no swap
    assert Stock.objects.filter(shelf="sh4").count() == len([r for r in source["rows"] if r["shelf"] == "sh4"])
    assert_indexes_consistent(redis_client, Stock)

    # a full job over the same source finds the same digest: nothing to swap
    assert RefreshJob(Stock, lambda: iter(source["rows"])).run().status == "unchanged"


changes = st.lists(st.tuples(st.sampled_from(["add", "change", "remove"]), st.integers(0, 60),
                             st.integers(0, 50)), max_size=25)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=changes, second=changes)
def test_incremental_equals_full_reset(redis_client, first, second):
    base = stock_rows(40)
    one, two = _apply(base, first), _apply(_apply(base, first), second)
    source = {"rows": one}
    incremental = RefreshJob(Stock, lambda: iter(source["rows"]), natural_key=("sku",), batch_size=7)
    Stock.reset([])
    incremental.run()
    source["rows"] = two
    incremental.run()
    got = _dataset()
    assert_indexes_consistent(redis_client, Stock)
    RefreshJob(Stock, lambda: iter(two), batch_size=7).run(force=True)
    assert got == _dataset()
    assert got == sorted((r["sku"], r["name"], r["qty"], r["shelf"]) for r in two)


def test_duplicate_natural_keys_are_refused():
    import pytest

    from IndexedRedis.refresh import RefreshError

    Stock.reset([])
    job = RefreshJob(Stock, lambda: iter(stock_rows(3) + stock_rows(1)), natural_key="sku", retries=0)
    with pytest.raises(RefreshError, match="natural key .* twice"):
        job.run()
