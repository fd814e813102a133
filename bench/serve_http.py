"""Benchmark: ``tidings serve`` over HTTP, on SQLite.

1. Push: 200,000 native events (``ingest_close``'s generator, in time order as change streams
   arrive) pushed to a running ``tidings serve`` (a subprocess) as NDJSON in batches of 1,000
   by an httpx client over a few connections, each batch answered with a result per item.
   Beside it, in the same run: the same file through ``tidings ingest`` (the real command, the
   whole process), and through ``Tidings.ingest_files`` in-process. Target: HTTP at least half
   the CLI's rate.
2. Inbox: 2,000 recipients' in-app inboxes filled through the real path (five windows closed,
   the digests dispatched to the inbox); then 50 concurrent clients (asyncio + httpx), each
   with its recipient's inbox token, read their inbox and its unread count in a closed loop
   (each sends its next request as soon as the last is answered). p50/p99 latency, beside
   ``GET /healthz`` under the same load (the floor: HTTP, the server and this client) and the
   same queries done straight through the store in one process. Target: inbox p99 < 50 ms.

Each phase runs in a process of its own; the server is a process of its own too. The median of
``--runs`` rounds counts. Usage:
    python bench/serve_http.py [--events N] [--entities N] [--clients N] [--requests N]
                               [--runs N] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ingest_close import CONFIG as INGEST_CONFIG
from ingest_close import generate, phase_cli_ingest, phase_ingest
from phases import run_phase

BATCH = 1_000
CONNECTIONS = 4
INBOX_CONFIG = """
timezone = "Europe/London"
[store]
url = "{url}"
[window]
cutoff = "18:00"
[entities.Placement]
label = "placement"
key = "id"
recipient = "traineeId"
[entities.Placement.fields]
traineeId = "string"
site = {{ type = "string", label = "Site" }}
dateFrom = {{ type = "date", label = "Start date" }}
[entities.Person]
key = "id"
recipient = "id"
[entities.Person.fields]
email = "string"
[people]
entity = "Person"
[channels.inbox]
kind = "inapp"
[delivery]
batch_size = 1000
[categories.placements]
label = "Placements"
[[rules]]
name = "placements"
entity = "Placement"
category = "placements"
channels = ["inbox"]
template = "default"
"""
WINDOWS = 5
PACED_READS = 10  # of each kind per client in the paced round (at 0.5 s: 10 s)
FIRST_DAY = datetime(2025, 8, 4, 17, 0, tzinfo=UTC)  # 18:00 in London


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(path: Path, text: str, port: int) -> Path:
    path.write_text(f"{text}\n[serve]\nport = {port}\n", encoding="utf-8")
    return path


def make_key(config: Path, role: str) -> str:
    from tidings.access.control import AccessControl
    from tidings.api import Tidings

    with Tidings.open(config) as app:
        return (
            AccessControl(app.config, app.store, app.clock)
            .create_key(f"bench-{role}", [role], by="bench")
            .token
        )


@contextmanager
def serving(config: Path, log: Path) -> Iterator[str]:
    """``tidings serve`` on ``config`` in a process of its own, until SIGTERM."""
    import httpx

    from tidings.config import load_config

    port = load_config(config).serve.port
    base = f"http://127.0.0.1:{port}"
    with log.open("ab") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--config", str(config),
             "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "tidings serve did not become ready"
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=120)
        assert code == 0, log.read_text(errors="replace")


# --- 1. push ---------------------------------------------------------------------------------


def phase_http_push(path: Path, config: Path, log: Path) -> dict[str, float]:
    import httpx

    from tidings.api import Tidings

    key = make_key(config, "ingest")
    raw = path.read_bytes().splitlines(keepends=True)
    batches = [b"".join(raw[n : n + BATCH]) for n in range(0, len(raw), BATCH)]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}

    async def push(base: str) -> tuple[float, int]:
        queue = list(reversed(batches))
        accepted = 0
        limits = httpx.Limits(max_connections=CONNECTIONS)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

            async def sender() -> None:
                nonlocal accepted
                while queue:
                    body = queue.pop()
                    answer = await client.post("/v1/events", content=body, headers=headers)
                    answer.raise_for_status()
                    accepted += answer.json()["totals"]["accepted"]

            started = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(CONNECTIONS)))
            return time.perf_counter() - started, accepted

    with serving(config, log) as base:
        seconds, accepted = asyncio.run(push(base))
    with Tidings.open(config) as app, app.store.read() as tx:
        stored = tx.events.count()
    return {"seconds": seconds, "accepted": accepted, "stored": stored}


# --- 2. inbox --------------------------------------------------------------------------------


def phase_populate(config: Path, recipients: int) -> dict[str, float]:
    """Five windows of one placement change per recipient, closed and dispatched to the
    in-app inbox: five messages in each recipient's inbox."""
    import orjson

    from tidings.api import Tidings
    from tidings.ingest import Line

    started = time.perf_counter()
    days = [FIRST_DAY + timedelta(days=n) for n in range(WINDOWS)]
    with Tidings.open(config, clock=lambda: days[-1] + timedelta(hours=1)) as app:
        for w, day in enumerate(days):
            at = (day - timedelta(hours=8)).isoformat()
            lines = [
                Line("bench.jsonl", n + 1, orjson.dumps({
                    "id": f"P{n:05d}-{w}", "source": "bench", "entity": "Placement",
                    "key": f"P{n:05d}", "op": "upsert", "seq": w + 1, "at": at,
                    "data": {"traineeId": f"T{n:05d}", "site": f"Site {w}",
                             "dateFrom": "2025-09-03"},
                }))
                for n in range(recipients)
            ]  # fmt: skip
            app.ingest_lines(lines)
            app.close(day)
        sent = app.require_delivery().dispatch_once()
        with app.store.read() as tx:
            messages = len(tx.inbox.all())
    return {"seconds": time.perf_counter() - started, "delivered": sent.delivered,
            "messages": messages}  # fmt: skip


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cut[49] * 1000, "p99": cut[98] * 1000, "n": len(ordered)}


