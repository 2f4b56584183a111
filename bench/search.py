"""Search benchmark: full-rebuild throughput vs a raw bulk load, and change-to-searchable latency.

One run per engine on generated conversations (default 1,000,000) in a throwaway stack:

* full rebuild documents/s (``ingestion.search.rebuild``: PostgreSQL snapshot -> documents ->
  redaction -> bulk) against the practical limit: the same documents, pre-serialised to NDJSON in
  memory beforehand, bulk loaded into an identical index from the same number of sender threads
  (goal: rebuild >= 0.7x raw); both after a warm-up load of all the documents, alternated
  ``--repeats`` times, best of each;
* the time from a committed new row in PostgreSQL to a search finding it via the sensor path
  (change probe + incremental sync on a tick, 1 s refresh), p50/p95;
* where the CPU went in each run (engine, PostgreSQL, this Python process, in core-seconds): on a
  machine whose cores the engine alone can keep busy, whatever PostgreSQL and Python spend on
  building the documents is taken from the engine, and the ratio can be no better than
  engine / (engine + PostgreSQL + Python).

Usage: ``.venv/bin/python bench/search.py [--rows N] [--engines elasticsearch,opensearch]``.
Writes bench/results/search.json and search.md. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devstack import postgres  # noqa: E402
from devstack.search import launcher  # noqa: E402
from ingestion.schema import migrate  # noqa: E402
from ingestion.search import bulk_lines, documents, mapping, rebuild, sync  # noqa: E402
from ingestion.search.client import BulkOutcome, SearchClient  # noqa: E402
from ingestion.search.query import search_conversations  # noqa: E402
from orchestration.environment import SearchSettings  # noqa: E402

RESULTS = REPO / "bench" / "results"
TEMPLATES = [
    "您好，我想了解一下美股投资，最近行情怎么样？编号{n}",
    "I would like to deposit {n} USD next week, what is the minimum?",
    "这个月收益不错，我打算追加入金{n}元",
    "Can I withdraw my funds tomorrow? Ticket {n}",
    "加我微信 user{n} 详细聊，或者打 138{n8}",
    "My email is client{n}@example.com, call (415) 555-{n4}",
    "美元汇率波动太大，我有点担心，订单{n}",
    "The webinar about options trading was great, thanks! #{n}",
]


def generate(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO employees (employee_code, name, email, username, password_hash, role, department)"
            " SELECT 'EMP_' || g, 'e' || g, 'e' || g || '@corp.example', 'e' || g, 'x', 'employee',"
            " (ARRAY['ToFu','MoFu','BoFu','VIP'])[1 + g % 4] FROM generate_series(1, 100) g"
        )
        conn.execute(
            "INSERT INTO customers (customer_code, name, tier, current_stage)"
            " SELECT 'CUST_' || g, 'c' || g, (ARRAY['S','A','B','C'])[1 + g % 4], 'Trust'"
            " FROM generate_series(1, 10000) g"
        )
        conn.execute("SELECT ensure_conversation_partitions(DATE '2025-01-01', DATE '2025-12-01')")
        templates = "ARRAY[" + ",".join("'" + t.replace("'", "''") + "'" for t in TEMPLATES) + "]"
        conn.execute(
            f"""INSERT INTO conversations (source_message_id, customer_id, employee_id, message_type, direction,
                   content, sentiment, keywords, platform, quality_score, sent_at)
            SELECT 'gen-' || g, 1 + g %% 10000, 1 + g %% 100, 'text',
                   (ARRAY['inbound','outbound'])[1 + g %% 2],
                   replace(replace(replace(({templates})[1 + g %% {len(TEMPLATES)}], '{{n8}}', lpad((g %% 100000000)::text, 8, '0')),
                           '{{n4}}', lpad((g %% 10000)::text, 4, '0')), '{{n}}', g::text),
                   (ARRAY['positive','neutral','negative'])[1 + g %% 3], '["投资","美股"]',
                   (ARRAY['wechat','whatsapp','telegram'])[1 + g %% 3], 1 + g %% 10,
                   TIMESTAMP '2025-01-01' + (g %% 330) * INTERVAL '1 day' + (g %% 86400) * INTERVAL '1 second'
            FROM generate_series(1, %s) g""",
            (rows,),
        )
        conn.commit()
    # A table in service has been vacuumed long since: without this, the first rebuild's scan
    # would also set every row's hint bits (writing the whole table once) and measure that instead.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) conversations")


class CpuMeter:
    """Core-seconds spent by the engine's process tree, PostgreSQL (backends that exited are
    counted in the postmaster's children times) and this process, between ``start`` and ``read``."""

    def __init__(self, engine_pid: int, postmaster_pid: int):
        self.engine = psutil.Process(engine_pid)
        self.postmaster = psutil.Process(postmaster_pid)
        self.started: dict[str, float] = {}

    @staticmethod
    def _tree(process: psutil.Process, with_reaped: bool = False) -> float:
        total = 0.0
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                total += times.user + times.system
                if with_reaped and member is process:
                    total += times.children_user + times.children_system
        return total

    def _now(self) -> dict[str, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "engine": self._tree(self.engine),
            "postgres": self._tree(self.postmaster, with_reaped=True),
            "python": own.ru_utime + own.ru_stime,
        }

    def start(self) -> None:
        self.started = self._now()

    def read(self) -> dict[str, float]:
        return {name: round(value - self.started[name], 1) for name, value in self._now().items()}


