"""KPI reports for managers: mart queries, charts, HTML/PDF rendering, MIME, SMTP delivery, a ledger.

Plain Python with no Dagster imports: ``pipeline.produce_reports`` is what the Dagster assets,
the ``funnelhouse report`` command and the benchmark all call.
"""
