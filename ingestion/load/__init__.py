"""Landing files -> validated rows in PostgreSQL, exactly once (issue 3).

Plain Python, no Dagster: the Dagster assets, the sensor and ``funnelhouse ingest`` all call
:func:`ingestion.load.pipeline.ingest_files`, so every path into the database is the same code.

``landing``  where files are and what they are (name, format, checksum);
``readers``  streaming row-numbered chunks of text values out of CSV / JSONL / Parquet;
``validate`` the landing contract as great-expectations expectations, run chunk by chunk;
``validate_rules``, ``validate_patterns``, ``validate_numbers``, ``validate_calendar_json`` its parts:
           the rules per column, the text patterns and PostgreSQL's limits, numbers as numeric reads
           them, calendar dates and JSON as jsonb takes them;
``loader``   one transaction per file: COPY into staging, reference checks, merge by natural key;
``chunk_writer`` a validated chunk as COPY input and quarantined rows, and the thread writing it;
``failures`` the errors that fail one file, and what a failed file's error says to do;
``merge_sql`` the SQL of a table's load (staging, checks, merge), from its contract and the catalog;
``partitions`` the month partitions a file's rows need, made before its transaction;
``messages`` what reasons and errors say about loading a file again, and a big file's progress lines;
``ledger``   the bookkeeping tables that make a file load exactly once.
"""
