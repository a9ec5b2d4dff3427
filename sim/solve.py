"""Command line: ``python -m sim.solve solve.lever=<setting> solve.target=<figure>
solve.at_least=<x> | solve.at_most=<x> [solve.probability=0.9] solve.low=<a> solve.high=<b>
[solve.step=1] [solve.seek=least|greatest] [scenario=...] [key=value ...]``.

What would it take: the least (or greatest) value of a lever meeting a target in a stated share
of replications (the study: :mod:`sim.studies.solver`). ``solve.*`` settings drive the search;
every other argument is an override of the scenario exactly as ``python -m sim`` reads it
(``replications=20``, ``scenario=no_green_channel``, ``hydra.run.dir=<folder>`` for the output
folder). Writes ``solve.json``, ``evaluations.csv``, ``replications_at_answer.csv`` and
``report.html``. Exit status: 0 when solved (or met at the bracket's end), 1 when the target
is not met in the bracket or the figure is not monotone, 2 for bad input (nothing written).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shlex
import sys
import typing
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sim.config import ConfigError, load_config, to_params
from sim.validation import check_value

PREFIX = "solve."


def split(argv: list[str]) -> tuple[list[str], list[str], Path | None]:
    """(solve settings as name=value, scenario overrides, output folder if given)."""
    settings, overrides, folder = [], [], None
    for arg in argv:
        if arg.startswith(PREFIX):
            settings.append(arg.removeprefix(PREFIX))
        elif arg.startswith("hydra.run.dir="):
            folder = Path(arg.split("=", 1)[1])
        elif arg in ("-m", "--multirun") or arg.startswith("-"):
            raise ConfigError(arg, ConfigError.NO_VALUE, "sim.solve takes no Hydra flags; "
                              "it runs its own search (sweep with python -m sim -m)")
        else:
            overrides.append(arg)
    return settings, overrides, folder


def settings_from(items: list[str]):
    """Typed solver settings from ``name=value`` items (unknown names, bad types, NaN,
    infinity and values out of bounds refused)."""
    from sim.studies.history_matching import check_settings
    from sim.studies.solver import Settings

    fields = [f.name for f in dataclasses.fields(Settings)]  # not its ClassVars (LIMITS)
    for item in items:
        name, eq, _ = item.partition("=")
        if not eq:
            raise ConfigError(PREFIX + name, ConfigError.NO_VALUE, "must be solve.<name>=value")
        if name not in fields:
            raise ConfigError(PREFIX + name, item.split("=", 1)[1],
                              f"no such setting; allowed: {', '.join(fields)}")
    base = OmegaConf.structured(Settings)
    for item in items:
        name, _, text = item.partition("=")
        try:
            OmegaConf.update(base, name, OmegaConf.create({"v": text})["v"]
                             if text not in ("null", "") else None, merge=False)
        except Exception as err:  # OmegaConf's type check: the schema's words, one line
            check_value(PREFIX + name, text, typing.get_type_hints(Settings)[name])
            raise ConfigError(PREFIX + name, text, "cannot be read") from err
    settings = OmegaConf.to_object(base)
    check_settings(settings, PREFIX.rstrip("."))  # NaN, infinity and bounds
    return settings


def out_folder(given: Path | None, name: str) -> Path:
    if given is not None:
        return given
    now = dt.datetime.now()
    return Path("outputs/solve") / now.strftime("%Y-%m-%d") / f"{now:%H-%M-%S}_{name}"


def prepare(argv: list[str]):
    """Everything refused before a simulation runs: settings, overrides, the bracket."""
    from sim.command_line import check_command_line
    from sim.studies import solver

    items, overrides, folder = split(argv)
    settings = settings_from(items)
    # the scenario's overrides exactly as python -m sim checks them, and the output folder
    check_command_line([*overrides, *([f"hydra.run.dir={folder}"] if folder else [])])
    params = to_params(load_config(overrides))
    solver.check(params, settings)
    from sim import run_folder  # a new, empty or solver folder, held until the answer is written

    out_dir = run_folder.claim(out_folder(folder, params.name), "solve", "hydra.run.dir")
    return settings, overrides, params, out_dir


def document(solution, overrides: list[str], command: str) -> dict[str, Any]:
    """solve.json's content."""
    from sim.outputs import package_version
    from sim.studies.solver import Seek, lever_kind, lever_override

    s, p = solution.settings, solution.params
    step = 1.0 if s.step is None else s.step
    answer = solution.answer
    as_lever = int if lever_kind(p, s.lever) is int else float  # 8, not 8.0, for a count
    rerun = None
    if answer is not None:
        given = any(o.startswith("replications=") for o in overrides)
        rerun = " ".join(["python -m sim", *map(shlex.quote, overrides),
                          shlex.quote(lever_override(p, s.lever, answer)),
                          *([] if given else [f"replications={p.replications}"])])
        answer = as_lever(answer)
    return {
        "lever": s.lever, "seek": s.seek.value, "answer": answer, "status": solution.status,
        "message": solution.message, "target": s.target,
        **({"at_least": s.at_least} if s.at_least is not None else {"at_most": s.at_most}),
        "probability": s.probability,
        "achieved_at_answer": solution.achieved(answer),
        "achieved_one_step_below": solution.achieved(None if answer is None else answer - step),
        "achieved_one_step_above": solution.achieved(None if answer is None else answer + step),
        "boundary": "one step below fails" if s.seek == Seek.least else "one step above fails",
        "low": as_lever(s.low), "high": as_lever(s.high), "step": as_lever(step),
        "overrides": overrides, "replications": p.replications, "seed": p.seed,
        "scenario": p.name, "rerun": rerun,
        "evaluations": [solution.evaluations[v].row(s.target)
                        for v in sorted(solution.evaluations)],
        "monotone": solution.monotone, "command": command, "version": package_version(),
    }


