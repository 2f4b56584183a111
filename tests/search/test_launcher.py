import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from devstack import ports, state
from devstack.search import java, launcher
from tests.test_devstack_state import ignores_sigterm


def test_engine_is_recorded_and_start_is_idempotent(search_engine):
    home = Path(search_engine["state_home"])
    recorded = launcher.status(home)
    assert recorded["pid"] == search_engine["pid"]
    assert recorded["flavour"] == search_engine["flavour"]
    again = launcher.start(home, search_engine["flavour"])
    assert again["pid"] == search_engine["pid"] and again["url"] == search_engine["url"]
    other = "opensearch" if search_engine["flavour"] == "elasticsearch" else "elasticsearch"
    with pytest.raises(RuntimeError, match="already runs"):
        launcher.start(home, other)


def test_missing_jvm_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(java, "JVM_ROOTS", (tmp_path,))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_JAVA_HOME", raising=False)
    with pytest.raises(
        java.NoSuitableJdk, match=r"OpenSearch 2\.19\.6 needs Java 17 to 21; found no JDK at all"
    ):
        java.choose("OpenSearch 2.19.6", 17, 21)


def test_embedded_engine_runs_the_version_the_launcher_names(search_engine, search_client):
    """The default Elasticsearch is a 9.x server, spoken to natively by the pinned 9.x client."""
    from devstack.search import elasticsearch, opensearch

    expected = elasticsearch.version() if search_engine["flavour"] == "elasticsearch" else opensearch.VERSION
    assert search_client.version == expected
    if search_engine["flavour"] == "elasticsearch" and "FUNNELHOUSE_ES_VERSION" not in os.environ:
        assert search_client.version.startswith("9.")
        assert search_client.raw.transport.server_major == 9


def test_no_jdk_is_reported_before_the_engine_is_fetched(monkeypatch, tmp_path):
    monkeypatch.setattr(java, "JVM_ROOTS", (tmp_path,))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_JAVA_HOME", raising=False)
    for flavour, engine in launcher.FLAVOURS.items():
        monkeypatch.setattr(engine, "prepare", lambda: pytest.fail("fetched before the JDK was checked"))
        with pytest.raises(java.NoSuitableJdk, match="found no JDK at all"):
            launcher.start(tmp_path / "home", flavour)
    assert launcher.status(tmp_path / "home") is None
    assert issubclass(java.NoSuitableJdk, launcher.START_ERRORS)


