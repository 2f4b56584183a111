"""Ingestion benchmark: conversations rows/s of funnelhouse's loader against three other ways in.

One run, in a throwaway stack (its own embedded PostgreSQL):

1. ``funnelhouse generate`` writes a sample; its conversations are tiled (new message ids, same
   values) into landing CSV files of ~5 million rows in all, the landing format ``funnelhouse
   ingest`` reads; the sample's other tables are ingested first so every reference resolves;
2. on an empty ``conversations`` table each time, the same rows are loaded by
   * ``raw COPY``: ``COPY conversations FROM STDIN`` of the same rows pre-validated and with ids
     already resolved (prepared before the clock starts): the practical limit of PostgreSQL;
   * ``funnelhouse``: ``ingestion.load.pipeline.ingest`` on the landing files - reading, great-
     expectations validation, rejects, staging, reference checks and merge, all counted;
   * ``pandas.to_sql``: read the CSV with pandas, map codes to ids, ``DataFrame.to_sql`` (append,
     multi-row INSERTs) into the same table - no validation;
   * ``dlt``: dlt's postgres destination on the same files (Arrow tables, COPY-based csv loader),
     into a dlt-managed table of its own - no validation, no id resolution - once with
     ``write_disposition="merge"`` on the message id (the idempotent mode, funnelhouse's guarantee)
     and once with ``append`` (a bare bulk load);
3. rows/s of each and the ratios go to bench/results/ingest.json and .md.
   Goals: funnelhouse >= 0.6x raw COPY, and faster than dlt.

Usage: python bench/ingest.py [--rows 5000000] [--slow-rows 200000] [--keep]
``--slow-rows`` caps the rows given to pandas.to_sql (far slower than the others; its rows/s is
measured on that many rows and reported as such).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from devstack import postgres  # noqa: E402
from ingestion.contracts import CONTRACTS  # noqa: E402
from ingestion.generate import generate  # noqa: E402
from ingestion.load.landing import discover  # noqa: E402
from ingestion.load.pipeline import ingest  # noqa: E402
from ingestion.schema import migrate  # noqa: E402

RESULTS = REPO / "bench" / "results"
ROWS_PER_FILE = 1_000_000
CONVERSATION_COLUMNS = CONTRACTS["conversations"].landing_columns
REFERENCES = {
    "customer_code": ("customers", "customer_code", "customer_id"),
    "employee_code": ("employees", "employee_code", "employee_id"),
    "script_used_code": ("scripts", "script_code", "script_used_id"),
}
JSON_COLUMNS = [c.name for c in CONTRACTS["conversations"].columns if c.kind == "json"]
CSV_WRITE = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- data ------------------------------------------------------------------------------------------------
def sample_conversations(sample: Path) -> pa.Table:
    tables = [pq.read_table(p) for p in sorted(sample.glob("conversations__*.parquet"))]
    table = pa.concat_tables(tables) if tables else pa.table({})
    return pa.table(
        {
            name: pc.cast(table[name], pa.string())
            if name != "sent_at"
            else pc.strftime(table[name], "%Y-%m-%d %H:%M:%S")
            for name in CONVERSATION_COLUMNS
        }
    )


def write_landing(base: pa.Table, rows: int, out: Path) -> list[Path]:
    """``rows`` conversations tiled from the sample, as landing CSVs of ROWS_PER_FILE rows."""
    out.mkdir(parents=True, exist_ok=True)
    paths, written, file_index, pieces = [], 0, 0, 0
    while written < rows:
        path = out / f"conversations__bench{file_index:03d}.csv"
        with open(path, "wb") as handle:
            handle.write((",".join(CONVERSATION_COLUMNS) + "\n").encode())
            in_file = 0
            while in_file < ROWS_PER_FILE and written < rows:
                take = min(base.num_rows, ROWS_PER_FILE - in_file, rows - written)
                piece = base.slice(0, take)
                ids = pc.binary_join_element_wise(piece["source_message_id"], f"_t{pieces}", "")
                piece = piece.set_column(0, "source_message_id", ids)
                pieces += 1
                pa_csv.write_csv(piece, handle, CSV_WRITE)
                in_file += take
                written += take
        paths.append(path)
        file_index += 1
    return paths


def resolved_copy_data(dsn: str, landing: list[Path]) -> tuple[list[bytes], list[str]]:
    """The landing rows as ``conversations`` rows (codes replaced by ids): the raw-COPY input."""
    with psycopg.connect(dsn) as conn:
        ids = {
            landing_column: dict(conn.execute(f"SELECT {key}, id FROM {table}").fetchall())
            for landing_column, (table, key, _) in REFERENCES.items()
        }
    columns = [c for c in CONVERSATION_COLUMNS if c not in REFERENCES] + [v[2] for v in REFERENCES.values()]
    payloads = []
    for path in landing:
        table = pa_csv.read_csv(
            path,
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(CONVERSATION_COLUMNS, pa.string()), strings_can_be_null=True
            ),
        )
        for landing_column in REFERENCES:
            codes = table[landing_column].to_pylist()
            mapping = ids[landing_column]
            table = table.append_column(
                REFERENCES[landing_column][2], pa.array([mapping.get(c) for c in codes], pa.int64())
            )
        sink = io.BytesIO()
        pa_csv.write_csv(table.select(columns), sink, CSV_WRITE)
        payloads.append(sink.getvalue())
    return payloads, columns


# -- methods -------------------------------------------------------------------------------------------------
def reset(dsn: str, months: tuple[str, str]) -> None:
    """An empty conversations table whose partitions already exist (no method pays for creating them)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE conversations CASCADE")
        conn.execute("SELECT ensure_conversation_partitions(%s::date, %s::date)", months)
        conn.execute("DELETE FROM funnelhouse.ingest_files WHERE table_name = 'conversations'")
        conn.execute("DROP SCHEMA IF EXISTS bench_dlt CASCADE")
        conn.execute("CHECKPOINT")


