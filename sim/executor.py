"""Running a study's independent tasks: the one pool every study uses.

Replications, calibration points and sensitivity points all go through :func:`parallel_map`
(or :func:`parallel_iter`, which hands each result over as it comes). Each task carries its
own seed, so the results do not depend on how many workers run them nor where
(:class:`sim.params.ExecutorConfig`, config group ``executor``):

- ``local``: ``jobs`` processes on this machine (``concurrent.futures``); one job runs in this
  process;
- ``submitit_local``: ``jobs`` submitit jobs on this machine, each a separate process running
  its share of the tasks: the cluster code path, testable without a cluster;
- ``slurm``: a Slurm job array of ``jobs`` tasks through submitit.

On this machine (``local``, ``submitit_local``) the workers are capped at the CPUs this process
may use, unless ``executor.oversubscribe``: ``jobs=1000`` on 2 cores runs 2 workers, with the
same results. Local workers end with the process that started them, even killed with
``kill -9`` (:func:`_end_with_parent`), and so does a sweep job in the Hydra joblib launcher's
worker (:func:`end_with_pool_parent`).

With submitit, task i goes to worker ``i % workers``; the results come back in task order.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sim.params import ExecutorConfig, ExecutorKind

LOCAL = ExecutorConfig()  # processes on this machine: what a task inside a worker uses
_POLL_SECONDS = 0.5
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Tasks handed to the pool ahead of the one whose result is awaited, per worker: enough to keep
# every worker busy, few enough that pending tasks and finished results never pile up.
_AHEAD_PER_WORKER = 2
# The workers' parent is this process with fork (Linux: workers start at once, sharing the
# imports) and spawn (elsewhere), never a fork server: _end_with_parent compares it with ours.
_CONTEXT = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
_NO_TASK = object()
_capped_told: set[int] = set()  # the jobs values whose cap was said on stderr (once each)
# The process whose thread watches its parent (watch_parent): a forked child inherits this
# value but not the thread.
_watching_pid: int | None = None


def parallel_map(fn: Callable[[Any], Any], tasks: list, jobs: int = 1, desc: str = "",
                 progress: bool | None = None, unit: str = "task",
                 executor: ExecutorConfig | None = None) -> list:
    """``[fn(t) for t in tasks]`` on ``jobs`` workers of ``executor`` (default: local
    processes), in task order. ``fn`` and the tasks must pickle (module-level functions).
    A progress bar shows on a terminal (stderr) or in a notebook, never in a log file."""
    return list(parallel_iter(fn, tasks, jobs, desc, progress, unit, executor))


def parallel_iter(fn: Callable[[Any], Any], tasks: Sequence, jobs: int = 1, desc: str = "",
                  progress: bool | None = None, unit: str = "task",
                  executor: ExecutorConfig | None = None) -> Iterator:
    """:func:`parallel_map`, each result handed over as soon as it and those before it are
    done, so that a caller aggregating them keeps none. Local processes get a few tasks ahead
    of the result awaited, never all: pending tasks and waiting results stay few."""
    # The text bar in a notebook too: Jupyter redraws it in place in the cell's output. tqdm.auto
    # would draw a widget only where ipywidgets is installed (not a dependency; elsewhere it
    # warns and falls back to this bar), and nbclient cannot update a widget.
    from tqdm import tqdm

    executor = LOCAL if executor is None else executor
    end_with_pool_parent()
    workers = capped_workers(jobs, len(tasks), executor)
    show = (sys.stderr.isatty() or _in_notebook()) if progress is None else progress
    with tqdm(total=len(tasks), desc=desc, unit=unit, disable=not show or len(tasks) < 2,
              file=sys.stderr) as bar:
        if executor.kind != ExecutorKind.local and tasks:
            yield from _submitit_map(fn, tasks, workers, executor, bar)
            return
        if workers <= 1:
            for task in tasks:
                yield fn(task)
                bar.update()
            return
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=_CONTEXT,
                                 initializer=_end_with_parent, initargs=(os.getpid(),)) as pool:
            todo = iter(tasks)
            running = deque(pool.submit(fn, task)
                            for task in itertools.islice(todo, _AHEAD_PER_WORKER * workers))
            try:
                while running:
                    result = running.popleft().result()
                    task = next(todo, _NO_TASK)
                    if task is not _NO_TASK:
                        running.append(pool.submit(fn, task))
                    bar.update()
                    yield result
            except KeyboardInterrupt:  # Ctrl-C: stop the workers now, not after their tasks
                for process in list((pool._processes or {}).values()):
                    process.kill()
                raise
            finally:  # a task failed or the caller stopped: start none of those waiting
                for future in running:
                    future.cancel()


def cpus() -> int:
    """CPUs this process may run on (its affinity, which a batch system may restrict)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def capped_workers(jobs: int, n_tasks: int, executor: ExecutorConfig) -> int:
    """Workers for ``n_tasks`` tasks asked to run on ``jobs``: at most one per task and, on this
    machine, at most one per CPU unless ``executor.oversubscribe`` (said once on stderr: more
    processes than cores only share them, at the cost of their memory). A Slurm array's tasks
    run elsewhere: not capped by this machine."""
    workers = max(1, min(jobs, n_tasks))
    if executor.kind == ExecutorKind.slurm or executor.oversubscribe or workers <= cpus():
        return workers
    if jobs not in _capped_told:
        _capped_told.add(jobs)
        print(f"jobs={jobs}: {cpus()} workers, one per CPU this process may use (results are "
              f"the same; executor.oversubscribe=true starts {workers})", file=sys.stderr,
              flush=True)
    return cpus()


