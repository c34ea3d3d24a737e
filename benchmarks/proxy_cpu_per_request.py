"""CPU time per streamed request of each relay process, under proxy_overhead.py's closed-loop load.

    flock /work/cpu.lock python benchmarks/proxy_cpu_per_request.py [--duration-s 5] [--rounds 2]
        [--baseline-src /tmp/ppd-before]   # also the `ppd proxy` of another source tree

The same upstream, relays and client as benchmarks/proxy_overhead.py (imported from it); each relay's
utime+stime is read from /proc/PID/stat before and after each client round and divided by the
requests it completed. Unlike TTFT, this isolates the relay's own CPU: ppd proxy minus the bare
aiohttp relay is the proxy's own work per request. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy_overhead as po


def cpu_s(pid: int) -> float:
    """utime + stime of process `pid`, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--baseline-src", help="also run `ppd proxy` from this source tree (its src/)")
    args = parser.parse_args()
    upstream_argv = [sys.executable, po.__file__, "--upstream-worker", "--tokens", "8", "--itl-ms", "1.0"]
    processes: list[po.Process] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            upstream = po.start("upstream", upstream_argv)
            processes.append(upstream)
            proxy_argv = [sys.executable, "-m", "ppd", "proxy", "--mode", "replication"]
            proxy_argv += ["--replica", upstream.url, "--port", "0"]
            bare = Path(tmp) / "aiohttp_bare.py"
            bare.write_text(po.AIOHTTP_BARE)
            relays: list[tuple[str, list[str], str | None]] = [("ppd-proxy", proxy_argv, None)]
            if args.baseline_src:
                relays.append(("ppd-baseline", proxy_argv, args.baseline_src))
            relays.append(("aiohttp-bare", [sys.executable, str(bare), upstream.url], None))
            print(f"cpus={os.cpu_count()} tokens=8 itl_ms=1.0 concurrency={args.concurrency} client_procs=1")
            for name, argv, src in relays:
                relay = po.start(name, argv, src=src)
                processes.append(relay)
                for round_index in range(args.rounds):
                    client = [sys.executable, po.__file__, "--client-worker", relay.url]
                    client += [str(args.concurrency), str(args.duration_s)]
                    before_s = cpu_s(relay.popen.pid)
                    out = subprocess.run(client, capture_output=True, text=True, check=True).stdout.split()
                    after_s = cpu_s(relay.popen.pid)
                    done, errors, elapsed_s = int(out[0]), int(out[1]), float(out[2])
                    cpu_ms = (after_s - before_s) / done * 1000.0
                    print(
                        f"{name:<14} round={round_index} requests={done} errors={errors} "
                        f"rps={done / elapsed_s:.0f} cpu_ms_per_request={cpu_ms:.3f}",
                        flush=True,
                    )
        finally:
            for process in reversed(processes):
                process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
