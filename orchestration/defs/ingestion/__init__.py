"""Ingestion in Dagster: ``crm/<table>`` assets, the landing sensor and the ``crm_ingest`` job.

Resource keys are ``postgres`` and ``landing_zone``; both resolve their address at run time.
"""