def _end_with_parent(parent: int) -> None:
    """Initializer of every local worker: end it when its parent (this module's caller, pid
    ``parent``) ends, even by ``kill -9``, so that no worker runs on orphaned.

    On Linux the kernel sends the worker SIGKILL when its parent's thread that started it ends
    (``PR_SET_PDEATHSIG``; the pool starts its workers from the thread that runs it and that
    thread outlives them); if the parent ended before that was set, the worker was already
    handed to another process, and it ends now. Elsewhere a thread watches the parent.

    Ctrl-C reaches the whole process group: a worker ignores it (the parent stops the pool and
    prints one line), rather than print a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform != "linux":
        watch_parent(parent)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        watch_parent(parent)  # not allowed here (a sandbox): the portable way
    elif os.getppid() != parent:
        os._exit(1)


def watch_parent(parent: int) -> None:
    """End this process (``os._exit``, nothing of it is worth saving) within
    ``_POLL_SECONDS`` of the end of its parent, pid ``parent``: a daemon thread compares
    ``os.getppid()`` with it, which changes as soon as the parent ends (the orphan is handed to
    init or a subreaper). Once per process."""
    global _watching_pid
    if _watching_pid == os.getpid():
        return
    _watching_pid = os.getpid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_POLL_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def end_with_pool_parent() -> None:
    """In a worker of another library's process pool, end with that pool's parent: the Hydra
    joblib launcher runs each sweep job in a loky worker, which would otherwise run its job on
    (and then idle for minutes) after ``kill -9`` of the sweep. A thread watches the parent
    rather than PR_SET_PDEATHSIG: loky may start a worker from a thread that ends before the
    worker should. A worker that starts after its pool's parent ended (killed while the worker
    was starting) ends at once. A process started otherwise (a command line, a notebook) is left
    alone, and so is one whose parent lives but is not the process that started it (a fork
    server's child)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    if parent.pid == os.getppid():
        watch_parent(parent.pid)
    elif not _alive(parent.pid):
        os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        pass
    if Path("/proc/self/stat").exists():
        return False  # no such process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_workers_end_with_parent() -> None:
    """Before a sweep starts: every loky worker of the Hydra joblib launcher runs
    :func:`end_with_pool_parent` as it starts, not only when its first job starts (a worker
    killed with its sweep before its first job would otherwise idle on for minutes). The
    launcher always asks joblib for its "loky" backend by name, so that name is registered
    again, in this process only, as the same backend with this initializer."""
    try:
        from joblib import register_parallel_backend
        from joblib._parallel_backends import LokyBackend
    except ImportError:  # no joblib: no joblib launcher either
        return

    def loky_backend(**kwargs: Any) -> LokyBackend:
        return LokyBackend(**kwargs, initializer=end_with_pool_parent)

    register_parallel_backend("loky", loky_backend)


class ExecutorError(RuntimeError):
    """The executor could not run the tasks: one line naming the setting and its value."""


# The folder ExecutorConfig named by default before "" did; a run folder recorded then (resume,
# compare) still means "not chosen" by it: submitit's pickles and logs go under the running
# tool's own output folder, never into the current folder (see jobs_root).
OLD_DEFAULT_FOLDER = "outputs/executor"
# What sbatch says of a setting it refuses (its words vary by Slurm version; matched in this
# order, case-insensitively: "account/partition combination" is the account's fault).
_SBATCH_REFUSALS = (("account", "account"), ("qos", "qos"), ("partition", "partition"),
                    ("time limit", "timeout_min"), ("memory", "mem_gb"),
                    ("cpu", "cpus_per_task"), ("processors", "cpus_per_task"))


def _run_folder() -> Path | None:
    """The output folder of the Hydra run (or sweep job) this process is running, if any.
    Hydra is not imported for it: a process that has not imported it runs no Hydra app."""
    module = sys.modules.get("hydra.core.hydra_config")
    if module is None or not module.HydraConfig.initialized():
        return None
    folder = module.HydraConfig.get().runtime.get("output_dir")
    return Path(folder) if folder else None


def _chosen(executor: ExecutorConfig) -> bool:
    """Whether the user chose ``executor.folder`` (not the default, nor empty)."""
    return bool(executor.folder) and str(executor.folder) != OLD_DEFAULT_FOLDER


def jobs_root(executor: ExecutorConfig) -> tuple[Path, bool]:
    """Where submitit keeps a call's pickles and logs, and whether that folder is this call's
    own (removed with the call's folder). ``executor.folder`` when set; otherwise inside the
    running tool's output folder, in its staging area (``<run>/.staging/.submitit``: what a
    failed attempt leaves there is cleared by the next one, and the run folder holds nothing
    else); with no such folder (a notebook, ``sim.solve``), a new temporary folder, or for
    Slurm, whose nodes must read it, ``~/.cache/rare-earth-licence-sim/submitit``. Never the
    current folder."""
    from sim.run_folder import STAGING

    if _chosen(executor):
        return Path(executor.folder), False
    run = _run_folder()
    if run is not None:
        return run / STAGING / ".submitit", False
    if executor.kind == ExecutorKind.slurm:  # a shared home, not a node's own /tmp
        return Path.home() / ".cache" / "rare-earth-licence-sim" / "submitit", False
    return Path(tempfile.mkdtemp(prefix="sim-submitit-")), True


def refusal(executor: ExecutorConfig, message: str) -> str:
    """One line for a submission the cluster refused: the setting at fault and its value when
    sbatch's message names one, else every Slurm setting given."""
    lines = [line.removeprefix("sbatch: error: ").strip() for line in message.splitlines()]
    words = next((line for line in lines if line), "no reason given")  # the most specific
    found = next((key for pattern, key in _SBATCH_REFUSALS if pattern in words.lower()), None)
    if executor.kind == ExecutorKind.slurm and found is not None:
        value = getattr(executor, found)
        return (f"executor.{found}={value}: the cluster refused the jobs ({words}); set another "
                f"on the command line or in configs/local/executor/slurm.yaml"
                + ("; sinfo -s lists the partitions" if found == "partition" else ""))
    given = [f"executor.{k}={getattr(executor, k)}" for k in ("partition", "account", "qos")
             if getattr(executor, k) is not None]
    return (f"executor={executor.kind}: the jobs could not be submitted ({words})"
            + (f"; check {', '.join(given)}" if given else ""))


def check_partition(setting: str, partition: str | None) -> None:
    """Refuse (ConfigError, one line) a Slurm partition ``sinfo`` does not list, before
    anything is submitted. Nothing is checked without ``sinfo`` or a partition given (the
    cluster's default)."""
    import shutil
    import subprocess

    from sim.validation import ConfigError

    if not partition or shutil.which("sinfo") is None:
        return
    try:
        done = subprocess.run(["sinfo", "--noheader", "--format=%P"], capture_output=True,
                              text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return  # sbatch will say, and refusal() names the setting
    known = sorted({p.strip().rstrip("*") for p in done.stdout.split() if p.strip()})
    if done.returncode != 0 or not known:
        return
    unknown = [p for p in str(partition).split(",") if p.strip() not in known]
    if unknown:
        raise ConfigError(setting, partition, f"no such Slurm partition here; sinfo lists "
                                              f"{', '.join(known)}")


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
    """The tasks in ``workers`` submitit jobs; their folder (:func:`jobs_root`) is removed when
    all succeed, or when they could not be submitted (a one-line :class:`ExecutorError`)."""
    import contextlib
    import io
    import shutil
    import subprocess

    from submitit.core.utils import FailedJobError

    root, own_root = jobs_root(executor)
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=root))

    def remove() -> None:
        shutil.rmtree(root if own_root else folder, ignore_errors=True)
        if not _chosen(executor):  # ours: nothing left where no one asked for it
            with contextlib.suppress(OSError):
                root.rmdir()  # when empty

    shares = [tasks[w::workers] for w in range(workers)]
    ex = submitit_executor(executor, folder, workers)
    # submitit prints sbatch's refusal on stderr before raising it: said once, in the error
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            submitted = ex.map_array(_run_share, [fn] * workers, shares)
    except (FailedJobError, subprocess.CalledProcessError, OSError) as err:
        remove()
        raise ExecutorError(refusal(executor, str(err) or said.getvalue())) from None
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
    remove()
    out: list = [None] * len(tasks)
    for w, share in enumerate(results):
        out[w::workers] = share
    return out


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (whose stderr is the cell's output, not a tty)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
