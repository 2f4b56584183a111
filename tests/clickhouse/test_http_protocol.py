"""The HTTP interface at the wire level: what curl, proxies and hand-written clients see."""

from __future__ import annotations

import gzip
import json
import uuid
import zlib

import lz4.frame
import pytest
import zstandard

from devstack.clickhouse import compressed_blocks, native_blocks
from tests.clickhouse.conftest import TEST_DATABASE, basic_auth


def test_ping_and_root_answer_ok_without_credentials(raw):
    assert raw.request("GET", path="/ping", auth=False)[::2] == (200, b"Ok.\n")
    assert raw.request("GET", path="/", auth=False)[::2] == (200, b"Ok.\n")
    assert raw.request("GET", path="/replicas_status", auth=False)[::2] == (200, b"Ok.\n")


def test_get_select_and_post_json_on_one_keep_alive_connection(raw, clickhouse_server):
    status, response, body = raw.request(
        "GET", params={"query": "SELECT version()", "wait_end_of_query": "1"}
    )
    assert status == 200 and body.decode().startswith("26.9")
    assert response.getheader("X-ClickHouse-Timezone")
    assert response.getheader("X-ClickHouse-Query-Id")
    assert json.loads(response.getheader("X-ClickHouse-Summary"))["read_rows"] == "1"
    socket_before = raw.connection.sock
    status, response, body = raw.request(body=b"SELECT 1 AS x, 'a' AS y FORMAT JSON")
    assert raw.connection.sock is socket_before, "the connection was not kept alive"
    answer = json.loads(body)
    assert answer["data"] == [{"x": 1, "y": "a"}]
    assert response.getheader("X-ClickHouse-Format") == "JSON"
    assert response.getheader("Content-Type").startswith("application/json")


def test_the_timezone_header_names_the_sessions_zone(raw):
    """As ClickHouse does: clients convert zone-less values to the zone this header names, so a
    request's session_timezone must be the one named, streamed or not."""
    for params in ({"wait_end_of_query": "1"}, {}):
        status, response, body = raw.request(
            "GET", params={"query": "SELECT timezone()", "session_timezone": "Asia/Shanghai", **params}
        )
        assert (status, body) == (200, b"Asia/Shanghai\n")
        assert response.getheader("X-ClickHouse-Timezone") == "Asia/Shanghai"
    status, response, body = raw.request("GET", params={"query": "SELECT timezone()"})
    assert response.getheader("X-ClickHouse-Timezone") == body.decode().strip()


def test_get_refuses_writes_with_code_164(raw):
    status, response, body = raw.request(
        "GET", params={"query": "CREATE TABLE nope (a Int8) ENGINE = Memory"}
    )
    assert status >= 400
    assert response.getheader("X-ClickHouse-Exception-Code") == "164"
    assert b"method POST is required" in body


def test_errors_carry_clickhouse_code_status_and_text(raw):
    status, response, body = raw.request(body=b"SELECT * FROM no_such_table")
    assert status == 404
    assert response.getheader("X-ClickHouse-Exception-Code") == "60"
    assert body.startswith(b"Code: 60. DB::Exception:") and b"(UNKNOWN_TABLE)" in body
    status, response, body = raw.request(body=b"SELECT 1; SELECT 2")
    assert (status, response.getheader("X-ClickHouse-Exception-Code")) == (400, "62")
    status, response, _ = raw.request(body=b"SELECT 1", headers=basic_auth("default", "wrong"), auth=False)
    assert (status, response.getheader("X-ClickHouse-Exception-Code")) == (403, "516")
    status, _, _ = raw.request("GET", path="/no/such/handler")
    assert status == 404


def test_chunked_and_compressed_request_bodies(raw):
    table = f"{TEST_DATABASE}.bodies"
    raw.request(
        body=f"CREATE OR REPLACE TABLE {table} (n UInt32, s String) ENGINE = MergeTree ORDER BY n".encode()
    )

    def chunked(data: bytes, size: int = 7):
        for start in range(0, len(data), size):
            yield data[start : start + size]

    rows = "".join(f"{n},row{n}\n" for n in range(1000)).encode()
    statement = f"INSERT INTO {table} FORMAT CSV\n".encode()
    # http.client sends an iterable body with Transfer-Encoding: chunked, one chunk per item.
    assert raw.request(body=chunked(statement + rows))[0] == 200
    encoders = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "zstd": zstandard.ZstdCompressor().compress,
        "lz4": lz4.frame.compress,
    }
    for encoding, compress in encoders.items():
        status, _, body = raw.request(body=compress(statement + rows), headers={"Content-Encoding": encoding})
        assert status == 200, body
    _, _, body = raw.request(body=f"SELECT count(), uniqExact(s) FROM {table}".encode())
    assert body == b"5000\t1000\n"


