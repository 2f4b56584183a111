pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.clickhouse", "tests.fixtures.warehouse"]
