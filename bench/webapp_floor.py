"""What a web framework costs per request, with no data access at all: a constant 3 KB
HTML page, served by one uvicorn worker (uvloop, httptools) in its own process, loaded
with Debian's wrk; the worker's CPU time per request comes from /proc.

Why: the web app's pages (``bench.webapp_run``) compare two data accesses under the
same framework, and whatever the framework costs per request is paid by both sides, so
it caps the ratio.  This tells that cost apart from uvicorn's.

    .venv/bin/python -m bench.webapp_floor                 # 3 runs of 4 s per variant
    .venv/bin/python -m bench.webapp_floor --seconds 2 --runs 1
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any

from .report import load_average, machine, now

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = "<!doctype html><html><body>" + "<p>constant</p>" * 200 + "</body></html>"
VARIANTS = {
    "fastapi-async": "FastAPI, an async def route (the HTMLResponse returned)",
    "fastapi-def": "FastAPI, a def route (run in FastAPI's thread pool)",
    "fastapi-lean": "FastAPI app, a Starlette Route (request -> Response) ahead of its routes",
    "starlette": "Starlette app, a Route",
    "starlette-router": "Starlette Router as the app (no Starlette() middleware stack), a Route",
    "raw-asgi": "a bare ASGI callable",
}


def make_app(variant: str) -> Any:
    """The app of one variant; every one answers ``GET /page/{name}`` with ``BODY``."""
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    async def lean(_request: Request) -> HTMLResponse:
        return HTMLResponse(BODY)

    if variant.startswith("fastapi"):
        from fastapi import FastAPI

        app = FastAPI()
        if variant == "fastapi-async":
            @app.get("/page/{name}", response_class=HTMLResponse)
            async def page(name: str) -> HTMLResponse:
                return HTMLResponse(BODY)
        elif variant == "fastapi-def":
            @app.get("/page/{name}", response_class=HTMLResponse)
            def page_sync(name: str) -> HTMLResponse:
                return HTMLResponse(BODY)
        else:
            app.router.routes.insert(0, Route("/page/{name}", lean))
        return app
    if variant == "starlette":
        from starlette.applications import Starlette

        return Starlette(routes=[Route("/page/{name}", lean)])
    if variant == "starlette-router":
        from starlette.routing import Router

        return Router(routes=[Route("/page/{name}", lean)])
    body = BODY.encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]

    async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return raw


def _cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def measure(variant: str, port: int, seconds: int, concurrency: int) -> dict[str, float]:
    child = subprocess.Popen([sys.executable, "-m", "bench.webapp_floor", "serve", "--variant", variant,
                              "--port", str(port)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}/page/x"
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["curl", "-sf", "-o", "/dev/null", url]).returncode != 0:
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"{variant}: the server did not answer")
            time.sleep(0.1)
        subprocess.run(["wrk", "-t1", f"-c{concurrency}", "-d1s", url], check=True, capture_output=True)
        before = _cpu_ticks(child.pid)
        out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", url], check=True,
                             capture_output=True, text=True).stdout
        ticks = _cpu_ticks(child.pid) - before
    finally:
        child.terminate()
        child.wait(30)
    requests = int(re.search(r"(\d+) requests in", out)[1])
    return {"rps": float(re.search(r"Requests/sec:\s+(\S+)", out)[1]),
            "cpu_us": ticks / os.sysconf("SC_CLK_TCK") / requests * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="run", choices=["run", "serve"])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "serve":
        import uvicorn

        uvicorn.run(make_app(args.variant), host="127.0.0.1", port=args.port, log_level="warning",
                    access_log=False)
        return 0

    from IndexedRedis.embedded import free_port

    load_start = load_average()
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for _ in range(args.runs):  # interleaved, so that a busy minute hits every variant
        for variant in VARIANTS:
            runs[variant].append(measure(variant, free_port(), args.seconds, args.concurrency))
    info = machine()
    print(f"# Framework floor ({now()}; {info.get('cpu', '?')}, {info['cores']} cores; wrk 1 thread, "
          f"{args.concurrency} connections, {args.seconds} s x {args.runs} runs; "
          f"load {load_start} -> {load_average()})\n")
    print("| variant | req/s (median, range) | worker CPU µs per request (median, range) |\n|---|---|---|")
    for variant, figures in runs.items():
        rps, cpu = [f["rps"] for f in figures], [f["cpu_us"] for f in figures]
        print(f"| {VARIANTS[variant]} | {statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | "
              f"{statistics.median(cpu):.0f} ({min(cpu):.0f}-{max(cpu):.0f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
