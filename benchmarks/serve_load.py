"""Load on `toolkit serve`: 1, 8, 32 and 64 concurrent clients, then a fuzz phase.

Starts the server in its own process on a free loopback port with a small trained run
(``runs/tiny``, the README's quick start, trained here first when it is missing), warms
it up, then runs each phase for a bounded time: every client sends POST /generate
(``--length`` tokens, a random seed) again as soon as its answer arrives. Per phase it
prints the p50 and p99 latency, the total characters per second, the errors and the 5xx
answers; the server's resident memory (RSS) after warm-up and after the load; and a fuzz
phase of random JSON, random bytes and wrong fields, counting 4xx and 5xx answers.

    python benchmarks/serve_load.py [RUN] [--seconds 15] [--length 200] [--chunk 16]
    python benchmarks/serve_load.py [RUN] --loop-only   # the batched loop alone, in-process

Targets (issue 25): 32 clients get at least 10x the characters per second of one client,
0 errors, 0 answers 5xx, and RSS grows by less than 10 % after warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float:
    """The resident memory of process ``pid`` in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def start_server(run: str, flags: list[str]) -> tuple[subprocess.Popen, str]:
    server = subprocess.Popen([sys.executable, "-m", "toolkit", "serve", run, "--port", "0",
                               *flags], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = server.stdout.readline()
    match = re.search(r"http://[\d.]+:\d+", line)
    if not match:
        server.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return server, match.group(0)


async def post(reader, writer, host: str, path: str, body: dict) -> tuple[int, bytes]:
    """One POST on a kept-alive connection: (status, body). A minimal HTTP/1.1 client
    (Content-Length answers only, which is what the server sends for a whole answer):
    at 64 clients httpx's connection pool took more of the two shared cores than the
    server did (docs/serving.md), so the load phases use this; the fuzz phase uses httpx."""
    content = json.dumps(body).encode()
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                 f"\r\nContent-Length: {len(content)}\r\n\r\n".encode() + content)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in head[1:]
                  if line.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def client_loop(url: str, body: dict, deadline: float, results: list) -> None:
    host, port = url.removeprefix("http://").split(":")
    rng = random.Random()
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status, answer = await post(reader, writer, host, "/generate",
                                            {**body, "seed": rng.randrange(2**31)})
                chars = len(json.loads(answer)["text"]) if status == 200 else 0
                results.append((time.monotonic() - started, chars, status))
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration) as err:
                results.append((time.monotonic() - started, 0, type(err).__name__))
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
    finally:
        writer.close()


async def phase(url: str, clients: int, seconds: float, body: dict) -> dict:
    """``clients`` clients for ``seconds`` (the requests under way at the end finish
    within a grace of 30 s; a request later than that counts as an error)."""
    results: list = []
    start = time.monotonic()
    deadline = start + seconds
    tasks = [asyncio.create_task(client_loop(url, body, deadline, results))
             for _ in range(clients)]
    done, pending = await asyncio.wait(tasks, timeout=seconds + 30)
    for task in pending:
        task.cancel()
    elapsed = time.monotonic() - start
    latencies = sorted(r[0] for r in results if r[2] == 200)
    chars = sum(r[1] for r in results)
    errors = sum(r[2] != 200 for r in results) + len(pending)
    return {"clients": clients, "requests": len(results), "seconds": round(elapsed, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1,
                                                 int(0.99 * len(latencies)))], 1)
            if latencies else None,
            "chars_per_second": round(chars / elapsed),
            "errors": errors,
            "status_5xx": sum(isinstance(r[2], int) and r[2] >= 500 for r in results)}


def random_json(rng: random.Random, depth: int = 0):
    kinds = ["int", "float", "str", "bool", "null", "list", "dict", "big"]
    kind = rng.choice(kinds if depth < 3 else kinds[:6])
    if kind == "int":
        return rng.choice([0, -1, 1, 7, 2**63, -2**70, rng.randrange(-10**6, 10**6)])
    if kind == "float":
        return rng.choice([0.0, -0.5, 1e308, 3.7, rng.uniform(-10, 10)])
    if kind == "str":
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(0, 40)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    if kind == "big":
        return "x" * rng.choice([10_000, 2_000_000])
    fields = ["run", "prime", "length", "temperature", "top_k", "top_p", "seed", "author",
              "stream", "text", "model", "lenght", "x"]
    return {rng.choice(fields): random_json(rng, depth + 1) for _ in range(rng.randrange(0, 6))}


