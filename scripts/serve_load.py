"""Load on `genkit serve`: N concurrent clients for T seconds each, at several N; requests/s, p50
and p99 latency, failures, as a Markdown table (docs/serve.md keeps one, with the machine).

    python scripts/serve_load.py --ckpt <run> [--clients 1,4,16] [--seconds 20] [--serve max_batch=16 ...]
    python scripts/serve_load.py --url http://127.0.0.1:8000/ [--body '{"prompt": "ROMEO:", "max_tokens": 32}']
    python scripts/serve_load.py --ckpt <run> --clients 1,4,16,64 --mixed-tokens 8,256 \
        [--genkit "env PYTHONPATH=<other checkout> python -c 'from genkit.cli import main; main()'"]

With --ckpt it starts `genkit serve ckpt=<run> port=0` itself, and stops it with SIGTERM at the
end (which must exit 0). Loopback only, at most 64 clients and 120 s a level: a load test is
not for other people's machines. Each client is a thread with one kept-alive connection, sending
its next request when the last is answered (a closed loop: requests/s at N clients is what N
users waiting on each answer get). Text requests default to a 32-token completion of "ROMEO:"
at temperature 0.8 (--mixed-tokens: lengths drawn per request, the same draws every run, so two
servers meet the same load); image requests to one image of the classes in turn. Text rows also
give completion tokens/s (the answers' `usage`).
"""

import argparse
import http.client
import json
import os
import random
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

MAX_CLIENTS, MAX_SECONDS = 64, 120


def request(conn: http.client.HTTPConnection, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    payload = None if body is None else json.dumps(body).encode()
    conn.request(method, path, payload, {"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def level(host: str, port: int, path: str, bodies, clients: int, seconds: float) -> dict:
    """`clients` threads sending requests for `seconds`; the latencies of those answered in time."""
    latencies: list[float] = []
    failures: list[str] = []
    tokens = [0]  # completion tokens answered (usage), for tokens/s
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + seconds

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=120)
        i = 0
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                status, answer = request(conn, "POST", path, bodies(k, i))
            except (OSError, http.client.HTTPException) as err:
                status, answer = 0, repr(err).encode()
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=120)
            took = time.monotonic() - sent
            with lock:
                if status == 200:
                    latencies.append(took)
                    tokens[0] += json.loads(answer).get("usage", {}).get("completion_tokens", 0)
                else:
                    failures.append(f"{status} {answer[:200]!r}")
            i += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start  # the last requests end past the deadline: count their time
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "requests": len(latencies),
        "failed": len(failures),
        "rps": len(latencies) / elapsed,
        "tokens_per_s": tokens[0] / elapsed,
        "p50_ms": 1000 * statistics.median(ordered) if ordered else float("nan"),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan"),
        "first_failure": failures[0] if failures else None,
    }


def start_server(ckpt: str, serve_args: list[str], genkit: list[str]) -> tuple[subprocess.Popen, str]:
    command = [*genkit, "serve", f"ckpt={ckpt}", "port=0", *serve_args]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in server.stdout:
        print(f"  serve| {line.rstrip()}", file=sys.stderr)
        found = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
        if found:
            threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()  # keep draining
            return server, found.group(1)
    raise SystemExit(f"genkit serve stopped before it was ready (exit {server.wait()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", help="a run or .ckpt: start genkit serve on it (else --url)")
    parser.add_argument("--url", default="http://127.0.0.1:8000/")
    parser.add_argument("--serve", nargs="*", default=[], help="options of genkit serve, e.g. max_batch=1")
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--body", help="the request's JSON (default: by the model's kind, see above)")
    parser.add_argument("--mixed-tokens", help="LO,HI: each text request's max_tokens drawn from LO..HI (the "
                        "same draws every run: seeded by client and request)")  # fmt: skip
    parser.add_argument("--genkit", default=str(Path(sys.executable).with_name("genkit")),
                        help="the command that runs genkit (another checkout's, to compare servers)")  # fmt: skip
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    if max(clients) > MAX_CLIENTS or not 0 < args.seconds <= MAX_SECONDS:
        raise SystemExit(f"at most {MAX_CLIENTS} clients and {MAX_SECONDS} s a level")
    server = None
    url = args.url
    if args.ckpt:
        server, url = start_server(args.ckpt, args.serve, shlex.split(args.genkit))
    where = urlsplit(url)
    if where.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"{url}: load tests run on loopback only")
    host, port = where.hostname, where.port or 80
    try:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        about = json.loads(request(conn, "GET", "/v1/models")[1])["data"][0]
        conn.close()
        text = about["modality"] == "text"
        path = about["endpoint"]
        base = json.loads(args.body) if args.body else (
            {"prompt": "ROMEO:", "max_tokens": 32, "temperature": 0.8} if text else {"n": 1}
        )  # fmt: skip
        classes = len(about.get("classes") or []) or None

        mixed = [int(v) for v in args.mixed_tokens.split(",")] if args.mixed_tokens else None

        def bodies(k: int, i: int) -> dict:
            body = {**base, "seed": 1000 * k + i}
            if mixed:
                body["max_tokens"] = random.Random(1000 * k + i).randint(*mixed)
            if classes and "label" not in body and "labels" not in body:
                body["label"] = (k + i) % classes
            return body

        level(host, port, path, bodies, 2, 2.0)  # warm-up: first calls allocate
        rows = [level(host, port, path, bodies, n, args.seconds) for n in clients]
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=120)
            print(f"genkit serve exited {code} on SIGTERM", file=sys.stderr)
    lengths = f", max_tokens drawn from {mixed[0]} to {mixed[1]}" if mixed else ""
    print(f"\n{about['id']} ({about['family']}), POST {path} {json.dumps(base)}{lengths}, {args.seconds:g} s a "
          f"level, {os.cpu_count()} CPUs\n")  # fmt: skip
    print("| clients | requests/s | tokens/s | p50 latency | p99 latency | requests | failed | vs 1 client |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        speedup = row["rps"] / rows[0]["rps"]
        print(f"| {row['clients']} | {row['rps']:.2f} | {row['tokens_per_s']:.0f} | {row['p50_ms']:.0f} ms | "
              f"{row['p99_ms']:.0f} ms | {row['requests']} | {row['failed']} | {speedup:.1f}x |")  # fmt: skip
    for row in rows:
        if row["first_failure"]:
            print(f"first failure at {row['clients']} clients: {row['first_failure']}")


if __name__ == "__main__":
    main()
