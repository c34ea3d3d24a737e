"""Does a new request reach a busy `ppd sim` later under load, over HTTP? `ppd sim`'s app served
in this process (uvloop, as `ppd sim` runs; its step ends recorded as in sim_intake_phase.py); a
client process streams N background answers (4,000 tokens) and sends probes (250 words, one output
token) at random phases, straight to the sim or through `ppd proxy --mode replication`, on pooled or
fresh connections. Per run: the time from the client's send to the sim's handler (the probe's send
time rides in its Authorization header, the one header the proxy forwards; both sides read
CLOCK_MONOTONIC), and the share of probes that joined a later step than the first decided after
their ready_s.

    python benchmarks/sim_http_intake.py [--background 0,8,64] [--probes 300] [--proxy] [--fresh]

Ends with `sim_http_intake path=direct|proxy connections=pooled|fresh handler_delay_p50_ms=... per
background size` lines. On one engine, not the grid's 2-4, and the client is not `ppd bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

from _sims import SRC, start, stop

sys.path.insert(0, str(SRC))

import ppd.sim.server as sim_server
from ppd.sim.config import sim_config
from ppd.sim.core import StepEvents
from ppd.sim.engine import Engine
from ppd.sim.request import Request
from ppd.sim.timing import DEFAULT_PROFILE, load_profile

CLIENT = r"""
import asyncio, random, sys, time, aiohttp, uvloop
port, num_background, num_probes, fresh = (int(a) for a in sys.argv[1:5])
rng = random.Random(2)
async def stream(session, max_tokens, kind):
    words = " ".join(f"w{rng.randrange(100000)}" for _ in range(250))
    body = {"model": "llama", "prompt": words, "max_tokens": max_tokens, "stream": True}
    headers = {"Authorization": f"{kind} {time.monotonic()!r}", "X-Request-Id": f"{kind}-{rng.random()}"}
    async with session.post(f"http://127.0.0.1:{port}/v1/completions", json=body, headers=headers) as answer:
        async for _ in answer.content.iter_any():
            pass
async def main():
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as pooled:
        one_use = aiohttp.TCPConnector(force_close=True)
        probes_session = aiohttp.ClientSession(connector=one_use) if fresh else pooled
        background = [asyncio.ensure_future(stream(pooled, 4000, "bg")) for _ in range(num_background)]
        await asyncio.sleep(1.0)
        probes = []
        for _ in range(num_probes):
            await asyncio.sleep(rng.uniform(0.01, 0.03))
            probes.append(asyncio.ensure_future(stream(probes_session, 1, "probe")))
        await asyncio.gather(*probes)
        if fresh:
            await probes_session.close()
        for task in background:
            task.cancel()
uvloop.run(main())
"""


class Trace:
    """What the patched sim records: step ends, and per probe its send, handler, ready and step."""

    def __init__(self) -> None:
        self.ends_s: list[float] = []
        self.handler_delay_ms: list[float] = []
        self.probe_ids: set[str] = set()
        self.ready_s: dict[str, float] = {}
        self.steps_ended: dict[str, int] = {}

    def install(self) -> None:
        run_step, deliver, submit = Engine._run_step, Engine._deliver, Engine.submit
        generate = sim_server._generate
        trace = self

        async def traced_run_step(engine: Engine, step: Any, clock_s: float) -> float:
            end_s = await run_step(engine, step, clock_s)
            trace.ends_s.append(end_s)
            return end_s

        def traced_deliver(engine: Engine, events: StepEvents) -> None:
            for request in events.with_output:
                if request.request_id in trace.probe_ids:
                    trace.steps_ended.setdefault(request.request_id, len(trace.ends_s))
            deliver(engine, events)

        def traced_submit(engine: Engine, request: Request) -> None:
            if request.request_id in trace.probe_ids:
                trace.ready_s[request.request_id] = request.ready_s
            submit(engine, request)

        async def traced_generate(http_request: web.Request, kind: str) -> web.StreamResponse:
            auth = http_request.headers.get("Authorization", "")
            if auth.startswith("probe "):
                trace.handler_delay_ms.append((time.monotonic() - float(auth.split()[1])) * 1e3)
                trace.probe_ids.add("cmpl-" + http_request.headers["X-Request-Id"])
            return await generate(http_request, kind)

        Engine._run_step = traced_run_step  # type: ignore[method-assign]
        Engine._deliver = traced_deliver  # type: ignore[method-assign]
        Engine.submit = traced_submit  # type: ignore[method-assign,assignment]
        sim_server._generate = traced_generate

    def late_share(self) -> float:
        """Probes that joined a later step than the first decided at or after their ready_s."""
        late = 0
        for request_id, steps_ended in self.steps_ended.items():
            first = bisect.bisect_left(self.ends_s, self.ready_s[request_id])
            late += steps_ended > first + 1
        return late / max(1, len(self.steps_ended))


async def run(num_background: int, num_probes: int, via_proxy: bool, fresh: bool) -> Trace:
    trace = Trace()
    trace.install()
    app = sim_server.build_app(sim_config(load_profile(DEFAULT_PROFILE), time_scale=1.0))
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sim_port: int = runner.addresses[0][1]  # the port the OS gave
    target_port, proxy = sim_port, None
    if via_proxy:
        replica = f"http://127.0.0.1:{sim_port}"
        log_path = Path(tempfile.mkdtemp(prefix="sim-http-intake-")) / "proxy.log"
        proxy_args = ["proxy", "--mode", "replication", "--replica", replica]
        # `python -m ppd proxy` once it prints its URL; in a thread: this loop serves the sim meanwhile
        proxy, proxy_url = await asyncio.to_thread(start, proxy_args, log_path)
        target_port = int(proxy_url.rsplit(":", 1)[1])
    args = (str(target_port), str(num_background), str(num_probes), str(int(fresh)))
    client = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, *args)
    await client.wait()
    if proxy is not None:
        await asyncio.to_thread(stop, proxy)
    await runner.cleanup()
    return trace


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[int(share * (len(ordered) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--background", default="0,8,64", help="streaming answers, comma-separated")
    parser.add_argument("--probes", type=int, default=300, help="probes per run (default 300)")
    parser.add_argument("--proxy", action="store_true", help="through ppd proxy --mode replication")
    parser.add_argument("--fresh", action="store_true", help="each probe on a new connection")
    args = parser.parse_args()
    path, connections = ("proxy" if args.proxy else "direct"), ("fresh" if args.fresh else "pooled")
    for num_background in (int(n) for n in args.background.split(",")):
        trace = uvloop.run(run(num_background, args.probes, args.proxy, args.fresh))
        delays = trace.handler_delay_ms
        print(
            f"sim_http_intake path={path} connections={connections} background={num_background}"
            f" handler_delay_p50_ms={percentile(delays, 0.5):.3f} p90_ms={percentile(delays, 0.9):.3f}"
            f" mean_ms={sum(delays) / len(delays):.3f} late_share={trace.late_share():.3f}"
            f" probes={len(trace.steps_ended)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
