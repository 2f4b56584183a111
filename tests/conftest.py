pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.clickhouse",
    "tests.fixtures.warehouse",
    # Registered once for the whole suite: a session fixture imported into two test packages would be
    # two fixtures, each starting its own search engine.
    "tests.fixtures.search",
]
