"""Running a study's independent tasks: the one pool every study uses.

Replications, calibration points and sensitivity points all go through :func:`parallel_map`.
Each task carries its own seed, so the results do not depend on how many workers run them nor
where (:class:`sim.params.ExecutorConfig`, config group ``executor``):

- ``local``: ``jobs`` processes on this machine (``concurrent.futures``); one job runs in this
  process;
- ``submitit_local``: ``jobs`` submitit jobs on this machine, each a separate process running
  its share of the tasks: the cluster code path, testable without a cluster;
- ``slurm``: a Slurm job array of ``jobs`` tasks through submitit.

With submitit, task i goes to worker ``i % workers``; the results come back in task order.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim.params import ExecutorConfig, ExecutorKind

LOCAL = ExecutorConfig()  # processes on this machine: what a task inside a worker uses
_POLL_SECONDS = 0.5


def parallel_map(fn: Callable[[Any], Any], tasks: list, jobs: int = 1, desc: str = "",
                 progress: bool | None = None, unit: str = "task",
                 executor: ExecutorConfig | None = None) -> list:
    """``[fn(t) for t in tasks]`` on ``jobs`` workers of ``executor`` (default: local
    processes), in task order. ``fn`` and the tasks must pickle (module-level functions).
    A progress bar shows on a terminal (stderr) or in a notebook, never in a log file."""
    # The text bar in a notebook too: Jupyter redraws it in place in the cell's output. tqdm.auto
    # would draw a widget only where ipywidgets is installed (not a dependency; elsewhere it
    # warns and falls back to this bar), and nbclient cannot update a widget.
    from tqdm import tqdm

    executor = LOCAL if executor is None else executor
    show = (sys.stderr.isatty() or _in_notebook()) if progress is None else progress
    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=not show or len(tasks) < 2,
              file=sys.stderr) as bar:
        if executor.kind != ExecutorKind.local and tasks:
            return _submitit_map(fn, tasks, max(1, min(jobs, len(tasks))), executor, bar)
        if jobs <= 1 or len(tasks) < 2:
            out = []
            for task in tasks:
                out.append(fn(task))
                bar.update()
            return out
        from concurrent.futures import ProcessPoolExecutor

        out = []
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
            for result in pool.map(fn, tasks):
                out.append(result)
                bar.update()
        return out


def _run_share(fn: Callable[[Any], Any], share: Sequence[Any]) -> list:
    """One submitit job: its share of the tasks, in order."""
    return [fn(task) for task in share]


def submitit_executor(executor: ExecutorConfig, folder: Path, workers: int):
    """The submitit executor for ``executor.kind``, its parameters set (not yet submitting)."""
    import submitit

    if executor.kind == ExecutorKind.slurm:
        ex = submitit.SlurmExecutor(folder=folder)
        extra = {k: v for k, v in (("partition", executor.partition),
                                   ("account", executor.account), ("qos", executor.qos))
                 if v is not None}
        ex.update_parameters(time=executor.timeout_min, cpus_per_task=executor.cpus_per_task,
                             mem=f"{int(round(executor.mem_gb * 1024))}MB",
                             setup=list(executor.setup), array_parallelism=workers,
                             job_name="licence_sim", **extra,
                             additional_parameters=dict(executor.additional_parameters))
        return ex
    ex = submitit.LocalExecutor(folder=folder)
    ex.update_parameters(timeout_min=executor.timeout_min)
    return ex


def _submitit_map(fn, tasks: list, workers: int, executor: ExecutorConfig, bar) -> list:
    """The tasks in ``workers`` submitit jobs; their folder is removed when all succeed."""
    import shutil

    root = Path(executor.folder)
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root))
    shares = [tasks[w::workers] for w in range(workers)]
    ex = submitit_executor(executor, folder, workers)
    submitted = ex.map_array(_run_share, [fn] * workers, shares)
    counted = [False] * workers
    while not all(counted):
        for w, job in enumerate(submitted):
            if not counted[w] and job.done():
                counted[w] = True
                bar.update(len(shares[w]))
        if not all(counted):
            time.sleep(_POLL_SECONDS)
    try:
        results = [job.result() for job in submitted]
    except Exception as err:
        raise RuntimeError(f"executor={executor.kind}: a worker job failed ({err}); its logs "
                           f"are in {folder}") from None
    shutil.rmtree(folder, ignore_errors=True)
    out: list = [None] * len(tasks)
    for w, share in enumerate(results):
        out[w::workers] = share
    return out


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (whose stderr is the cell's output, not a tty)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
