"""Q trees and the read helpers on a Redis Cluster: every key a tree names shares
the model's hash tag, so each stays one script call on the slot's master."""

from __future__ import annotations

from clusters import LocalCluster
from test_cluster import CSong, cluster  # noqa: F401 - the fixture

from IndexedRedis import Count, Max, Q, Sum


def test_q_trees_and_read_helpers_on_a_cluster(cluster: LocalCluster) -> None:  # noqa: F811
    CSong.reset([CSong(artist=f"a{i % 3}", title=f"t{i}", track=i % 4) for i in range(40)])
    rows = {i + 1: (f"a{i % 3}", i % 4) for i in range(40)}
    qs = CSong.objects.filter(Q(artist="a1") | Q(track__gte=3)).exclude(track=0)
    want = [pk for pk, (artist, track) in rows.items() if (artist == "a1" or track >= 3) and track != 0]
    assert qs.getPrimaryKeys() == want and qs.count() == len(want)
    assert [s._id for s in qs.orderBy("-track")[:3]] == sorted(want, key=lambda pk: (-rows[pk][1], -pk))[:3]
    assert qs.aggregate(n=Count(), total=Sum("track"), top=Max("track")) == \
        {"n": len(want), "total": sum(rows[pk][1] for pk in want), "top": 3}
    assert qs.countBy("artist") == {a: sum(1 for pk in want if rows[pk][0] == a) for a in ("a0", "a1", "a2")
                                    if any(rows[pk][0] == a for pk in want)}
    assert qs.values_list("title", flat=True) == [f"t{pk - 1}" for pk in want]
    obj, created = CSong.objects.get_or_create(title="t5")
    assert (obj._id, created) == (6, False)
    obj, created = CSong.objects.get_or_create(title="new", defaults={"artist": "z", "track": 9})
    assert created and CSong.objects.filter(Q(artist="z") | Q(track=9)).getPrimaryKeys() == [obj._id]
    assert qs.delete() == len(want) + 1  # the new one has track 9
