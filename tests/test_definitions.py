"""The whole Dagster code location loads, as `dagster dev -w workspace.yaml` would load it."""

import dagster as dg

from orchestration.definitions import defs


def test_code_location_loads():
    repository = defs.get_repository_def()
    assert isinstance(defs, dg.Definitions)
    # Resolving every job forces asset graphs, selections and resources to be consistent.
    for job in repository.get_all_jobs():
        assert job.name