def test_query_in_url_and_data_in_body(raw):
    table = f"{TEST_DATABASE}.url_and_body"
    raw.request(body=f"CREATE OR REPLACE TABLE {table} (n UInt8) ENGINE = Memory".encode())
    status, response, _ = raw.request(params={"query": f"INSERT INTO {table} FORMAT TSV"}, body=b"1\n2\n3\n")
    assert status == 200
    assert json.loads(response.getheader("X-ClickHouse-Summary"))["written_rows"] == "3"
    assert raw.request(body=f"SELECT sum(n) FROM {table}".encode())[2] == b"6\n"


def test_injection_through_csv_data_is_loaded_as_data(raw):
    table = f"{TEST_DATABASE}.injection"
    raw.request(
        body=f"CREATE OR REPLACE TABLE {table} (id UInt8, note String) ENGINE = MergeTree ORDER BY id".encode()
    )
    payload = f'INSERT INTO {table} FORMAT CSV\n1,"hello\n\nDROP TABLE {table}"\n2,plain\n'.encode()
    assert raw.request(body=payload)[0] == 200
    _, _, body = raw.request(body=f"SELECT note FROM {table} ORDER BY id FORMAT JSONEachRow".encode())
    notes = [json.loads(line)["note"] for line in body.splitlines()]
    assert notes == [f"hello\n\nDROP TABLE {table}", "plain"]