async def fuzz(url: str, requests: int, seed: int = 0) -> dict:
    """Random JSON, random bytes and wrong fields at every endpoint; counts by status."""
    rng = random.Random(seed)
    counts = {"2xx": 0, "4xx": 0, "5xx": 0, "no answer": 0}
    async with httpx.AsyncClient(timeout=60) as http:
        for i in range(requests):
            path = rng.choice(["/generate", "/attribute", "/generate", "/runs", "/nowhere"])
            method = rng.choice(["POST", "POST", "POST", "GET", "PUT"])
            style = i % 3
            if style == 0:
                content = json.dumps(random_json(rng)).encode()
            elif style == 1:
                content = rng.randbytes(rng.randrange(0, 2000))
            else:  # a valid-looking body with one field wrong
                body = {"prime": "ROMEO:\n", "length": 20}
                body[rng.choice(["length", "temperature", "top_k", "top_p", "seed", "prime",
                                 "author", "stream", "run"])] = random_json(rng)
                content = json.dumps(body).encode()
            try:
                response = await http.request(method, url + path, content=content,
                                              headers={"Content-Type": "application/json"})
                counts[f"{response.status_code // 100}xx"] = \
                    counts.get(f"{response.status_code // 100}xx", 0) + 1
            except httpx.HTTPError:
                counts["no answer"] += 1
        healthy = (await http.get(url + "/health")).status_code == 200
    return {"fuzz_requests": requests, **counts, "healthy_after": healthy}


async def main_async(args, url: str, pid: int) -> dict:
    body = {"prime": args.prime, "length": args.length, "temperature": 0.8}
    # Warm-up: the compiled loop, the connections, the allocator's pools.
    await phase(url, args.slots, 3, body)
    await phase(url, 1, 2, body)
    report = {"rss_mib_after_warm_up": round(rss_mib(pid), 1), "phases": []}
    for clients in args.clients:
        result = await phase(url, clients, args.seconds, body)
        print(json.dumps(result), flush=True)
        report["phases"].append(result)
    report["rss_mib_after_load"] = round(rss_mib(pid), 1)
    result = await fuzz(url, args.fuzz)
    print(json.dumps(result), flush=True)
    report["fuzz"] = result
    report["rss_mib_after_fuzz"] = round(rss_mib(pid), 1)
    return report


def time_loop(run_dir: str, chunk: int, rows: list[int], repeats: int = 20) -> None:
    """The batched sampling loop alone, in this process: time per step and tokens per
    second at each number of rows, with XLA and without (median of ``repeats`` calls)."""
    import tensorflow as tf

    from toolkit.model.assembly import inference_twin
    from toolkit.runs.rundir import Run
    from toolkit.serving.batcher import Batcher
    from toolkit.serving.stepper import StepModel

    run = Run.open(run_dir)
    model = StepModel(inference_twin(run.model, run.components, len(run.vocab), 1))
    for xla in (True, False):
        for slots in rows:
            batcher = Batcher(model, slots, chunk, jit_compile=xla)
            args = (tf.fill([slots], 2), model.initial_state(slots),
                    tf.fill([slots, chunk], 0.5), tf.fill([slots], 1.0), tf.fill([slots], 0),
                    tf.fill([slots], 1.0))
            batcher._sample_chunk(*args)  # compiled here, not timed
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                batcher._sample_chunk(*args)
                times.append(time.perf_counter() - start)
            batcher.stop()
            step = statistics.median(times) / chunk
            print(json.dumps({"xla": xla, "rows": slots, "chunk": chunk,
                              "us_per_step": round(1e6 * step, 1),
                              "tokens_per_second": round(slots / step)}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default="runs/tiny",
                        help="a generator run (default runs/tiny, trained when missing)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--length", type=int, default=200, help="tokens per request")
    parser.add_argument("--prime", default="ROMEO:\n")
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--fuzz", type=int, default=600, help="fuzz requests")
    parser.add_argument("--loop-only", action="store_true",
                        help="time the batched sampling loop alone, in-process, at 1, 8, "
                             "32 and 64 rows (no server)")
    args = parser.parse_args()
    if not (ROOT / args.run / "model.keras").is_file() and not Path(args.run, "model.keras").is_file():
        subprocess.run([sys.executable, "-m", "toolkit", "train", "configs/tiny.toml",
                        "--run-dir", args.run, "--overwrite"], check=True, cwd=ROOT)
    if args.loop_only:
        time_loop(args.run, args.chunk, [1, 8, 32, 64])
        return 0
    flags = ["--slots", str(args.slots), "--chunk", str(args.chunk)] + \
        (["--no-xla"] if args.no_xla else [])
    server, url = start_server(args.run, flags)
    try:
        report = asyncio.run(main_async(args, url, server.pid))
    finally:
        server.terminate()
        status = server.wait(60)
    by_clients = {p["clients"]: p for p in report["phases"]}
    growth = report["rss_mib_after_load"] / report["rss_mib_after_warm_up"] - 1
    summary = {
        "run": args.run, "length": args.length, "slots": args.slots, "chunk": args.chunk,
        "xla": not args.no_xla,
        "rss_mib": [report["rss_mib_after_warm_up"], report["rss_mib_after_load"],
                    report["rss_mib_after_fuzz"]],
        "rss_growth_after_warm_up": round(growth, 4),
        "errors": sum(p["errors"] for p in report["phases"]),
        "status_5xx": sum(p["status_5xx"] for p in report["phases"]) + report["fuzz"]["5xx"],
        "server_exit_status": status,
    }
    if 1 in by_clients and 32 in by_clients:
        summary["speedup_32_over_1"] = round(by_clients[32]["chars_per_second"]
                                             / max(by_clients[1]["chars_per_second"], 1), 2)
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from machine import print_machine  # benchmarks/machine.py

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print_machine(sys.stdout)
    sys.exit(main())