def run_raw_copy(dsn: str, payloads: list[bytes], columns: list[str]) -> None:
    with psycopg.connect(dsn) as conn:
        for payload in payloads:
            with conn.cursor().copy(
                f"COPY conversations ({', '.join(q(c) for c in columns)}) FROM STDIN (FORMAT csv)"
            ) as copy:
                view = memoryview(payload)
                for start in range(0, len(view), 1 << 20):
                    copy.write(view[start : start + (1 << 20)])
            conn.commit()


def run_funnelhouse(dsn: str, landing: list[Path]) -> dict:
    results = ingest(dsn, discover([str(p) for p in landing]))
    failed = [r for r in results if not r.ok or r.rows_rejected]
    if failed:
        raise RuntimeError(f"funnelhouse did not load cleanly: {[(r.file.name, r.error) for r in failed]}")
    steps: dict[str, float] = {}
    for r in results:
        for step, seconds in r.seconds_by_step.items():
            steps[step] = steps.get(step, 0.0) + seconds
    return {k: round(v, 1) for k, v in steps.items()}


def run_to_sql(dsn: str, landing: list[Path], limit: int) -> int:
    import pandas as pd
    import sqlalchemy
    from sqlalchemy.dialects.postgresql import JSONB

    engine = sqlalchemy.create_engine(dsn.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        ids = {
            landing_column: dict(conn.exec_driver_sql(f"SELECT {key}, id FROM {table}").fetchall())
            for landing_column, (table, key, _) in REFERENCES.items()
        }
    done = 0
    for path in landing:
        for frame in pd.read_csv(path, chunksize=100_000, dtype=str, keep_default_na=False, na_values=[""]):
            frame = frame.head(limit - done)
            for landing_column, (_, _, db_column) in REFERENCES.items():
                frame[db_column] = frame.pop(landing_column).map(ids[landing_column]).astype("Int64")
            for column in JSON_COLUMNS:
                frame[column] = frame[column].map(json.loads, na_action="ignore")
            frame["is_反问"] = frame["is_反问"].map({"true": True, "false": False})
            frame["quality_score"] = pd.to_numeric(frame["quality_score"]).astype("Int64")
            for column in ("sent_at", "created_at"):
                frame[column] = pd.to_datetime(frame[column])
            frame.to_sql(
                "conversations",
                engine,
                if_exists="append",
                index=False,
                method="multi",
                chunksize=2_000,
                dtype=dict.fromkeys(JSON_COLUMNS, JSONB),
            )
            done += len(frame)
            if done >= limit:
                return done
    return done


def run_dlt(dsn: str, landing: list[Path], workdir: Path, disposition: str) -> None:
    """dlt, ``append`` (a bare table, no guarantee against duplicates) or ``merge`` on the message id
    (idempotent like funnelhouse: re-running the files changes nothing)."""
    import dlt

    hints = {"primary_key": "source_message_id"} if disposition == "merge" else {}

    @dlt.resource(name="conversations", write_disposition=disposition, **hints)
    def conversations():
        for path in landing:
            reader = pa_csv.open_csv(
                path,
                convert_options=pa_csv.ConvertOptions(
                    column_types=dict.fromkeys(CONVERSATION_COLUMNS, pa.string()), strings_can_be_null=True
                ),
            )
            for batch in reader:
                yield pa.Table.from_batches([batch])

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_ingest_{disposition}",
        destination=dlt.destinations.postgres(credentials=dsn),
        dataset_name="bench_dlt",
        pipelines_dir=str(workdir / "dlt"),
    )
    info = pipeline.run(conversations(), loader_file_format="csv")
    info.raise_on_failed_jobs()


def month_range(landing: Path) -> tuple[str, str]:
    sent = pa_csv.read_csv(
        landing,
        convert_options=pa_csv.ConvertOptions(
            include_columns=["sent_at"], column_types={"sent_at": pa.string()}
        ),
    )["sent_at"]
    bounds = pc.min_max(sent)
    return bounds["min"].as_py()[:10], bounds["max"].as_py()[:10]


def count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def timed(label: str, action) -> tuple[float, object]:
    print(f"-- {label} ...", flush=True)
    start = time.perf_counter()
    value = action()
    seconds = time.perf_counter() - start
    print(f"   {seconds:.1f} s", flush=True)
    return seconds, value