def phase_inbox_load(
    config: Path, log: Path, clients: int, requests: int, interval: float
) -> dict[str, Any]:
    import httpx

    key = make_key(config, "recipient_service")

    async def load(base: str) -> dict[str, Any]:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
            service = {"Authorization": f"Bearer {key}"}
            tokens = []
            for n in range(clients):
                answer = await http.post(f"/v1/recipients/T{n:05d}/inbox-token", headers=service)
                answer.raise_for_status()
                tokens.append(answer.json()["token"])

            async def client(
                n: int, paths: list[str], took: dict[str, list[float]], every: float
            ) -> None:
                headers = {"Authorization": f"Bearer {tokens[n]}"}
                due = time.perf_counter() + every * n / clients  # spread over the first interval
                for _ in range(min(requests, PACED_READS) if every else requests):
                    for path in paths:
                        if every:  # paced: a person's page polling, not a tight loop
                            await asyncio.sleep(max(0.0, due - time.perf_counter()))
                            due += every
                        url = path.format(r=f"T{n:05d}")
                        started = time.perf_counter()
                        answer = await http.get(url, headers=headers)
                        took[path].append(time.perf_counter() - started)
                        assert answer.status_code == 200, answer.text

            async def round_of(
                paths: list[str], every: float = 0.0
            ) -> tuple[dict[str, list[float]], float]:
                took: dict[str, list[float]] = {p: [] for p in paths}
                started = time.perf_counter()
                await asyncio.gather(*(client(n, paths, took, every) for n in range(clients)))
                return took, time.perf_counter() - started

            inbox, unread = "/v1/recipients/{r}/inbox", "/v1/recipients/{r}/inbox/unread-count"
            await round_of([inbox, unread])  # warm-up: connections, caches
            health, health_s = await round_of(["/healthz"])
            took, took_s = await round_of([inbox, unread])
            paced, _ = await round_of([inbox, unread], interval)
            sample = await http.get(inbox.format(r="T00000"), headers={
                "Authorization": f"Bearer {tokens[0]}"})  # fmt: skip
            measured = wrk_load(base, tokens, clients, log.parent)
            return {
                "wrk": measured,
                "inbox": _percentiles(took[inbox]),
                "unread": _percentiles(took[unread]),
                "both": _percentiles(took[inbox] + took[unread]),
                "both_rps": (len(took[inbox]) + len(took[unread])) / took_s,
                "healthz": _percentiles(health["/healthz"]),
                "healthz_rps": len(health["/healthz"]) / health_s,
                "paced": _percentiles(paced[inbox] + paced[unread]),
                "messages_each": len(sample.json()["messages"]),
            }

    with serving(config, log) as base:
        result = asyncio.run(load(base))
    result["seconds"] = result["both"]["p99"]
    return result


WRK_SCRIPT = """
local paths, tokens, i = {%s}, {%s}, 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {["Authorization"] = "Bearer " .. tokens[i]})
end
"""


