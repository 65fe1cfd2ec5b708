"""Work split over worker processes: data collection and evaluation episodes.

Each task carries everything it needs (its episodes, their seeds), so a result never depends on how many
workers there were or which one ran a task; results come back in task order. Workers are spawned, not
forked: the parent may hold an OpenGL context (MuJoCo's renderer) or torch's threads, which a fork copies badly.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed

from embodied_lib.progress import progress_bar


def map_tasks(fn, tasks: list, workers: int = 1, sizes: list[int] | None = None, desc: str = "",
              unit: str = "it", progress: bool = True) -> list:
    """``[fn(t) for t in tasks]`` over ``workers`` processes (inline for one), with one progress bar that
    advances by ``sizes[i]`` (e.g. episodes) when task i ends. The biggest tasks start first, so a big one never
    runs alone at the end. ``fn`` must be a module-level function."""
    sizes = sizes or [1] * len(tasks)
    bar = progress_bar(total=sum(sizes), desc=desc, unit=unit, disable=not progress)
    results = [None] * len(tasks)
    try:
        if workers <= 1 or len(tasks) <= 1:
            for i, task in enumerate(tasks):
                results[i] = fn(task)
                bar.update(sizes[i])
            return results
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_one_thread_per_worker) as pool:
            biggest_first = sorted(range(len(tasks)), key=lambda i: -sizes[i])
            futures = {pool.submit(fn, tasks[i]): i for i in biggest_first}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                bar.update(sizes[i])
        return results
    finally:
        bar.close()


def _one_thread_per_worker() -> None:
    """Several workers share the cores: one torch thread each (set in the worker, never in the caller)."""
    import torch

    torch.set_num_threads(1)


def chunks(items: list, parts: int) -> list[list]:
    """``items`` in ``parts`` contiguous pieces of near-equal size (none empty)."""
    parts = max(1, min(parts, len(items)))
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for p in range(parts):
        end = start + size + (p < extra)
        out.append(items[start:end])
        start = end
    return out