def write(out_dir: Path, solution, doc: dict[str, Any]) -> None:
    import pandas as pd

    from sim import plotting, reports, run_folder
    from sim.outputs import summary_document, write_csv, write_json

    folder, out_dir = out_dir, run_folder.staging(out_dir)  # swapped in once complete
    rows = pd.DataFrame([{k: v for k, v in e.items() if k != "ci95"}
                         | {"ci95_low": e["ci95"][0], "ci95_high": e["ci95"][1]}
                         for e in doc["evaluations"]])
    write_csv(out_dir / "evaluations.csv", rows, float_format="%.17g")
    run_summary = None
    if solution.results_at_answer is not None:
        res = solution.results_at_answer
        write_csv(out_dir / "replications_at_answer.csv", res.replications, "%.17g")
        run_summary = summary_document(res.params, res)
    figures = [plotting.solve_figure(rows, doc)]
    config = {"config": dataclasses.asdict(solution.params)}  # what ran, lever aside
    reports.solve_report(out_dir, {**doc, **config}, rows, figures, run_summary)
    write_json(out_dir / "solve.json", doc)
    run_folder.commit(folder, "solve", "solve.json")  # last: a folder with solve.json is complete


def main(argv: list[str] | None = None) -> int:
    from sim.command_line import one_line
    from sim.studies import solver

    argv = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m sim.solve", *map(shlex.quote, argv)])
    try:
        settings, overrides, params, out_dir = prepare(argv)
    except ValueError as err:  # ConfigError: one line
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except Exception as err:  # anything else composing raised
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    try:
        solution = solver.solve(params, settings,
                                log=lambda m: print(m, file=sys.stderr, flush=True))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    doc = document(solution, overrides, command)
    write(out_dir, solution, doc)
    print(solution.message)
    if doc["rerun"]:
        print(f"  check it: {doc['rerun']}")
    print(f"report: open {out_dir / 'report.html'} in a browser")
    print(f"wrote {out_dir}")
    return 0 if solution.status in ("solved", "met_at_bracket_end") else 1


if __name__ == "__main__":
    from sim.run_folder import run_interruptible

    sys.exit(run_interruptible(main, "interrupted: the search stopped; its folder keeps any "
                                     "earlier answer as it was; rerun the same command"))
