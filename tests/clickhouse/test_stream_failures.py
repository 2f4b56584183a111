"""A failure of the server's own code in the middle of a streamed answer ends it as ClickHouse does.

The engine's mid-stream errors are covered in ``test_http_protocol``; this is the other kind, a Python
exception after the status line went out. Such failures cannot be provoked through SQL, so this module
runs the real server in its own process with one fault added: a SELECT of a column named
``fail_after_first_block`` raises ``RuntimeError`` after its first block has been sent.
"""

from __future__ import annotations

import http.client

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import StreamFailureError

from tests.fixtures.clickhouse import server_process

FAILING_SELECT = "SELECT number AS fail_after_first_block FROM numbers(100000) SETTINGS max_block_size = 1000"
_SERVER_WITH_FAULT = """
import sys
from devstack.clickhouse import __main__ as server_main, engine

original_stream = engine.EngineConnection.stream

def stream(self, sql, output_format, params):
    chunks = original_stream(self, sql, output_format, params)
    if "fail_after_first_block" not in sql:
        return chunks

    def failing():
        yield next(chunks)
        chunks.close()
        raise RuntimeError("injected failure after the first block")

    return failing()

engine.EngineConnection.stream = stream
sys.exit(server_main.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def faulty_server(tmp_path_factory):
    store = tmp_path_factory.mktemp("clickhouse-fault") / "store"
    with server_process(["-c", _SERVER_WITH_FAULT], store, 18123) as port:
        yield port


def test_raw_http_sees_the_tagged_trailer_and_no_second_status_line(faulty_server):
    connection = http.client.HTTPConnection("127.0.0.1", faulty_server, timeout=60)
    try:
        connection.request("POST", "/", body=FAILING_SELECT.encode())
        response = connection.getresponse()
        body = response.read()  # a status line inside the chunked body would make this fail to parse
    finally:
        connection.close()
    tag = response.getheader("X-ClickHouse-Exception-Tag")
    assert response.status == 200 and tag
    assert b"HTTP/1.1" not in body
    assert body.startswith(b"0\n1\n2\n")  # the first block did arrive before the failure
    assert f"__exception__\r\n{tag}\r\nCode: 1001. DB::Exception: RuntimeError: injected".encode() in body
    assert body.endswith(f"{tag}\r\n__exception__\r\n".encode())


def test_clickhouse_connect_raises_and_its_next_query_is_clean(faulty_server):
    # (query() waits for the end of the query, which buffers the answer: streams are what can fail midway)
    client = clickhouse_connect.get_client(host="127.0.0.1", port=faulty_server, username="default")
    try:
        with (
            pytest.raises(StreamFailureError, match="injected failure"),
            client.query_row_block_stream(FAILING_SELECT) as stream,
        ):
            for _ in stream:
                pass
        assert client.query("SELECT 'clean' AS c").result_rows == [("clean",)]
    finally:
        client.close()