def raw_bulk_load(
    dsn: str,
    client: SearchClient,
    index: str,
    cjk: bool,
    max_chunks: int | None = None,
    meter: CpuMeter | None = None,
) -> dict:
    """The practical limit: the same documents, already NDJSON in memory, sent the same way."""
    started = time.monotonic()
    with documents.connect(dsn) as conn:
        chunks = [
            b"".join(item.lines for item in chunk)
            for chunk in itertools.islice(
                bulk_lines.chunks(documents.stream_all(conn), index, rebuild.DEFAULT_CHUNK_DOCS), max_chunks
            )
        ]
    prepare_s = time.monotonic() - started
    client.create_index(index, mapping.index_body(cjk))
    if meter:
        meter.start()

    def send(payload: bytes) -> BulkOutcome:
        response = client.raw.bulk(body=payload, filter_path="errors")
        assert not getattr(response, "body", response).get("errors"), "raw bulk had errors"
        return BulkOutcome(succeeded=payload.count(b"\n") // 2)

    started = time.monotonic()
    outcome = rebuild.send_concurrently(send, chunks, rebuild.DEFAULT_SENDERS)
    client.put_settings(index, mapping.serving_settings(0))
    client.refresh(index)
    seconds = time.monotonic() - started
    cpu = meter.read() if meter else {}
    docs = client.count(index)
    assert docs == outcome.succeeded, (docs, outcome.succeeded)
    client.delete_index(index)
    return {
        "documents": docs,
        "seconds": round(seconds, 2),
        "docs_per_second": round(docs / seconds, 1),
        "serialise_seconds_not_counted": round(prepare_s, 2),
        "cpu_core_seconds": cpu,
    }


def latency(dsn: str, client: SearchClient, alias: str, samples: int, tick_s: float, lag_s: float) -> dict:
    """Commit a row, let a sensor-like loop (probe + incremental sync every tick) index it, and time
    until a search finds it."""
    lag = dt.timedelta(seconds=lag_s)
    stop = threading.Event()

    def sensor_loop():
        while not stop.is_set():
            if sync.pending(dsn, alias, lag):
                sync.run_incremental(dsn, client, alias, lag=lag)
            stop.wait(tick_s)

    worker = threading.Thread(target=sensor_loop, daemon=True)
    worker.start()
    measured = []
    try:
        with psycopg.connect(dsn) as conn:
            for i in range(samples):
                # letters only: a long digit run would be redacted as a phone number
                token = "probe" + "".join(chr(97 + int(d)) for d in f"{i}{time.time_ns()}")
                conn.execute(
                    "INSERT INTO conversations (source_message_id, customer_id, employee_id, message_type,"
                    " direction, content, platform, sent_at) VALUES (%s, 1, 1, 'text', 'inbound', %s, 'wechat',"
                    " TIMESTAMP '2025-06-01')",
                    (f"probe-{token}", f"probe {token}"),
                )
                conn.commit()
                committed = time.monotonic()
                while search_conversations(client, token, alias=alias, size=1).total == 0:
                    if time.monotonic() - committed > 60:
                        raise TimeoutError(token)
                    time.sleep(0.05)
                measured.append(time.monotonic() - committed)
                time.sleep(0.3 + (i % 7) * 0.13)  # land at different points of the tick
    finally:
        stop.set()
        worker.join()
    measured.sort()
    return {
        "samples": len(measured),
        "tick_seconds": tick_s,
        "lag_seconds": lag_s,
        "p50_seconds": round(statistics.median(measured), 2),
        "p95_seconds": round(measured[max(0, int(len(measured) * 0.95) - 1)], 2),
        "max_seconds": round(measured[-1], 2),
    }


def _engine_cpu_share(cpu: dict[str, float]) -> float:
    """The engine's share of the rebuild's CPU: about the best ratio when cores, not waiting, limit
    both runs and the engine spends the same CPU per document in both (it varies between runs)."""
    spent = cpu["engine"] + cpu["postgres"] + cpu["python"]
    return round(cpu["engine"] / spent, 2) if spent else 0.0


def bench_engine(flavour: str, pg: dict, rows: int, samples: int, repeats: int) -> dict:
    dsn = pg["dsn"]
    home = Path(tempfile.mkdtemp(prefix=f"bench-search-{flavour}-"))
    os.environ.setdefault("FUNNELHOUSE_SEARCH_HEAP", "2g")
    info = launcher.start(home, flavour)
    try:
        client = SearchClient.connect(SearchSettings(url=info["url"], flavour=flavour), timeout=300)
        meter = CpuMeter(info["pid"], pg["pid"])
        alias = "bench_conversations"
        # Both measurements on a warm JVM: otherwise whichever runs first also pays the JIT warm-up.
        # A whole load of the documents: after 50,000 the first rebuild still spent twice the engine
        # CPU of the next ones.
        warm_up = raw_bulk_load(dsn, client, f"{alias}_warmup", client.analyzer_available("cjk"))
        # Alternated and repeated, best of each kept: a machine shared with other work slows
        # whichever happens to run at the time, and the best run is the one least disturbed.
        rebuilds, raws = [], []
        for repeat in range(1, repeats + 1):
            load_cpu: dict[str, float] = {}
            meter.start()
            # read once the load is verified: the replay and swap after it are not part of load_seconds
            report = rebuild.full_rebuild(
                dsn, client, alias, after_load=lambda _, into=load_cpu: into.update(meter.read())
            )
            rebuilds.append(
                {
                    "documents": report.loaded,
                    "seconds": report.load_seconds,
                    "docs_per_second": report.docs_per_second,
                    "total_seconds_with_verify_and_swap": report.total_seconds,
                    "cpu_core_seconds": load_cpu,
                }
            )
            raws.append(raw_bulk_load(dsn, client, f"{alias}_raw", report.cjk, meter=meter))
            print(
                f"{flavour} {repeat}/{repeats}: rebuild {report.docs_per_second:,.0f} docs/s (CPU {load_cpu}),"
                f" raw {raws[-1]['docs_per_second']:,.0f} docs/s (CPU {raws[-1]['cpu_core_seconds']})",
                file=sys.stderr,
                flush=True,
            )
        full = max(rebuilds, key=lambda r: r["docs_per_second"])
        raw = max(raws, key=lambda r: r["docs_per_second"])
        return {
            "engine": f"{flavour} {info['version']}",
            "startup_seconds": info["startup_seconds"],
            "warm_up_documents": warm_up["documents"],
            "cjk_subfield": report.cjk,
            "full_rebuild": {**full, "all_docs_per_second": [r["docs_per_second"] for r in rebuilds]},
            "raw_bulk": {**raw, "all_docs_per_second": [r["docs_per_second"] for r in raws]},
            "rebuild_vs_raw": round(full["docs_per_second"] / raw["docs_per_second"], 2),
            "engine_cpu_share": _engine_cpu_share(full["cpu_core_seconds"]),
            "change_to_searchable": latency(dsn, client, alias, samples, tick_s=1.0, lag_s=1.0),
        }
    finally:
        launcher.stop(home)
        shutil.rmtree(home, ignore_errors=True)  # a million documents' index, no longer needed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="elasticsearch,opensearch")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2, help="rebuild/raw pairs per engine (best of each)")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-search-pg-"))
    pg = postgres.start(home)
    try:
        migrate.apply(pg["dsn"], log=lambda *_: None)
        started = time.monotonic()
        generate(pg["dsn"], args.rows)
        results = {
            "rows": args.rows,
            "generate_seconds": round(time.monotonic() - started, 1),
            "machine": f"{os.cpu_count()} cores",
            "engines": [
                bench_engine(f, pg, args.rows, args.samples, args.repeats) for f in args.engines.split(",")
            ],
        }
    finally:
        postgres.stop(home)
        shutil.rmtree(home, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# Search benchmark ({args.rows:,} conversations, {results['machine']})",
        "",
        "| engine | full rebuild docs/s | raw bulk docs/s | ratio (goal >= 0.7) | change -> searchable p50 / p95 |",
        "|---|---|---|---|---|",
    ]
    for r in results["engines"]:
        lat = r["change_to_searchable"]
        lines.append(
            f"| {r['engine']} | {r['full_rebuild']['docs_per_second']:,} | {r['raw_bulk']['docs_per_second']:,} "
            f"| {r['rebuild_vs_raw']} | {lat['p50_seconds']} s / {lat['p95_seconds']} s |"
        )
    lines += [
        "",
        "Latency: sensor tick 1 s, cursor lag 1 s, refresh 1 s (production sensor default: 300 s).",
        "",
        "CPU core-seconds of the best runs (engine / PostgreSQL / this Python process), and the engine's",
        "share of the rebuild's CPU, engine / (engine + PostgreSQL + Python): about the best ratio when",
        "every core is busy in both runs, if the engine spent the same CPU per document in both (it does not",
        "quite: its CPU per million documents varies from run to run).",
        "",
        "| engine | full rebuild | raw bulk | engine share of rebuild CPU |",
        "|---|---|---|---|",
    ]
    for r in results["engines"]:
        rebuild_cpu, raw_cpu = r["full_rebuild"]["cpu_core_seconds"], r["raw_bulk"]["cpu_core_seconds"]
        lines.append(
            f"| {r['engine']} | {rebuild_cpu['engine']} / {rebuild_cpu['postgres']} / {rebuild_cpu['python']} "
            f"| {raw_cpu['engine']} / {raw_cpu['postgres']} / {raw_cpu['python']} | {r['engine_cpu_share']} |"
        )
    lines.append("")
    (RESULTS / "search.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
