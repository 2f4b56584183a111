"""Sessions: their own settings, database and temporary tables, isolated from each other and parallel."""

from __future__ import annotations

import threading
import time
import uuid

from tests.clickhouse.conftest import connect


def test_url_settings_apply_to_one_query_but_set_persists(clickhouse_server, raw):
    session = {"session_id": str(uuid.uuid4())}
    probe = b"SELECT getSetting('max_threads'), getSetting('max_block_size')"
    default_threads, default_block = raw.request(params=session, body=probe)[2].split()
    assert raw.request(params={**session, "max_block_size": "123"}, body=probe)[2].split()[1] == b"123"
    assert raw.request(params=session, body=probe)[2].split()[1] == default_block
    raw.request(params=session, body=b"SET max_threads = 3")
    assert raw.request(params={**session, "max_threads": "2"}, body=probe)[2].split()[0] == b"2"
    assert raw.request(params=session, body=probe)[2].split()[0] == b"3"
    other_session = {"session_id": str(uuid.uuid4())}
    assert raw.request(params=other_session, body=probe)[2].split()[0] == default_threads


def test_use_persists_in_the_session_and_database_param_does_not(raw, database):
    session = {"session_id": str(uuid.uuid4())}
    raw.request(params=session, body=f"USE {database}".encode())
    assert raw.request(params=session, body=b"SELECT currentDatabase()")[2] == f"{database}\n".encode()
    answer = raw.request(params={**session, "database": "system"}, body=b"SELECT currentDatabase()")[2]
    assert answer == b"system\n"
    assert raw.request(params=session, body=b"SELECT currentDatabase()")[2] == f"{database}\n".encode()


def test_a_database_param_does_not_outlive_its_request_in_a_session_without_use(raw, database):
    session = {"session_id": str(uuid.uuid4())}
    answer = raw.request(params={**session, "database": database}, body=b"SELECT currentDatabase()")[2]
    assert answer == f"{database}\n".encode()
    assert raw.request(params=session, body=b"SELECT currentDatabase()")[2] == b"default\n"


def test_temporary_tables_are_private_and_expire_with_the_session(raw):
    owner = {"session_id": str(uuid.uuid4()), "session_timeout": "1"}
    assert raw.request(params=owner, body=b"CREATE TEMPORARY TABLE scratch (a UInt8)")[0] == 200
    assert raw.request(params=owner, body=b"INSERT INTO scratch VALUES (7)")[0] == 200
    assert raw.request(params=owner, body=b"SELECT a FROM scratch")[2] == b"7\n"
    stranger = {"session_id": str(uuid.uuid4())}
    status, response, _ = raw.request(params=stranger, body=b"SELECT a FROM scratch")
    assert status == 404 and response.getheader("X-ClickHouse-Exception-Code") == "60"
    time.sleep(3)  # timeout 1 s, the reaper looks every second
    status, response, _ = raw.request(params={**owner, "session_check": "1"}, body=b"SELECT 1")
    assert response.getheader("X-ClickHouse-Exception-Code") == "372"
    status, response, _ = raw.request(params=owner, body=b"SELECT a FROM scratch")
    assert response.getheader("X-ClickHouse-Exception-Code") == "60"


def test_two_sessions_in_parallel_take_about_one_sessions_time(clickhouse_server):
    # A query that holds its session for a fixed time without needing a free core (CI machines are
    # small): if the server serialised sessions (a global lock, the GIL held), two would take twice as long.
    sql = "SELECT sleep(1)"
    clients = [connect(clickhouse_server) for _ in range(2)]
    clients[0].command(sql)  # warm up
    started = time.perf_counter()
    clients[0].command(sql)
    single = time.perf_counter() - started
    threads = [threading.Thread(target=client.command, args=(sql,)) for client in clients]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    parallel = time.perf_counter() - started
    for client in clients:
        client.close()
    assert parallel < 1.6 * single, f"two sessions took {parallel:.2f}s, one took {single:.2f}s"
