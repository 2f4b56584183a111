"""Start, stop and inspect the embedded search engine of a state home.

``start(state_home, flavour)`` checks that a suitable JDK exists, fetches the engine into the
artifact cache on first use, starts it detached (its own session, so `funnelhouse up` can exit and
``stop`` can end the whole process group), waits until the cluster answers yellow or better from our
node (not another stack's engine on the same port), and records it as the ``search`` service in
``services.json``. A node that exits because another stack took its HTTP or transport port after we
found it free starts again on the next free ones (``devstack.ports``). Calling it again while the
engine runs returns the recorded service. What can go wrong on an ordinary machine (no suitable JDK,
no Maven, a failed download, an engine that does not come up) raises one of ``START_ERRORS``, whose
first line says what and how to fix it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType

from devstack import ports, state
from devstack.search import artifacts, elasticsearch, java, opensearch

SERVICE = "search"
FLAVOURS = {"elasticsearch": elasticsearch, "opensearch": opensearch}
DEFAULT_HTTP_PORT = 9200
DEFAULT_TRANSPORT_PORT = 9300
START_TIMEOUT_S = float(os.environ.get("FUNNELHOUSE_SEARCH_START_TIMEOUT", 180))
STOP_TIMEOUT_S = 30.0


class AlreadyRunning(RuntimeError):
    pass


class EngineDidNotStart(RuntimeError):
    """The engine exited while starting or was not healthy in time; the first line names its log."""


# The failures a user can fix (install something, free the state home, read the log), as opposed to bugs.
START_ERRORS = (
    java.NoSuitableJdk,
    artifacts.MissingTool,
    artifacts.FetchFailed,
    AlreadyRunning,
    EngineDidNotStart,
)


def _instance_dir(state_home: Path, flavour: str) -> Path:
    return state_home / "search" / flavour


def _health(url: str, timeout: float = 2.0) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health", timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _healthy(url: str) -> bool:
    health = _health(url)
    return bool(health) and health.get("status") in {"green", "yellow"}


def status(state_home: Path) -> dict | None:
    """The recorded service if its process still runs (not another one that got its pid), else None."""
    return state.running_service(SERVICE, state_home)


def start(state_home: Path, flavour: str = "elasticsearch") -> dict:
    if flavour not in FLAVOURS:
        raise ValueError(f"search flavour must be one of {sorted(FLAVOURS)}, not {flavour!r}")
    running = status(state_home)
    if running:
        if running["flavour"] != flavour:
            raise AlreadyRunning(
                f"{running['flavour']} already runs for {state_home}; `funnelhouse down` first to switch to {flavour}"
            )
        data = _instance_dir(state_home, flavour) / "data"
        if _wait_healthy(running["url"], running["pid"], data, Path(running["log"]), timeout=START_TIMEOUT_S):
            return running
        # Alive but not answering: a second node on the same data directory would only fail on its lock.
        raise EngineDidNotStart(
            f"{flavour} (pid {running['pid']}) runs for {state_home} but is not healthy after "
            f"{START_TIMEOUT_S:.0f}s; `funnelhouse down` stops it; log: {running['log']}"
        )
    engine = FLAVOURS[flavour]
    engine.jdk()  # no suitable JDK: say so before Maven (which needs one too) fails on a download
    prepared = engine.prepare()
    instance = _instance_dir(state_home, flavour)
    instance.mkdir(parents=True, exist_ok=True)
    heap = os.environ.get("FUNNELHOUSE_SEARCH_HEAP", "1g")
    log = instance / "logs" / "stdout.log"
    info = ports.start_on_free_ports(
        lambda: _launch(engine, prepared, instance, heap, log), log, server=flavour, failure=EngineDidNotStart
    )
    state.record_service(SERVICE, info, state_home)
    return info


def _free_ports() -> tuple[int, int]:
    """An HTTP and a transport port, both free now and not the same one."""
    http_port = state.free_port(int(os.environ.get("FUNNELHOUSE_SEARCH_PORT", DEFAULT_HTTP_PORT)))
    transport_port = state.free_port(DEFAULT_TRANSPORT_PORT)
    while transport_port == http_port:
        transport_port = state.free_port(transport_port + 1)
    return http_port, transport_port


def _launch(engine: ModuleType, prepared: Path, instance: Path, heap: str, log: Path) -> dict:
    """One attempt: start a node on ports free now and wait until it answers as ours; raises
    ``EngineDidNotStart`` (having stopped it) if it exits, e.g. on a port taken meanwhile, or stays
    unhealthy."""
    http_port, transport_port = _free_ports()
    argv, env = engine.command(prepared, instance, http_port, transport_port, heap)
    started = time.monotonic()
    with open(log, "ab") as out:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=state.default_sigterm,  # stopped with SIGTERM, which this process may ignore
        )
    url = f"http://127.0.0.1:{http_port}"
    try:
        if not _wait_healthy(url, process.pid, instance / "data", log, timeout=START_TIMEOUT_S):
            raise EngineDidNotStart(
                f"{engine.NAME} not healthy within {START_TIMEOUT_S:.0f}s "
                f"(FUNNELHOUSE_SEARCH_START_TIMEOUT to wait longer); log: {log}"
            )
        engine_version = _version(url)
    except BaseException:
        # The whole group, even once the started process is gone: Elasticsearch's bin/elasticsearch
        # runs a launcher JVM that starts the node's JVM as its child, in this group.
        state.end_started_process(process, STOP_TIMEOUT_S, group=True)
        raise
    return {
        "flavour": engine.NAME,
        "url": url,
        "host": "127.0.0.1",
        "port": http_port,
        "transport_port": transport_port,
        "pid": process.pid,
        "pid_start_time": state.process_start_time(process.pid),
        "version": engine_version,
        "data": str(instance / "data"),
        "log": str(log),
        "heap": heap,
        "startup_seconds": round(time.monotonic() - started, 1),
    }


def _version(url: str) -> str:
    # Not `GET /`: the integ-test-zip lacks the rest-root module that answers it.
    with urllib.request.urlopen(f"{url}/_nodes/_local?filter_path=nodes.*.version", timeout=5) as response:
        return next(iter(json.loads(response.read())["nodes"].values()))["version"]


def _wait_healthy(url: str, pid: int, data: Path, log: Path, timeout: float) -> bool:
    """Whether process ``pid`` came up healthy at ``url`` within ``timeout``. A healthy answer counts only
    while ``pid`` runs and from the node keeping its data in ``data``: another stack's engine may hold the
    port we chose (it took it after we found it free), and then ours exits on the taken port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not state.pid_alive(pid) or _reaped(pid):
            raise EngineDidNotStart(f"the search engine exited while starting; log: {log}")
        if _healthy(url) and _keeps_data_in(url, data):
            return True
        time.sleep(0.3)
    return False