def test_query_parameters_in_url_and_in_multipart_form(raw):
    _, _, body = raw.request(
        params={"query": "SELECT {s:String}, {n:UInt8} + 1", "param_s": "a\\tb", "param_n": "41"}
    )
    assert body == b"a\\tb\t42\n"
    boundary = uuid.uuid4().hex
    long_value = "x" * 5000
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT length({{v:String}})\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="param_v"\r\n\r\n{long_value}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    status, _, body = raw.request(
        body=form, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert (status, body) == (200, b"5000\n")


def test_streamed_result_reports_a_mid_stream_error_in_the_tagged_trailer(raw):
    sql = b"SELECT throwIf(number = 300000) FROM numbers(1000000) SETTINGS max_block_size = 1000"
    status, response, body = raw.request(body=sql)
    tag = response.getheader("X-ClickHouse-Exception-Tag")
    assert status == 200 and tag  # the error came after the headers were sent
    assert body.endswith(f"{tag}\r\n__exception__\r\n".encode())
    assert f"__exception__\r\n{tag}\r\nCode: 395.".encode() in body


def test_a_failed_query_never_leaks_output_into_the_next_answer(raw):
    # Buffered (wait_end_of_query=1) so chDB's query() produces output before failing, in a session so
    # the same chDB connection answers the next request.
    session = {"session_id": str(uuid.uuid4()), "wait_end_of_query": "1"}
    failing = b"SELECT throwIf(number = 900000) FROM numbers(1000000) SETTINGS max_block_size = 1000"
    status, response, _ = raw.request(params=session, body=failing)
    assert status == 500 and response.getheader("X-ClickHouse-Exception-Code") == "395"
    status, _, body = raw.request(params=session, body=b"SELECT 'clean'")
    assert (status, body) == (200, b"clean\n")


# CityHash128 v1.0.2 as ClickHouse's Java client computes it (com.clickhouse.data.ClickHouseCityHash in
# clickhouse-jdbc 0.10.0) for bytes (i * 131 + 7) & 255: lengths through every branch of the function.
CITYHASH128_REFERENCE = {
    0: (4463240938071824939, 4374473821787594281),
    3: (16974963021269220203, 18441203929510139037),
    7: (4478884649629503391, 6438447472850963146),
    9: (10145026930447516245, 1722416858086947508),
    15: (6826251675200753981, 16308474999764036959),
    17: (7430992552450323939, 17333882433007540044),
    33: (9465869794884530688, 12800231764489796075),
    143: (9728638370539751411, 3743980439611413590),
    144: (6460502233415966764, 14273687377299944742),
    145: (2345598513267537649, 15728482517155911335),
    300: (2348080544244686961, 11132661671321142000),
    4097: (6862382319649234395, 8104623413028559064),
}


@pytest.mark.parametrize("length", sorted(CITYHASH128_REFERENCE))
def test_block_checksums_are_clickhouses_cityhash128(length):
    data = bytes((i * 131 + 7) & 255 for i in range(length))
    assert compressed_blocks.cityhash128(data) == CITYHASH128_REFERENCE[length]


def test_compress_1_answers_in_clickhouse_compressed_blocks(raw):
    """The Java client (clickhouse-jdbc, so Metabase) sends compress=1 on every query and reads every
    answer but a 401/403 as LZ4 blocks with checksums; a plain answer fails it ("Invalid LZ4 magic")."""
    compressed = {"compress": "1"}
    status, response, body = raw.request(params=compressed, body=b"SELECT 1 AS x, 'a' AS y FORMAT JSON")
    assert status == 200 and body[16] == compressed_blocks.METHOD_LZ4
    assert json.loads(compressed_blocks.decompress(body))["data"] == [{"x": 1, "y": "a"}]
    assert int(response.getheader("Content-Length")) == len(body)
    # streamed (chunked) answers: every chunk is whole blocks
    status, response, body = raw.request(
        params=compressed, body=b"SELECT number FROM numbers(300000) SETTINGS max_block_size = 10000"
    )
    assert status == 200 and response.getheader("Transfer-Encoding") == "chunked"
    assert compressed_blocks.decompress(body) == "".join(f"{n}\n" for n in range(300000)).encode()
    # errors after authentication are compressed too, with ClickHouse's code header
    status, response, body = raw.request(params=compressed, body=b"SELECT * FROM no_such_table")
    assert (status, response.getheader("X-ClickHouse-Exception-Code")) == (404, "60")
    assert compressed_blocks.decompress(body).startswith(b"Code: 60. DB::Exception:")
    # a refused login is answered plain: the client reads 401/403 bodies uncompressed
    status, response, body = raw.request(
        params=compressed, body=b"SELECT 1", headers=basic_auth("default", "wrong"), auth=False
    )
    assert status == 403 and body.startswith(b"Code: 516. DB::Exception:")
    status, response, body = raw.request(params={"decompress": "1"}, body=b"SELECT 1")
    assert (status, response.getheader("X-ClickHouse-Exception-Code")) == (501, "48")
    # a mid-stream error's trailer is compressed inside the streamed body (last: it ends the connection)
    status, response, body = raw.request(
        params=compressed,
        body=b"SELECT throwIf(number = 300000) FROM numbers(1000000) SETTINGS max_block_size = 1000",
    )
    tag = response.getheader("X-ClickHouse-Exception-Tag")
    assert status == 200 and compressed_blocks.decompress(body).endswith(
        f"{tag}\r\n__exception__\r\n".encode()
    )


def test_the_debug_log_of_a_request_line_hides_a_password_parameter(caplog):
    """Clients may send credentials as URL parameters: at DEBUG the server logs request lines."""
    import logging

    from devstack.clickhouse.server import Handler

    handler = Handler.__new__(Handler)  # (no connection needed to format a log line)
    handler.client_address = ("127.0.0.1", 50000)
    with caplog.at_level(logging.DEBUG, logger="devstack.clickhouse"):
        handler.log_message('"%s" %s %s', "GET /?user=bi&password=s3cret&query=SELECT+1 HTTP/1.1", "200", "-")
    assert "s3cret" not in caplog.text and "password=***&query=SELECT+1" in caplog.text


# Every layout the Native rewriter walks: wrappers, nesting, a dictionary with NULL, a named tuple, a
# geo type, fixed widths, and values that need multi-byte lengths.
NATIVE_COLUMNS = [
    "toLowCardinality(if(number % 3 = 0, NULL, toString(number % 4))) AS lc",
    "[[toString(number)], [], ['x', repeat('y', 200)]] AS nested",
    "map('k', number, 'l', 1) AS m",
    "CAST((number, 'x'), 'Tuple(id UInt64, s Nullable(String))') AS t",
    "CAST((1.5, 2.5), 'Point') AS p",
    "toFixedString('ab', 2) AS fs",
    "CAST('b', 'Enum16(\\'a\\' = 1, \\'b\\' = 2)') AS e",
    "NULL AS nothing",
    "toDecimal128(number, 3) AS dec",
    "toDateTime64(number, 3, 'Asia/Shanghai') AS dt",
]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def test_native_answers_follow_the_clients_protocol_revision(raw):
    """clickhouse-go (Grafana's driver) sends client_protocol_version and reads Native as a server of
    that revision writes it: a block info before each block, a serialization byte after each type.
    Oracle: each column queried alone, in chDB's own (revision 0) layout."""
    rows = 7
    expected = [native_blocks.BLOCK_INFO, _varint(len(NATIVE_COLUMNS)), _varint(rows)]
    for column in NATIVE_COLUMNS:
        status, _, alone = raw.request(
            params={"default_format": "Native"}, body=f"SELECT {column} FROM numbers({rows})".encode()
        )
        assert status == 200 and alone[:2] == b"\x01\x07", alone
        name_and_type_end = 2 + 1 + alone[2]  # name (short)
        name_and_type_end += 1 + alone[name_and_type_end]  # type (< 128 bytes)
        expected += [alone[2:name_and_type_end], b"\x00", alone[name_and_type_end:]]
    query = f"SELECT {', '.join(NATIVE_COLUMNS)} FROM numbers({rows})".encode()
    for waiting in ("1", "0"):  # buffered and streamed answers alike
        status, response, body = raw.request(
            params={
                "default_format": "Native",
                "client_protocol_version": "54460",
                "wait_end_of_query": waiting,
            },
            body=query,
        )
        assert (status, response.getheader("X-ClickHouse-Format")) == (200, "Native")
        assert body == b"".join(expected)
    # a streamed answer of many blocks: each one rewritten
    status, _, body = raw.request(
        params={"default_format": "Native", "client_protocol_version": "54460"},
        body=b"SELECT number FROM numbers(3000) SETTINGS max_block_size = 1000",
    )
    block = native_blocks.BLOCK_INFO + b"\x01\xe8\x07\x06number\x06UInt64\x00"
    assert body.count(block) == 3 and len(body) == 3 * (len(block) + 8000)
    # without it (curl, clickhouse-connect), Native stays as it was
    status, _, body = raw.request(params={"default_format": "Native"}, body=b"SELECT 1 AS a")
    assert body == b"\x01\x01\x01a\x05UInt8\x01"


def test_a_native_column_the_rewriter_cannot_walk_is_refused_clearly(raw):
    status, response, body = raw.request(
        params={"default_format": "Native", "client_protocol_version": "54460"},
        body=b"SELECT 1::Variant(UInt8, String) AS v",
    )
    assert (status, response.getheader("X-ClickHouse-Exception-Code")) == (501, "48")
    assert b"cannot write columns of type Variant in Native" in body


def test_compress_1_follows_network_compression_method_also_for_the_readonly_user(raw, clickhouse_server):
    """clickhouse-go sends network_compression_method (LZ4 or ZSTD) with compress=1. It chooses the
    answer's block compression; chDB's readonly=1 would refuse it as a setting change."""
    reader = basic_auth(clickhouse_server["readonly_user"], clickhouse_server["readonly_password"])
    for method, byte in (("LZ4", compressed_blocks.METHOD_LZ4), ("ZSTD", compressed_blocks.METHOD_ZSTD)):
        status, _, body = raw.request(
            params={
                "compress": "1",
                "network_compression_method": method,
                "network_zstd_compression_level": "3",
            },
            body=b"SELECT number FROM numbers(100000)",
            headers=reader,
            auth=False,
        )
        assert (status, body[16]) == (200, byte), body[:200]
        assert compressed_blocks.decompress(body) == "".join(f"{n}\n" for n in range(100000)).encode()
    status, response, _ = raw.request(
        params={"compress": "1", "network_compression_method": "Deflate_qpl"}, body=b"SELECT 1"
    )
    assert response.getheader("X-ClickHouse-Exception-Code") == "89"
    # a level zstd does not take is a clear error (in compressed blocks, as the client asked), not a cut connection
    status, response, body = raw.request(
        params={
            "compress": "1",
            "network_compression_method": "zstd",
            "network_zstd_compression_level": "99",
        },
        body=b"SELECT 1",
    )
    assert (status, response.getheader("X-ClickHouse-Exception-Code")) == (400, "36")
    assert b"network_zstd_compression_level must be from 1 to 22" in compressed_blocks.decompress(body)


def test_the_readonly_user_may_narrow_a_query_with_grafanas_settings_only(raw, clickhouse_server):
    """Grafana's plugin sends max_execution_time (from its query timeout) and limit (its row limit)
    with every query; a real server lets a readonly=1 user change them with CHANGEABLE_IN_READONLY."""
    reader = basic_auth(clickhouse_server["readonly_user"], clickhouse_server["readonly_password"])
    status, _, body = raw.request(
        params={"max_execution_time": "65", "limit": "2"},
        body=b"SELECT number FROM numbers(5)",
        headers=reader,
        auth=False,
    )
    assert (status, body) == (200, b"0\n1\n")
    # In a session they apply to their request only, as on a real server: a request without them, or
    # with other values, is not held to the first one's; what the session chose itself (USE) stays.
    session_id = f"grafana-{uuid.uuid4()}"

    def in_session(sql: bytes, **settings: str) -> tuple[int, bytes]:
        status, _, body = raw.request(
            params={"session_id": session_id, **settings}, body=sql, headers=reader, auth=False
        )
        return status, body

    five = b"SELECT number FROM numbers(5)"
    for _ in range(2):  # the request that opens the session, and one in it
        assert in_session(five, max_execution_time="65", limit="1") == (200, b"0\n")
    assert in_session(five) == (200, b"0\n1\n2\n3\n4\n")
    assert in_session(b"SELECT getSetting('max_execution_time')", max_execution_time="30") == (200, b"30\n")
    assert in_session(b"USE system")[0] == 200
    assert in_session(b"SELECT currentDatabase()", max_execution_time="20") == (200, b"system\n")
    assert in_session(b"SELECT getSetting('max_execution_time')") == (200, b"0\n")
    for refused in (
        {"max_result_rows": "1"},
        {"max_execution_time": "65", "max_memory_usage": "1"},
    ):
        status, response, body = raw.request(params=refused, body=b"SELECT 1", headers=reader, auth=False)
        assert response.getheader("X-ClickHouse-Exception-Code") == "164", (refused, body)
    status, response, body = raw.request(
        params={"max_execution_time": "65"},
        body=b"INSERT INTO system.one VALUES (1)",
        headers=reader,
        auth=False,
    )
    assert response.getheader("X-ClickHouse-Exception-Code") == "164"


@pytest.mark.parametrize(
    "query",
    [
        "SELECT format FROM named_format ORDER BY format DESC",
        "SELECT format AS kind, count() FROM named_format GROUP BY kind",
        "SELECT id FROM named_format WHERE format IN ('pdf') ORDER BY id",
    ],
)
def test_a_column_named_format_is_no_format_clause(raw, database, query):
    """Only ``FORMAT <name>`` ending the query (or before SETTINGS) picks the answer's format: a column
    called ``format`` must not make the server answer in a format named FROM or DESC instead of the
    ``default_format`` the client asked for (clickhouse-connect appends a FORMAT clause of its own,
    other clients do not)."""
    for setup in [
        "CREATE OR REPLACE TABLE named_format (id Int64, format String) ENGINE = MergeTree ORDER BY id",
        "INSERT INTO named_format VALUES (1, 'pdf'), (2, 'mp4')",
    ]:
        assert raw.request(params={"database": database}, body=setup.encode())[0] == 200
    status, response, body = raw.request(
        params={"database": database, "default_format": "JSONEachRow"}, body=query.encode()
    )
    assert status == 200, body
    assert response.getheader("X-ClickHouse-Format") == "JSONEachRow"
    assert all(json.loads(line) for line in body.splitlines())