def test_a_recorded_engine_that_runs_but_never_answers_is_not_started_twice(monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    hung = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state.record_service(
            launcher.SERVICE,
            {
                "flavour": "elasticsearch",
                "url": "http://127.0.0.1:9",
                "pid": hung.pid,
                "log": str(tmp_path / "log"),
            },
            home,
        )
        monkeypatch.setattr(launcher, "START_TIMEOUT_S", 0.5)
        monkeypatch.setattr(
            launcher.elasticsearch, "prepare", lambda: pytest.fail("a second engine was started")
        )
        with pytest.raises(launcher.EngineDidNotStart, match="not healthy"):
            launcher.start(home, "elasticsearch")
    finally:
        hung.kill()
        hung.wait()


class _OtherStacksEngine(BaseHTTPRequestHandler):
    """Answers like a healthy engine of another stack: green, but its node keeps its data elsewhere."""

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        if self.path.startswith("/_cluster/health"):
            body = {"cluster_name": "funnelhouse", "status": "green"}
        else:
            body = {
                "nodes": {"other": {"version": "9.2.0", "settings": {"path": {"data": "/other-stack/data"}}}}
            }
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def other_stacks_ports():
    """An HTTP port answered by another stack's healthy engine and a transport port it listens on."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", state.free_port(launcher.DEFAULT_HTTP_PORT + 400)), _OtherStacksEngine
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as transport:
        transport.bind(("127.0.0.1", state.free_port(launcher.DEFAULT_TRANSPORT_PORT + 400)))
        transport.listen()
        yield server.server_address[1], transport.getsockname()[1]
    server.shutdown()
    server.server_close()


def _found_free_then_taken(monkeypatch, taken: dict[int, list[int | None]]) -> None:
    """The race: each ``taken[preferred]`` in turn (None: the real search) is what the next search for
    ``preferred`` finds free, then the real search goes on; a port so found is yet taken when the engine
    binds it, as when another stack took it in between."""
    queued = {preferred: list(ports_found) for preferred, ports_found in taken.items()}
    real_free_port = state.free_port
    monkeypatch.setattr(
        state,
        "free_port",
        lambda preferred: (queued.get(preferred) or [None]).pop(0) or real_free_port(preferred),
    )
    monkeypatch.delenv("FUNNELHOUSE_SEARCH_PORT", raising=False)
    monkeypatch.setenv("FUNNELHOUSE_SEARCH_HEAP", "512m")


def _our_node_answers(info: dict) -> bool:
    url = f"{info['url']}/_nodes/_local?filter_path=nodes.*.settings.path.data"
    with urllib.request.urlopen(url, timeout=5) as response:
        (node,) = json.loads(response.read())["nodes"].values()
    data = node["settings"]["path"]["data"]  # OpenSearch reports a list, Elasticsearch 9 a string
    return [Path(path).resolve() for path in ([data] if isinstance(data, str) else data)] == [
        Path(info["data"]).resolve()
    ]


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.getpgid(int(entry.name)) == pgid:
                members.append(int(entry.name))
        except ProcessLookupError:
            continue
    return members


@pytest.mark.parametrize("flavour", launcher.FLAVOURS)
def test_a_port_taken_by_another_stack_is_left_to_it_and_the_engine_starts_on_other_ports(
    flavour, other_stacks_ports, monkeypatch, tmp_path
):
    """On a taken HTTP port another stack's healthy engine answers (and must not be adopted); on a taken
    transport port ours cannot bind. Either way ours exits and starts again on ports free by then. (An
    engine start costs 10-40 s, so one start sees both: its first attempt finds the HTTP port taken, its
    second the transport port, its third starts.) Started by a process that ignores SIGTERM (a Dagster
    process started in the background: devstack.state.default_sigterm), the engine's JVMs still stop on
    it: a JVM installs no handler for a signal it inherits ignored, and stopping it waited out the grace."""
    http_port, transport_port = other_stacks_ports
    _found_free_then_taken(
        monkeypatch,
        {
            launcher.DEFAULT_HTTP_PORT: [http_port, None],
            launcher.DEFAULT_TRANSPORT_PORT: [None, transport_port],
        },
    )
    home = tmp_path / "home"
    try:
        ignored_before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            info = launcher.start(home, flavour)
        finally:
            signal.signal(signal.SIGTERM, ignored_before)
        assert not [pid for pid in _group_members(info["pid"]) if ignores_sigterm(pid)]
        assert info["port"] != http_port and info["transport_port"] != transport_port
        assert launcher.status(home)["pid"] == info["pid"] and state.pid_alive(info["pid"])
        assert _our_node_answers(info)
        # Each attempt on a taken port failed on its bind, not on a timeout.
        log = Path(info["log"]).read_text(errors="replace")
        assert ports.PORT_TAKEN in log
        assert f"Failed to bind to 127.0.0.1:{http_port}" in log
        assert f"Failed to bind to 127.0.0.1:{transport_port}" in log
    finally:
        launcher.stop(home)


def test_an_engine_that_cannot_bind_says_why(other_stacks_ports, monkeypatch, tmp_path):
    monkeypatch.setattr(ports, "ATTEMPTS", 1)
    http_port, transport_port = other_stacks_ports
    _found_free_then_taken(
        monkeypatch,
        {launcher.DEFAULT_HTTP_PORT: [http_port], launcher.DEFAULT_TRANSPORT_PORT: [transport_port]},
    )
    home = tmp_path / "home"
    with pytest.raises(launcher.EngineDidNotStart) as failed:
        launcher.start(home, "elasticsearch")
    message = str(failed.value)
    assert "found no free port" in message
    # The engine's own reason, not only the end of a stack trace: which bind failed and why.
    assert f"Failed to bind to 127.0.0.1:{transport_port}" in message
    assert ports.PORT_TAKEN in message
    assert launcher.status(home) is None