def _keeps_data_in(url: str, data: Path) -> bool:
    """Whether the node answering at ``url`` is the one whose ``path.data`` is ``data`` (both engines report
    it in their node settings; a list where several data paths are configured)."""
    try:
        with urllib.request.urlopen(
            f"{url}/_nodes/_local?filter_path=nodes.*.settings.path.data", timeout=2
        ) as response:
            nodes = json.loads(response.read()).get("nodes", {})
    except (urllib.error.URLError, OSError, ValueError):
        return False
    for node in nodes.values():
        paths = node.get("settings", {}).get("path", {}).get("data", [])
        for path in [paths] if isinstance(paths, str) else paths:
            if Path(path).resolve() == data.resolve():
                return True
    return False


def _reaped(pid: int) -> bool:
    """A child that exited stays a zombie (so pid_alive says yes) until we reap it."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return finished == pid


def stop(state_home: Path) -> None:
    """SIGTERM the engine's process group (both engines close their node on it), SIGKILL it if the
    engine lingers, and forget it."""
    state.stop_service(SERVICE, state_home, STOP_TIMEOUT_S, group=True)


def main(argv: list[str]) -> int:
    """``python -m devstack.search.launcher start [elasticsearch|opensearch] | stop | status``."""
    action = argv[0] if argv else "status"
    home = state.home()
    if action == "start":
        print(json.dumps(start(home, argv[1] if len(argv) > 1 else "elasticsearch"), indent=2))
    elif action == "stop":
        stop(home)
    else:
        print(json.dumps(status(home), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