def wrk_load(base: str, tokens: list[str], clients: int, folder: Path) -> dict[str, float] | None:
    """The closed loop again with wrk (C, a few % of one core), when it is installed: a Python
    client on the same two cores measures mostly itself. Each request reads another
    recipient's inbox with that recipient's token."""
    if shutil.which("wrk") is None:
        return None
    paths = [f'"/v1/recipients/T{n:05d}/inbox"' for n in range(len(tokens))]
    script = folder / "inbox.lua"
    script.write_text(WRK_SCRIPT % (", ".join(paths), ", ".join(f'"{t}"' for t in tokens)), "utf-8")
    done = subprocess.run(
        ["wrk", "-t2", f"-c{clients}", "-d10s", "--latency", "-s", str(script), base],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    script.unlink()

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", done.stdout, re.M)
        assert found is not None, done.stdout
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]
        return float(found.group(1)) * scale

    rps = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    assert rps is not None, done.stdout
    assert "Non-2xx" not in done.stdout, done.stdout
    return {"p50": ms("50%"), "p99": ms("99%"), "rps": float(rps.group(1))}


def phase_inbox_direct(config: Path, clients: int, requests: int) -> dict[str, Any]:
    """The same reads through the store in one process: the query's own cost."""
    from tidings.api import Tidings
    from tidings.channels.inapp import InAppInbox

    took: list[float] = []
    with Tidings.open(config) as app:
        box = InAppInbox("inbox", app.store, app.clock)
        for _ in range(requests):
            for n in range(clients):
                started = time.perf_counter()
                messages = box.messages(f"T{n:05d}")
                sum(1 for m in messages if m.state == "unread")
                took.append(time.perf_counter() - started)
    result: dict[str, Any] = _percentiles(took)
    result["seconds"] = result["p99"]
    return result