# -- main ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--slow-rows", type=int, default=200_000, help="rows given to pandas.to_sql")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway stack and files")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="funnelhouse-bench-ingest-"))
    os.environ["FUNNELHOUSE_HOME"] = str(home)
    info = postgres.start(home)
    dsn = info["dsn"]
    try:
        migrate.apply(dsn, log=lambda *_: None)
        sample = home / "sample"
        generate(sample, args.customers, seed=3)
        others = [
            f for f in discover([str(sample)]) if f.table not in ("conversations", "conversation_events")
        ]
        assert all(r.ok for r in ingest(dsn, others)), "sample tables did not load"
        landing = write_landing(sample_conversations(sample), args.rows, home / "landing")
        payloads, columns = resolved_copy_data(dsn, landing)
        figures: dict[str, dict] = {}

        months = month_range(landing[0])
        reset(dsn, months)
        seconds, _ = timed("raw COPY", lambda: run_raw_copy(dsn, payloads, columns))
        figures["raw COPY"] = {"rows": count(dsn, "conversations"), "seconds": seconds}
        payloads.clear()  # free the raw-COPY input before the other methods run

        reset(dsn, months)
        seconds, steps = timed("funnelhouse", lambda: run_funnelhouse(dsn, landing))
        figures["funnelhouse"] = {"rows": count(dsn, "conversations"), "seconds": seconds, "steps": steps}

        for disposition in ("merge", "append"):
            reset(dsn, months)
            seconds, _ = timed(f"dlt ({disposition})", lambda d=disposition: run_dlt(dsn, landing, home, d))
            figures[f"dlt ({disposition})"] = {
                "rows": count(dsn, "bench_dlt.conversations"),
                "seconds": seconds,
            }

        reset(dsn, months)
        seconds, _ = timed("pandas.to_sql", lambda: run_to_sql(dsn, landing, args.slow_rows))
        figures["pandas.to_sql"] = {"rows": count(dsn, "conversations"), "seconds": seconds}
    finally:
        postgres.stop(home)
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    for figure in figures.values():
        figure["rows_per_s"] = round(figure["rows"] / figure["seconds"])
        figure["seconds"] = round(figure["seconds"], 1)
    raw = figures["raw COPY"]["rows_per_s"]
    ratios = {name: round(f["rows_per_s"] / raw, 3) for name, f in figures.items()}
    summary = {
        "rows": args.rows,
        "files": len(landing),
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, embedded PostgreSQL 18",
        "methods": figures,
        "vs_raw_copy": ratios,
        "funnelhouse_vs_dlt": {
            name: round(figures["funnelhouse"]["rows_per_s"] / f["rows_per_s"], 2)
            for name, f in figures.items()
            if name.startswith("dlt")
        },
        "goals": {
            "funnelhouse >= 0.6x raw COPY": ratios["funnelhouse"] >= 0.6,
            "funnelhouse faster than dlt (merge, the same exactly-once guarantee)": figures["funnelhouse"][
                "rows_per_s"
            ]
            > figures["dlt (merge)"]["rows_per_s"],
            "funnelhouse faster than dlt (append, a bare table)": figures["funnelhouse"]["rows_per_s"]
            > figures["dlt (append)"]["rows_per_s"],
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "ingest.md").write_text(markdown(summary))
    print(markdown(summary))


def markdown(summary: dict) -> str:
    lines = [
        "# Ingestion benchmark: conversations",
        "",
        f"{summary['rows']:,} generated conversations in {summary['files']} landing CSV files "
        f"({summary['machine']}). Each method starts from an empty table.",
        "",
        "| method | rows | seconds | rows/s | x raw COPY |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, figure in summary["methods"].items():
        lines.append(
            f"| {name} | {figure['rows']:,} | {figure['seconds']} | {figure['rows_per_s']:,} "
            f"| {summary['vs_raw_copy'][name]} |"
        )
    steps = summary["methods"]["funnelhouse"].get("steps", {})
    lines += [
        "",
        "funnelhouse / dlt: "
        + ", ".join(f"{k} {v}x" for k, v in summary["funnelhouse_vs_dlt"].items())
        + ". Goals: "
        + ", ".join(f"{goal}: {'met' if met else 'NOT met'}" for goal, met in summary["goals"].items())
        + ".",
        "",
        "funnelhouse's seconds by step (reading thread: read, validate, prepare = validate + COPY text, "
        "wait for database; writer thread, at the same time: db: copy, db: checks, db: merge): "
        + ", ".join(f"{k} {v}" for k, v in steps.items())
        + ".",
        "raw COPY loads pre-validated rows with ids already resolved into the real table (its 8 indexes, "
        "3 foreign keys and updated_at trigger); funnelhouse validates every row with great-expectations, "
        "quarantines rejects, resolves ids and merges idempotently into that same table; pandas.to_sql "
        "validates nothing; dlt validates nothing, resolves no ids and writes a table of its own without "
        "those indexes, keys and trigger - 'merge' (keyed on the message id) is its idempotent mode, "
        "'append' a plain bulk load that duplicates rows when files are loaded again.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
