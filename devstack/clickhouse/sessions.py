"""ClickHouse HTTP sessions: ``session_id`` names a chDB connection that outlives one request.

Like ClickHouse, a session belongs to one user, expires after ``session_timeout`` idle seconds
(default 60), is closed early by ``close_session=1``, is required to exist by ``session_check=1``
(code 372) and serves one request at a time (code 373 for a concurrent one).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from devstack.clickhouse import grants
from devstack.clickhouse.engine import EngineConnection, Store
from devstack.clickhouse.errors import ClickHouseError
from devstack.clickhouse.users import User

DEFAULT_TIMEOUT = 60.0
MAX_TIMEOUT = 3600.0
# ClickHouse answers 373 at once; a short grace absorbs the race where a client sends its next
# request the moment it has read the previous answer, before this server has released the session.
LOCK_GRACE_SECONDS = 1.0


@dataclass
class Session:
    user: str
    session_id: str
    connection: EngineConnection
    timeout: float
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expired(self, now: float) -> bool:
        return now - self.last_used > self.timeout


class SessionRegistry:
    def __init__(self, store: Store):
        self._store = store
        self._sessions: dict[tuple[str, str], Session] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._reaper = threading.Thread(target=self._reap_forever, name="session-reaper", daemon=True)
        self._reaper.start()

    def acquire(
        self,
        user: User,
        session_id: str,
        timeout: float | None,
        check: bool,
        settings: dict[str, str] | None = None,
    ) -> Session:
        """The locked session ``session_id`` of ``user``, created unless ``check`` demands it exists
        (a read-only user's new session keeps ``settings`` it may change: ``Store.connect``)."""
        key = (user.name, session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                if check:
                    raise ClickHouseError(372, f"Session {session_id} not found")
                session = Session(
                    user=user.name,
                    session_id=session_id,
                    connection=self._store.connect(
                        readonly=user.readonly,
                        settings=settings,
                        visible_databases=grants.visible_databases(user),
                    ),
                    timeout=min(timeout or DEFAULT_TIMEOUT, MAX_TIMEOUT),
                )
                self._sessions[key] = session
            elif timeout:
                session.timeout = min(timeout, MAX_TIMEOUT)
        if not session.lock.acquire(timeout=LOCK_GRACE_SECONDS):
            raise ClickHouseError(373, f"Session {session_id} is locked by a concurrent client")
        if self._sessions.get(key) is not session:  # expired between lookup and lock
            session.lock.release()
            return self.acquire(user, session_id, timeout, check, settings)
        return session

    def release(self, session: Session, close: bool = False) -> None:
        session.last_used = time.monotonic()
        if close:
            with self._lock:
                self._sessions.pop((session.user, session.session_id), None)
            session.connection.close()
        session.lock.release()

    def _reap_forever(self) -> None:
        while not self._stopped.wait(1.0):
            self.reap()

    def reap(self) -> None:
        now = time.monotonic()
        with self._lock:
            candidates = [s for s in self._sessions.values() if s.expired(now)]
        for session in candidates:
            if not session.lock.acquire(blocking=False):
                continue  # in use: not idle after all
            try:
                with self._lock:
                    if session.expired(time.monotonic()):
                        self._sessions.pop((session.user, session.session_id), None)
                        session.connection.close()
            finally:
                session.lock.release()

    def close_all(self, wait_seconds: float = 30.0) -> None:
        self._stopped.set()
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            acquired = session.lock.acquire(timeout=wait_seconds)
            try:
                session.connection.close()
            finally:
                if acquired:
                    session.lock.release()
