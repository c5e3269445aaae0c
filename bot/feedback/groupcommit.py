"""Group commit: feedback-store writes that arrive while a transaction runs share the next one.

Under a burst every answer is recorded before it is sent (its buttons name the sample) and linked
to its message after: two transactions per photo. Run one by one, each waits for SQLite's single
write lock and, on a real disk, for its own sync to disk. Gathered, a burst of 32 answers needs a
handful of transactions, written by one thread. Each caller still gets its result only after its
own transaction committed: nothing is acknowledged before it is on disk.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bot.feedback.store import FeedbackStore, Write

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
MAX_BATCH = 64  # writes per transaction: bounds how long one commit holds the write lock


class GroupCommit:
    """Queue `FeedbackStore` writes (`recording`, `linking`) and commit them together."""

    def __init__(self, store: FeedbackStore, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.store = store
        self.max_batch = max_batch
        self.transactions = 0  # committed (or failed) transactions, for tests and figures
        self._queue: list[tuple[Write[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="digitbot-store")

    async def write(self, write: Write[Result]) -> Result:
        """Commit `write` (with whatever else is waiting) and return its result."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((write, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="digitbot-group-commit")
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[Write[Any], asyncio.Future[Any]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    results = await self._transact([write for write, _ in batch])
                except Exception as error:
                    if len(batch) == 1:
                        _settle(batch[0][1], error=error)
                        continue
                    # One bad write must not cost the others: each again, on its own.
                    logger.warning(
                        "a group commit of %d writes failed; retrying them one by one",
                        len(batch),
                        exc_info=True,
                    )
                    for write, future in batch:
                        try:
                            (result,) = await self._transact([write])
                        except Exception as single_error:
                            _settle(future, error=single_error)
                        else:
                            _settle(future, result=result)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    _settle(future, result=result)
        except asyncio.CancelledError:  # the loop is shutting down: nobody waits forever
            for _, future in [*batch, *self._queue]:
                future.cancel()
            raise

    async def _transact(self, writes: list[Write[Any]]) -> list[Any]:
        self.transactions += 1
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self.store.transact, writes
        )

    async def close(self) -> None:
        """Finish the writes already queued, then stop the writer thread."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        self._executor.shutdown(wait=True)


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    if future.done():  # its caller was cancelled and no longer waits
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
