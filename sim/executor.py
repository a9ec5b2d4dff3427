"""Running a study's independent tasks: the one pool every study uses.

Each task carries its own seed, so results do not depend on how many workers run them or
where: local processes today (``executor=local``); submitit's local or Slurm executors come
with the ``executor`` config group.
"""

from __future__ import annotations


def parallel_map(fn, tasks: list, jobs: int = 1, desc: str = "", progress: bool | None = None,
                 unit: str = "task") -> list:
    """``[fn(t) for t in tasks]`` in ``jobs`` local processes, in order; the one pool every
    study uses. Results do not depend on ``jobs``: each task carries its own seed. A progress
    bar shows on a terminal (stderr) or in a notebook, never in a log file."""
    import sys
    from concurrent.futures import ProcessPoolExecutor

    from tqdm.auto import tqdm

    show = (sys.stderr.isatty() or _in_notebook()) if progress is None else progress
    out = []
    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=not show or len(tasks) < 2,
              file=sys.stderr) as bar:
        if jobs <= 1 or len(tasks) < 2:
            for task in tasks:
                out.append(fn(task))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(tasks))) as pool:
                for result in pool.map(fn, tasks):
                    out.append(result)
                    bar.update()
    return out


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (tqdm.auto then draws a notebook bar)."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
