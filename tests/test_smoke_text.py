from IndexedRedis import IndexedRedisModel, IRField, irNull

class Song(IndexedRedisModel):
    FIELDS = ["artist", "title", IRField("n", valueType=int)]
    INDEXED_FIELDS = ["artist", "title", "n"]
    KEY_NAME = "smoke:song"

def test_smoke(redis_client):
    titles = ["Apple", "apple pie", "banana", "Straße", "STRASSE", "", "İstanbul", "cherry", "ab", "abc"]
    for i, t in enumerate(titles):
        Song(artist="a%d" % (i % 3), title=t, n=i).save()
    def q(**kw):
        return sorted(o.title for o in Song.objects.filter(**kw).all())
    assert q(title__startswith="ab") == ["ab", "abc"]
    assert q(title__istartswith="AP") == ["Apple", "apple pie"]
    assert q(title__iexact="strasse") == ["STRASSE", "Straße"]
    assert q(title__contains="an") == ["banana", "İstanbul"]
    assert q(title__icontains="SS") == ["STRASSE", "Straße"]
    assert q(title__gt="b") == sorted(t for t in titles if t > "b")
    assert q(title__lte="ab") == sorted(t for t in titles if t <= "ab")
    got = [o.title for o in Song.objects.orderBy("title")[2:5]]
    assert got == sorted(titles)[2:5]
    got = [o.title for o in Song.objects.orderBy("-title").all()]
    assert got == sorted(titles, reverse=True)
    assert Song.objects.orderBy("title").first().title == ""
    assert Song.objects.orderBy("title").last().title == max(titles)
    Song(artist="x", title="abd", n=99).save()
    assert q(title__startswith="ab") == ["ab", "abc", "abd"]
    for o in Song.objects.filter(title="abc").all():
        o.delete()
    assert q(title__startswith="ab") == ["ab", "abd"]
    assert redis_client.zrange(Song._meta.keys.generation(0).text_dict("title"), 0, -1) == sorted(
        t.encode() for t in set(titles + ["abd"]) - {"abc"})
    assert Song.objects.filter(title__icontains="s", artist="a0").count() == len([1 for i, t in enumerate(titles) if "s" in t.casefold() and i % 3 == 0])