# --- running it --------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="per client, of each kind")
    parser.add_argument("--recipients", type=int, default=2_000)
    parser.add_argument(
        "--interval", type=float, default=0.5, help="seconds between a paced client's reads"
    )
    parser.add_argument("--runs", type=int, default=3, help="rounds; the median is reported")
    parser.add_argument("--out", type=Path, default=Path("bench-out/serve"))
    parser.add_argument("--phase", nargs="*")
    args = parser.parse_args()
    if args.phase:
        name, *rest = args.phase
        result = {
            "cli_ingest": lambda: phase_cli_ingest(Path(rest[0]), Path(rest[1])),
            "ingest": lambda: phase_ingest(Path(rest[0]), Path(rest[1])),
            "http_push": lambda: phase_http_push(Path(rest[0]), Path(rest[1]), Path(rest[2])),
            "populate": lambda: phase_populate(Path(rest[0]), int(rest[1])),
            "inbox_load": lambda: phase_inbox_load(
                Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]), float(rest[4])
            ),
            "inbox_direct": lambda: phase_inbox_direct(Path(rest[0]), int(rest[1]), int(rest[2])),
        }[name]()
        print(json.dumps(result))
        return

    console = Console()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "serve.log"
    log.unlink(missing_ok=True)
    events = out / "events.jsonl"
    if not events.exists() or sum(1 for _ in events.open("rb")) != args.events:
        generate(events, args.events, args.entities, order="time")

    def fresh(name: str, text: str) -> Path:
        for stale in out.glob(f"{name}.db*"):
            stale.unlink()
        url = f"sqlite:///{out / f'{name}.db'}"
        return write_config(out / f"{name}.toml", text.format(url=url), free_port())

    rounds: list[dict[str, Any]] = []
    for round_no in range(1, args.runs + 1):
        figures: dict[str, Any] = {}
        with console.status(f"round {round_no}/{args.runs}: tidings ingest FILE"):
            figures["cli"] = run_phase(
                __file__, "cli_ingest", str(events), str(fresh("cli", INGEST_CONFIG))
            )
        with console.status(f"round {round_no}/{args.runs}: Tidings.ingest_files"):
            figures["api"] = run_phase(
                __file__, "ingest", str(events), str(fresh("api", INGEST_CONFIG))
            )
        with console.status(f"round {round_no}/{args.runs}: pushing over HTTP"):
            figures["http"] = run_phase(
                __file__, "http_push", str(events), str(fresh("http", INGEST_CONFIG)), str(log)
            )
        inbox_config = fresh("inbox", INBOX_CONFIG)
        with console.status(f"round {round_no}/{args.runs}: filling {args.recipients:,} inboxes"):
            figures["populate"] = run_phase(
                __file__, "populate", str(inbox_config), str(args.recipients)
            )
        with console.status(f"round {round_no}/{args.runs}: {args.clients} inbox clients"):
            figures["load"] = run_phase(
                __file__, "inbox_load", str(inbox_config), str(log), str(args.clients),
                str(args.requests), str(args.interval),
            )  # fmt: skip
        with console.status(f"round {round_no}/{args.runs}: the same reads in-process"):
            figures["direct"] = run_phase(
                __file__, "inbox_direct", str(inbox_config), str(args.clients),
                str(args.requests),
            )  # fmt: skip
        rounds.append(figures)
        f = figures
        console.print(
            f"round {round_no}: HTTP {f['http']['accepted'] / f['http']['seconds']:,.0f} "
            f"events/s, CLI {f['cli']['accepted'] / f['cli']['seconds']:,.0f}/s, in-process "
            f"{f['api']['accepted'] / f['api']['seconds']:,.0f}/s; inbox p50/p99 "
            f"{f['load']['both']['p50']:.1f}/{f['load']['both']['p99']:.1f} ms "
            f"(healthz {f['load']['healthz']['p50']:.1f}/{f['load']['healthz']['p99']:.1f} ms)"
        )
        assert f["http"]["stored"] == f["http"]["accepted"] == args.events, f["http"]
        assert f["populate"]["messages"] == args.recipients * WINDOWS, f["populate"]

    def rate(kind: str) -> float:
        return _median([r[kind]["accepted"] / r[kind]["seconds"] for r in rounds])

    def ms(kind: str, *path: str) -> float:
        values = []
        for r in rounds:
            found: Any = r[kind]
            for part in path:
                found = found[part]
            values.append(found)
        return _median(values)

    http, cli, api = rate("http"), rate("cli"), rate("api")
    table = Table(
        title=f"tidings serve on SQLite: {args.events:,} events pushed in batches of {BATCH:,} "
        f"over {CONNECTIONS} connections; {args.clients} inbox clients, "
        f"{args.requests} reads of each kind each; median of {args.runs} rounds"
    )
    for column in ("measure", "Tidings over HTTP", "baseline", "target", "met"):
        table.add_column(column)
    rows = [
        ("push rate (events/s)", f"{http:,.0f}",
         f"{cli:,.0f} `tidings ingest` (whole process)", ">= 50% of the CLI", http >= cli / 2),
        ("push / CLI ingest", f"{http / cli:.0%}", "100%", ">= 50%", http >= cli / 2),
        ("push / in-process ingest_files", f"{http / api:.0%}",
         f"{api:,.0f} events/s in-process", "", True),
        ("inbox list p50 / p99 (ms), closed loop",
         f"{ms('load', 'inbox', 'p50'):.1f} / {ms('load', 'inbox', 'p99'):.1f}",
         f"{ms('load', 'healthz', 'p50'):.1f} / {ms('load', 'healthz', 'p99'):.1f} GET /healthz",
         "p99 < 50", ms("load", "inbox", "p99") < 50),
        ("unread count p50 / p99 (ms), closed loop",
         f"{ms('load', 'unread', 'p50'):.1f} / {ms('load', 'unread', 'p99'):.1f}",
         f"{ms('direct', 'p50'):.2f} / {ms('direct', 'p99'):.2f} the query in-process",
         "p99 < 50", ms("load", "unread", "p99") < 50),
        ("inbox requests/s (50 clients, closed loop)", f"{ms('load', 'both_rps'):,.0f}",
         f"{ms('load', 'healthz_rps'):,.0f} GET /healthz", "", True),
        *(
            [(f"inbox list p50 / p99 (ms), wrk: {args.clients} connections, closed loop",
              f"{ms('load', 'wrk', 'p50'):.1f} / {ms('load', 'wrk', 'p99'):.1f}",
              f"{ms('load', 'wrk', 'rps'):,.0f} reads/s", "p99 < 50",
              ms("load", "wrk", "p99") < 50)]
            if all(r["load"]["wrk"] for r in rounds) else []
        ),
        (f"inbox reads p50 / p99 (ms), paced: each client every {args.interval:g} s",
         f"{ms('load', 'paced', 'p50'):.1f} / {ms('load', 'paced', 'p99'):.1f}",
         f"{args.clients / args.interval:,.0f} reads/s offered", "p99 < 50",
         ms("load", "paced", "p99") < 50),
    ]  # fmt: skip
    for name, ours, baseline, target, met in rows:
        table.add_row(name, ours, baseline, target, "[green]yes[/]" if met else "[red]no[/]")
    console.print(table)
    messages = rounds[-1]["load"]["messages_each"]
    console.print(
        f"Each inbox holds {messages} messages ({args.recipients:,} recipients, "
        f"{args.recipients * WINDOWS:,} messages in all). Latency is measured by the client "
        "(one Python process for all the clients). Closed loop: each client sends its next "
        "read as soon as the last is answered, so the latency is mostly the queue at the "
        "server; paced: each reads every interval, as a person's open page polls."
    )
    if os.environ.get("BENCH_JSON"):
        print(json.dumps(rounds))


if __name__ == "__main__":
    main()
