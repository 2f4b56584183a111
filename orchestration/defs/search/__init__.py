"""Placeholder until this domain lands: no definitions yet."""

import dagster as dg

defs = dg.Definitions()
