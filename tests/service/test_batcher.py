"""The micro-batcher behind the single-series route: batching, errors, cancellation."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.batcher import Batcher


def _run_factory(sizes: list[int], release: threading.Event):
    def run(items: list[int]) -> list[int | Exception]:
        sizes.append(len(items))
        if len(sizes) == 1:
            release.wait(10)  # hold the first batch until everyone else queued behind it
        return [ValueError(f"bad {i}") if i == 3 else i * 10 for i in items]

    return run


def test_callers_queued_behind_a_batch_run_as_one_batch() -> None:
    async def main() -> tuple[list[int], list[object], bool]:
        batcher: Batcher[int, int] = Batcher(max_batch=5)
        sizes: list[int] = []
        release = threading.Event()
        run = _run_factory(sizes, release)

        async def call(i: int) -> object:
            try:
                return await batcher.submit(i, run)
            except ValueError as exc:
                return str(exc)

        first = asyncio.create_task(call(0))
        while not sizes:
            await asyncio.sleep(0.01)
        others = [asyncio.create_task(call(i)) for i in range(1, 8)]
        loop = asyncio.get_running_loop()
        while len(batcher._queues[loop]) < 7:
            await asyncio.sleep(0.01)
        release.set()
        results = await asyncio.gather(first, *others)
        return sizes, results, bool(batcher._queues)

    sizes, results, left = asyncio.run(main())
    assert sizes == [1, 5, 2]  # alone at once; then max_batch caps the next batch
    assert results == [0, 10, 20, "bad 3", 40, 50, 60, 70]  # each caller gets its own outcome
    assert not left  # the queue is gone once drained


def test_a_run_that_raises_answers_every_caller_of_its_batch_and_later_batches_run() -> None:
    async def main() -> tuple[list[object], list[object]]:
        batcher: Batcher[int, int] = Batcher()
        calls = 0

        def run(items: list[int]) -> list[int | Exception]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("model broke")
            return list(items)

        async def call(i: int) -> object:
            try:
                return await batcher.submit(i, run)
            except RuntimeError as exc:
                return str(exc)

        failed = await asyncio.gather(*(call(i) for i in range(3)))  # one batch of three
        later = await asyncio.gather(*(call(i) for i in range(3)))
        return list(failed), list(later)

    assert asyncio.run(main()) == (["model broke"] * 3, [0, 1, 2])


def test_a_caller_that_goes_away_does_not_break_the_others() -> None:
    async def main() -> tuple[object, object]:
        batcher: Batcher[int, int] = Batcher()
        release = threading.Event()
        started = threading.Event()

        def run(items: list[int]) -> list[int | Exception]:
            started.set()
            release.wait(10)
            return [i * 2 for i in items]

        first = asyncio.create_task(batcher.submit(1, run))
        while not started.is_set():
            await asyncio.sleep(0.01)
        gone = asyncio.create_task(batcher.submit(2, run))
        stays = asyncio.create_task(batcher.submit(3, run))
        await asyncio.sleep(0.01)
        gone.cancel()  # a client disconnect cancels its route coroutine
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await first, await stays

    assert asyncio.run(main()) == (2, 6)
