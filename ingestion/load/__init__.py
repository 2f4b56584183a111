"""Landing files -> validated rows in PostgreSQL, exactly once (issue 3).

Plain Python, no Dagster: the Dagster assets, the sensor and ``funnelhouse ingest`` all call
:func:`ingestion.load.pipeline.ingest_files`, so every path into the database is the same code.

``landing``  where files are and what they are (name, format, checksum);
``readers``  streaming row-numbered chunks of text values out of CSV / JSONL / Parquet;
``validate`` the landing contract as great-expectations expectations, run chunk by chunk;
``loader``   one transaction per file: COPY into staging, reference checks, merge by natural key;
``ledger``   the bookkeeping tables that make a file load exactly once.
"""
