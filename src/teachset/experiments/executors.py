"""Where a grid's cells run: in this process, in a pool of local processes (the default with
--workers > 1), or on Ray (a local cluster started for the run, or an existing one). Each runs the
same function on the same tasks and yields (task, result) as cells finish; every worker sets its
torch threads so that workers x threads = cores."""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

from ..errors import TeachsetError

EXECUTORS = ("pool", "ray")


class InlineExecutor:
    def map(self, fn: Callable, tasks: Iterable) -> Iterator[tuple]:
        for task in tasks:
            yield task, fn(task)

    def close(self) -> None:
        pass


class PoolExecutor:
    """Local worker processes (started fresh, not forked: torch's threads do not survive a fork)."""

    def __init__(self, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn: Callable, tasks: Iterable) -> Iterator[tuple]:
        from concurrent.futures import as_completed

        futures = {self.pool.submit(fn, task): task for task in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class RayExecutor:
    """Ray tasks of one CPU each, on a local Ray started for the run or on the cluster at `address`."""

    def __init__(self, workers: int, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise TeachsetError("the ray executor needs Ray: pip install ray") from None
        self.ray, self.started = ray, not ray.is_initialized()
        if self.started:
            ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)

    def map(self, fn: Callable, tasks: Iterable) -> Iterator[tuple]:
        remote = self.ray.remote(num_cpus=1, max_retries=0)(fn)
        pending = {remote.remote(task): task for task in tasks}
        while pending:
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    yield task, self.ray.get(ref)
                except self.ray.exceptions.RayTaskError as error:
                    raise error.as_instanceof_cause() from None

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(kind: str, workers: int, address: str | None = None):
    if kind not in EXECUTORS:
        raise TeachsetError(f"unknown executor '{kind}'; choose one of: {', '.join(EXECUTORS)}")
    if kind == "ray":
        return RayExecutor(workers, address)
    return InlineExecutor() if workers <= 1 else PoolExecutor(workers)
