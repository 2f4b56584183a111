"""Child processes whose work must not outlive the process that started them (dbt, above all).

A child stopped in a ``finally`` or a SIGTERM handler (build.py) still outlives a parent that is
killed outright: SIGKILL, the OOM killer. Such an orphan goes on writing to the warehouse without
the writer lock (writers.py: the lock dies with the parent's PostgreSQL session), beside the next
writer that takes it; two dbt runs then collide on dbt's ``__dbt_tmp``/``__dbt_backup`` tables and
append duplicate rows. (A dbt killed with its parent may leave such tables too; they are harmless:
dbt-clickhouse's table and incremental materializations drop them before they build the model.)

So on Linux the child asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), set
between fork and exec and kept across the exec. Elsewhere this does nothing (the ``finally`` and
SIGTERM handling still apply).

Two limits of ``PR_SET_PDEATHSIG``:

* it fires when the *thread* that forked the child ends, not the process. Every caller here starts
  the child inside a ``with`` (or a call) that waits for it before returning, so the forking thread
  lives at least as long as the child; a child handed to another thread to outlive the caller's
  frame would be killed early.
* it reaches the child only, not processes the child starts in turn (dbt runs its models in threads
  of its own process, so for dbt the child is all there is).

Dagster's dbt is started by dagster-dbt (``DbtCliResource.cli``, a plain Popen), not through here:
its executable is ``funnelhouse-bound-dbt`` (bound_dbt.py), which binds itself (``bind_to_parent``)
and then execs dbt, the same process with the same request.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from devstack import state

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _linux_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, resolved once in the parent: the child, between fork and exec, should do as
    little as it can (another thread of the parent may have held a lock at the fork)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


_PRCTL = _linux_prctl()


def bind_to_parent(parent_pid: int) -> bool:
    """Have the kernel SIGKILL this process when its parent, ``parent_pid``, ends (the parent's thread
    that started it: see above); kept across an exec. False when the parent is gone already: one that
    died before the request sends nothing (this process is reparented), so the caller must end at once.
    Raises OSError if the kernel refuses (a child is not to run unbound). Off Linux: True, nothing done."""
    if _PRCTL is None:
        return True
    if _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    return os.getppid() == parent_pid


def _dies_with(parent_pid: int) -> None:
    """(In the child, between fork and exec.) ``bind_to_parent``, and SIGTERM stops it again even if
    this process ignores it (``state.default_sigterm``); an OSError there makes Popen raise
    SubprocessError in the parent."""
    if not bind_to_parent(parent_pid):
        os._exit(127)
    state.default_sigterm()


def start_bound(command, **popen_kwargs) -> subprocess.Popen:
    """``subprocess.Popen(command, **popen_kwargs)``, the child killed by the kernel when the calling
    thread ends, its process dying included (Linux), and stopped by SIGTERM even where this process
    ignores it. Call it from a thread that waits for the child (see the module's docstring)."""
    if "preexec_fn" in popen_kwargs:
        raise ValueError("start_bound sets preexec_fn itself")
    parent_pid = os.getpid()
    popen_kwargs["preexec_fn"] = lambda: _dies_with(parent_pid)
    return subprocess.Popen(command, **popen_kwargs)
