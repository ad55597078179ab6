"""The test engine: runs a test's invocations, one engine for every provider, calls in flight,
writes in sets.

A worker task (tests_app.tasks.invocations_drain) runs an Engine: it claims queued cells within
the test's concurrency, and each cell runs as a coroutine on the process's model-call loop
(glow.ai.calls): the agent on the cell's model, the scenario's persona, then the rubric grader,
each call awaited on its own, so a cell moves on the moment its own call answers and a slow
call holds nobody else. Every call has its own Run (request sent to last byte, tokens, cost).
The local simulator is a provider that answers at once on the same path.

The database is written by the engine's own thread, never by the loop: what the cells did
since the last write (runs, tool calls, transcripts, events, grades, ends) goes in one
transaction of a dozen statements whatever the number of cells, every few tens of
milliseconds while cells end, at most FLUSH_SECONDS apart while they talk.

Durable: a claim is a lease that the engine renews while it lives; a cell whose worker died is
queued again once its lease has run out (test_recover, scheduled when a worker leaves cells of
others behind and when a worker process starts), and restarts from its beginning. Every write
locks the engine's still-running rows first, in primary-key order (as tests_app.lifecycle._halt
does, so the two never deadlock), and keeps only those it still holds: a cell halted, or taken
over after its lease ran out, gets no further write, so a cell is graded once. The write that
ends a test's last cell marks the test finished.
"""
