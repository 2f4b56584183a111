from tests.fixtures.search import search_alias, search_client, search_engine  # noqa: F401
