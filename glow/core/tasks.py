"""Background work: `enqueue` runs a Celery task after the current transaction commits."""

from __future__ import annotations

import logging
import threading
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger(__name__)

INLINE, THREAD, CELERY = "inline", "thread", "celery"
# What apply_async raises when it cannot reach the broker (after kombu's own short retries).
BROKER_ERRORS = (BrokerUnavailable, OSError)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_pending: set[Future] = set()


def enqueue(task, *args: Any, **kwargs: Any) -> None:
    """Schedule `task(*args, **kwargs)` once the current transaction commits (now if none is open).

    settings.GLOW_TASK_MODE decides where it runs: "celery" sends it to the broker (to the
    in-process pool when the broker cannot be reached), "thread" to a small in-process pool
    (the embedded profile: no broker, but never on the request thread), "inline" runs it
    synchronously at commit and lets its exceptions propagate (unit tests). A rolled-back
    transaction enqueues nothing.
    """
    mode = settings.GLOW_TASK_MODE
    if mode == CELERY:
        # robust: the rows are committed already; whatever goes wrong is logged, not a 500.
        transaction.on_commit(lambda: _send(task, args, kwargs), robust=True)
    elif mode == THREAD:
        transaction.on_commit(lambda: _submit(task, args, kwargs))
    elif mode == INLINE:
        _on_commit_inline(lambda: task.apply(args=args, kwargs=kwargs, throw=True))
    else:
        raise ValueError(f"Unknown GLOW_TASK_MODE {mode!r}: use celery, thread or inline.")


def _send(task, args: tuple, kwargs: dict) -> None:
    """To the broker; with the broker unreachable, to this process's pool instead.

    The work's rows are committed, so dropping the message would leave it waiting forever.
    Tasks are safe to run twice (acks_late), so a message that did reach the broker before
    the error is harmless too.
    """
    try:
        task.apply_async(args=args, kwargs=kwargs)
    except BROKER_ERRORS as exc:
        logger.warning("The broker is unreachable (%s): running %s in this process", exc, task.name)
        _submit(task, args, kwargs)


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=getattr(settings, "GLOW_TASK_THREADS", 4),
                thread_name_prefix="glow-task",
            )
        return _executor


def _submit(task, args: tuple, kwargs: dict) -> None:
    future = _pool().submit(_run_in_thread, task, args, kwargs)
    with _executor_lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future) -> None:
    with _executor_lock:
        _pending.discard(future)


def _run_in_thread(task, args: tuple, kwargs: dict) -> None:
    try:
        task.apply(args=args, kwargs=kwargs, throw=True)
    except Exception:
        logger.exception("Background task %s failed", task.name)
    finally:
        # A pooled thread outlives the job: don't leave its connections open (SQLite locks, PG slots).
        connections.close_all()


def wait_for_threads(timeout: float = 10.0) -> None:
    """Block until every job handed to the thread pool so far has finished (tests, benchmarks)."""
    with _executor_lock:
        pending = list(_pending)
    futures.wait(pending, timeout=timeout)


# -- inline mode under a test's wrapping transaction --------------------------------------------
#
# pytest-django (like Django's TestCase) wraps each test in a transaction that never commits,
# so on_commit callbacks would never fire. Inline mode treats the release of the outermost
# atomic block opened by the code under test as its commit: that is where the callback runs.
# A rollback of that block drops it, as Django drops on_commit callbacks of rolled-back savepoints.


def _on_commit_inline(func) -> None:
    connection = transaction.get_connection()
    blocks = connection.atomic_blocks
    own = [index for index, block in enumerate(blocks) if not block._from_testcase]
    if not own:
        func()  # autocommit, or only the test's wrapper is open: the work is as committed as it gets
        return
    if own[0] == 0:
        transaction.on_commit(func)  # a real transaction: its commit runs it
        return
    sid = connection.savepoint_ids[own[0] - 1]
    if sid is None:  # atomic(savepoint=False) cannot be observed: run now
        func()
        return
    func.glow_inline_sid = sid
    transaction.on_commit(func)
    _watch_savepoint_release(connection)


def _watch_savepoint_release(connection) -> None:
    if getattr(connection, "_glow_inline_watch", False):
        return
    release = connection.savepoint_commit

    def savepoint_commit(sid):
        release(sid)
        due = [
            entry
            for entry in connection.run_on_commit
            if getattr(entry[1], "glow_inline_sid", None) == sid
        ]
        if due:
            connection.run_on_commit = [e for e in connection.run_on_commit if e not in due]
            for _, func, _ in due:
                func()

    connection.savepoint_commit = savepoint_commit
    connection._glow_inline_watch = True
