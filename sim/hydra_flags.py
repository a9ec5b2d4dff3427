"""What Hydra reads before it composes a configuration, checked first: its own command-line
flags, the YAML files of a ``--config-dir``, and the folders a run or a sweep writes; and
Hydra's, OmegaConf's and YAML's own errors as one line (:func:`one_line`).

Each refusal is one line (:class:`sim.validation.ConfigError`); :func:`sim.command_line.guard`
prints it and exits with code 2 before Hydra starts. Hydra itself would print its usage, a
stack trace, or go on: unpickle a file (``--experimental-rerun``), ignore an empty
``--config-dir``, load a YAML bomb, or write outside the sweep folder.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sim import limits, trials
from sim.params import CONFIG_DIR
from sim.validation import ConfigError, check_folder

# The flags after which Hydra prints something and runs nothing (and --config-path, --config-name
# and --experimental-rerun, checked apart: see parse).
MODES = ("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i",
         "--shell-completion", "-sc", "--config-path", "-cp", "--config-name", "-cn",
         "--experimental-rerun")
PRINTS = ("help", "hydra_help", "version", "cfg", "info", "shell_completion")
CFG_CHOICES = ("job", "hydra", "all")  # as Hydra's own parser (hydra._internal.utils)
INFO_CHOICES = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints its usage and exits: one line instead
        raise ConfigError("command line", ConfigError.NO_VALUE, message)


def parser() -> argparse.ArgumentParser:
    """Hydra's command-line flags, as Hydra 1.3 reads them, but without abbreviations (Hydra
    would read ``--exp`` as ``--experimental-rerun``: here it is refused as no such flag)."""
    p = _Parser(add_help=False, allow_abbrev=False)
    for flags in (("--multirun", "-m"), ("--help", "-h"), ("--hydra-help",), ("--version",),
                  ("--resolve",), ("--run", "-r"), ("--shell-completion", "-sc")):
        p.add_argument(*flags, action="store_true")
    for flags in (("--config-dir", "-cd"), ("--cfg", "-c"), ("--package", "-p"),
                  ("--config-path", "-cp"), ("--config-name", "-cn"),
                  ("--experimental-rerun",)):
        p.add_argument(*flags)
    p.add_argument("--info", "-i", nargs="?", const="all")
    p.add_argument("overrides", nargs="*")
    return p


def parse(argv: Sequence[str], config_name: str) -> argparse.Namespace:
    """Hydra's flags in ``argv``, each checked; raises :class:`ConfigError`. Adds ``prints``
    (Hydra prints something and runs nothing) and ``config_name`` (the primary config)."""
    args, extra = parser().parse_known_args(list(argv))
    for text in extra:
        if text.startswith("-"):
            raise ConfigError(text.split("=", 1)[0], ConfigError.NO_VALUE,
                              "no such flag (python -m sim --hydra-help lists them; "
                              "abbreviations are not taken)")
        raise ConfigError(text.partition("=")[0], text.partition("=")[2],
                          "give every key=value together, after the flags (Hydra refuses "
                          "overrides on both sides of a flag)")
    if args.experimental_rerun is not None:
        raise ConfigError("--experimental-rerun", args.experimental_rerun,
                          "refused: it unpickles the file, which runs whatever code the file "
                          "holds; rerun with the overrides in the run's .hydra/overrides.yaml")
    if args.cfg is not None and args.cfg not in CFG_CHOICES:
        raise ConfigError("--cfg", args.cfg, f"must be one of {', '.join(CFG_CHOICES)}")
    if args.info is not None and args.info not in INFO_CHOICES:
        raise ConfigError("--info", args.info, f"must be one of {', '.join(INFO_CHOICES)}")
    if (args.package is not None or args.resolve) and args.cfg is None:
        raise ConfigError("--package" if args.package is not None else "--resolve",
                          args.package if args.package is not None else ConfigError.NO_VALUE,
                          "only with --cfg job|hydra|all (it chooses what --cfg prints)")
    if args.shell_completion:  # Hydra raises a traceback without exactly one of these
        subcommands = [o for o in args.overrides
                       if o.partition("=")[0] in ("install", "uninstall", "query")]
        if len(subcommands) != 1:
            raise ConfigError("--shell-completion", ConfigError.NO_VALUE,
                              "needs one of install=SHELL, uninstall=SHELL or query=SHELL "
                              "(SHELL: bash, zsh or fish)")
    if args.run and args.multirun:
        raise ConfigError("--run", ConfigError.NO_VALUE, "give --run or --multirun, not both")
    if args.config_dir is not None:
        if not args.config_dir.strip():
            raise ConfigError("--config-dir", args.config_dir, "must name a folder")
        check_config_dir(args.config_dir)
    app_dir = Path(__file__).resolve().parent  # Hydra reads --config-path from the app's module
    if args.config_path is not None and (app_dir / args.config_path).resolve() != CONFIG_DIR:
        raise ConfigError("--config-path", args.config_path,
                          f"the project's configs are {CONFIG_DIR}; add a folder of your own "
                          "scenario files with --config-dir <folder> instead")
    args.prints = any(getattr(args, name) for name in PRINTS)
    given, args.config_name = args.config_name, config_name
    if given is not None:
        own = [Path(args.config_dir)] if args.config_dir else []
        names = sorted({config_name, *(p.stem for d in own for p in d.glob("*.yaml"))})
        if given not in names:
            raise ConfigError("--config-name", given, f"must be one of {', '.join(names)} "
                              "(this tool's primary config, or one of --config-dir's)")
        args.config_name = given
    return args


def check_package(args: argparse.Namespace, app: dict, hydra: dict) -> None:
    """``--package`` must name a node of the configuration ``--cfg`` prints (Hydra prints
    "not found" and exits with 1)."""
    from omegaconf import OmegaConf

    if args.cfg is None or args.package in (None, "_global_"):
        return
    shown = {"job": app, "hydra": {"hydra": hydra}, "all": {**app, "hydra": hydra}}[args.cfg]
    node = OmegaConf.select(OmegaConf.create(shown), args.package, default=None,
                            throw_on_resolution_failure=False)
    if node is None:
        raise ConfigError("--package", args.package, f"no such node in the {args.cfg} "
                          f"configuration; e.g. {', '.join(list(shown)[:6])}")


# -- a --config-dir: its YAML files, bounded before Hydra reads any --------------------------------
def check_config_dir(text: str) -> None:
    """Refuse a ``--config-dir`` that is not a folder, holds too many YAML files, or a YAML
    file no one should load: over :data:`sim.limits.MAX_CONFIG_FILE_BYTES`, not UTF-8, not
    valid YAML, nested too deep, a bomb of aliases, or naming Python code to run
    (``_target_``: a callback or a launcher that Hydra would instantiate)."""
    folder = Path(text).resolve()
    if not folder.is_dir():
        raise ConfigError("--config-dir", text, "no such folder")
    if limits.in_system(text):
        raise ConfigError("--config-dir", text, "must not be under /proc, /sys or /dev")
    files = []
    for n, (root, dirs, names) in enumerate(os.walk(folder)):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if len(Path(root).relative_to(folder).parts) >= 4:  # Hydra's groups are shallow
            dirs[:] = []
        files += [Path(root) / name for name in names if name.endswith((".yaml", ".yml"))]
        if len(files) > limits.MAX_CONFIG_FILES or n > limits.MAX_CONFIG_FILES:
            raise ConfigError("--config-dir", text, f"holds more than "
                              f"{limits.MAX_CONFIG_FILES:,} folders or YAML files; give the "
                              "folder of your scenario files")
    for path in files:
        content, problem = limits.load_yaml(path, limits.MAX_CONFIG_FILE_BYTES,
                                            limits.MAX_CONFIG_NODES)
        if problem is None and _names_code(content):
            problem = ("names code to run (_target_, env_set); a scenario file sets values "
                       "only")
        if problem is not None and problem.startswith(":"):  # YAML's own: file:line:column
            where, _, problem = problem.partition(": ")
            raise ConfigError(f"{path}{where}", ConfigError.NO_VALUE, problem)
        if problem is not None:
            raise ConfigError(str(path), ConfigError.NO_VALUE, problem)


def _names_code(content: Any) -> bool:
    """Whether a YAML document holds a ``_target_`` key (an object Hydra instantiates) or an
    ``env_set`` (environment variables, such as LD_PRELOAD, for every process a job starts)."""
    stack = [content]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "_target_" in node or "env_set" in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# -- the folders a run or a sweep writes -------------------------------------------------------
def resolve_folder(key: str, text: str, hydra: dict, app: dict) -> str:
    """A folder setting of Hydra (``hydra.run.dir`` ...) with its interpolations resolved as
    Hydra will resolve them: ``${now:...}``, ``${name}`` (the app's settings),
    ``${hydra:...}`` (Hydra's own), ``${oc.env:...}``. One that cannot be resolved is refused."""
    from omegaconf import OmegaConf

    if "${" not in text:
        return text
    own = text.replace("${hydra:", "${hydra.")  # Hydra's resolver reads its own settings
    doc = OmegaConf.create({**app, "hydra": hydra, "_folder_": own})
    try:
        return str(doc._folder_)
    except Exception as err:  # any resolver's error: an unset variable, an unknown key
        reason = " ".join(str(err).split("\n", 1)[0].split())
        raise ConfigError(key, text, f"cannot be resolved ({reason[:160]})") from None


def check_folders(hydra: dict, app: dict, multirun: bool,
                  jobs: Sequence[Sequence[str]] = ()) -> None:
    """The folder a run (``hydra.run.dir``) or a sweep (``hydra.sweep.dir``, and each job's
    ``hydra.sweep.subdir``) writes, resolved: creatable (:func:`sim.validation.check_folder`);
    Hydra's record (``hydra.output_subdir``) and each job's folder inside it, not escaping by
    an absolute path or ``..`` (a job's folder is named by its overrides: a value holding
    ``../`` would climb out of the sweep folder), and not a folder of someone else's files
    (:func:`sim.run_folder.check_target`)."""
    from sim import run_folder

    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    folder = resolve_folder(key, str(_get(hydra, key)), hydra, app)
    check_folder(key, folder)
    record = _get(hydra, "hydra.output_subdir")
    if record is not None:
        _check_inside("hydra.output_subdir", resolve_folder("hydra.output_subdir", str(record),
                                                          hydra, app))
    if not multirun:
        return
    subdir = str(_get(hydra, "hydra.sweep.subdir"))
    if _numbers_trials(hydra):  # the folder each trial of an optimiser will write
        subdir = trials.trial_subdir(subdir)
    named = subdir in ("${hydra:job.override_dirname}", "${hydra.job.override_dirname}")
    seen: dict[str, Sequence[str]] = {}
    for num, job in enumerate(jobs):
        dirname = override_dirname(job, hydra)
        if named:
            resolved = dirname
        else:
            job_node = {**hydra["job"], "override_dirname": dirname, "num": num}
            resolved = resolve_folder("hydra.sweep.subdir", subdir, {**hydra, "job": job_node},
                                      app)
        _check_inside("hydra.sweep.subdir", resolved, f" (the job {', '.join(job)})")
        folder_of = os.path.normpath(resolved)
        if folder_of == "." and len(jobs) == 1:  # its results would land among the sweep's
            raise ConfigError("hydra.sweep.subdir", resolved, "a job's folder must be a folder "
                              "inside the sweep's, and this job sets no key to name it by "
                              f"({', '.join(job) or 'no overrides'}); give a swept key, or run "
                              "without -m")
        # a job's folder that already holds a user's files is refused before Hydra writes its
        # record into it (the job itself could tell only after)
        run_folder.check_target(Path(folder) / folder_of, "run", "hydra.sweep.subdir")
        if folder_of in seen:  # the later job would overwrite the earlier one's results
            raise ConfigError("hydra.sweep.subdir", resolved, "two jobs would write this "
                              f"folder ({', '.join(seen[folder_of])}) and ({', '.join(job)}); "
                              "a swept key must not be in hydra.job.config.override_dirname."
                              "exclude_keys, nor a value given twice")
        seen[folder_of] = job


def _numbers_trials(hydra: dict) -> bool:
    """Whether the sweep's jobs get numbered folders (:class:`sim.trials.TrialsCallback`, on
    under a sweeper other than the basic one)."""
    callback = (hydra.get("callbacks") or {}).get("trials") or {}
    return (not trials.is_basic(hydra.get("sweeper")) and bool(callback.get("enabled", True))
            and str(callback.get("_target_", "")).endswith("TrialsCallback"))


def _check_inside(key: str, text: str, where: str = "") -> None:
    parts = Path(text).parts
    if Path(text).is_absolute() or ".." in parts:
        raise ConfigError(key, text, "must stay inside the run's folder (a relative path "
                                     f"without '..'){where}")
    if any(len(part.encode()) > 255 for part in parts) or any(c in text for c in "$`") \
            or not text.isprintable():
        raise ConfigError(key, text, "a folder name has at most 255 bytes and no $, backquote "
                                     f"or control character{where}; exclude long values with "
                                     "hydra.job.config.override_dirname.exclude_keys")


def override_dirname(job: Sequence[str], hydra: dict) -> str:
    """``hydra.job.override_dirname`` of a job with these overrides, as Hydra makes it
    (hydra._internal.config_loader_impl.get_overrides_dirname): the sorted overrides not
    excluded, joined by item_sep, every '=' replaced by kv_sep."""
    cfg = hydra["job"]["config"]["override_dirname"]
    exclude = set(cfg.get("exclude_keys") or [])
    lines = sorted(o for o in job if o.split("=", 1)[0].lstrip("+~") not in exclude)
    return cfg["item_sep"].join(lines).replace("=", cfg["kv_sep"])


def _get(hydra: dict, key: str) -> Any:
    node: Any = {"hydra": hydra}
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


_LEVELS = ("CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET")


def check_logging(hydra: dict) -> None:
    """Every ``level`` of Hydra's logging settings is a level Python's logging knows (it
    refuses another only once the run has started, with a stack trace)."""
    stack = [(name, hydra.get(name)) for name in ("job_logging", "hydra_logging")]
    while stack:
        key, node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "level" and not (isinstance(v, int) or str(v).upper() in _LEVELS):
                    raise ConfigError(f"hydra.{key}.level", v,
                                      f"must be one of {', '.join(_LEVELS)}")
                stack.append((f"{key}.{k}", v))


def check_launcher(hydra: dict) -> None:
    """A Slurm launcher needs a cluster: ``sbatch`` on PATH, and a partition it has (a sweep
    whose submission the cluster refuses would stop with every job missing)."""
    from sim.executor import check_partition

    launcher = hydra.get("launcher") or {}
    target = str(launcher.get("_target_", ""))
    if "Slurm" not in target:
        return
    if shutil.which("sbatch") is None:
        raise ConfigError("hydra/launcher", target.rsplit(".", 1)[-1],
                          "no Slurm cluster here (no sbatch on PATH); use hydra/launcher=cores "
                          "or submitit_cores")
    check_partition("hydra.launcher.partition", launcher.get("partition"))


# -- Hydra's, OmegaConf's and YAML's errors as one line -----------------------------------------
def one_line(err: Exception, overrides: Sequence[str] = ()) -> ConfigError:
    """The one-line form of an error raised while composing a configuration: the override (or
    file, line and column) it comes from, and what is allowed."""
    import yaml

    if isinstance(err, RecursionError) or "maximum recursion depth" in str(err):
        return ConfigError("the defaults lists", ConfigError.NO_VALUE, "a config file includes "
                           "itself, directly or through others (a loop in its defaults list)")
    mark = getattr(err, "problem_mark", None)
    if isinstance(err, yaml.YAMLError) and mark is not None:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        return ConfigError(f"{mark.name}:{mark.line + 1}:{mark.column + 1}",
                           ConfigError.NO_VALUE, f"{problem} (YAML)")
    text = str(err)
    inner = err.__cause__ if getattr(err.__cause__, "full_key", None) is not None else err
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    load = re.match(r"In '([^']+)': Could not load '([^']+)'", lines[0]) if lines else None
    if load:  # a file's defaults list names a config that does not exist
        return ConfigError(f"{load.group(1)}.yaml", ConfigError.NO_VALUE,
                           f"its defaults list names {load.group(2)}, which does not exist")
    where = re.match(r"In '([^']+)': \w+ raised while composing config:", lines[0]) \
        if lines else None
    detail = lines[1] if where and len(lines) > 1 else (lines[0] if lines else type(err).__name__)
    full_key = getattr(inner, "full_key", None) or next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("full_key:")), None)
    reference = next((line.split("=", 1)[1] for line in lines
                      if line.startswith("reference_type=")), "")
    reason = _reason(detail, full_key or "", reference)
    inside = f" (in {where.group(1)})" if where else ""
    if reason.startswith("no such") and where and where.group(1).startswith("scenario/") \
            and "." not in (full_key or "."):
        reason += "; does the file start with '# @package _global_'?"
    for override in overrides:  # the override it comes from, as the user typed it
        key, _, value = override.lstrip("+~").partition("=")
        if f"'{key}'" in text or f"override {override.lstrip('+~')}" in text \
                or f"'{override.lstrip('+~')}'" in text \
                or (full_key and (full_key == key or full_key.startswith(key + "."))):
            return ConfigError(full_key if full_key and full_key.startswith(key) else key,
                               value, reason)
    value = re.match(r"Value '([^']*)'", detail)
    value = value.group(1) if value else ConfigError.NO_VALUE
    if full_key:
        return ConfigError(full_key, value, reason + inside)
    if where:  # the file that holds it: no setting to name
        return ConfigError(f"{where.group(1)}.yaml", value, reason)
    return ConfigError(overrides[-1].partition("=")[0] if len(overrides) == 1 else
                       "the configuration", value, reason)


_REASONS = (("could not be converted to Integer", "must be an integer"),
            ("could not be converted to Float", "must be a number"),
            ("is not a valid bool", "must be true or false"),
            ("could not be converted to Boolean", "must be true or false"),
            ("is not a ListConfig", "must be a list [...]"),
            ("is not a DictConfig", "must be a mapping {key: value}"),
            ("is not a subclass of", "must be a mapping {key: value}"),
            ("Could not delete from config", "no such entry to delete"),
            # OmegaConf says the same whichever way round: name both kinds
            ("Cannot merge DictConfig with ListConfig", "must be of the kind the configuration has "
             "there: a list [...] and a mapping {key: value} do not replace each other"),
            ("Cannot merge ListConfig with DictConfig", "must be of the kind the configuration has "
             "there: a list [...] and a mapping {key: value} do not replace each other"))


def _reason(detail: str, full_key: str, reference: str) -> str:
    """What is allowed, in the project's words, for an OmegaConf message."""
    import dataclasses

    from sim import params

    for pattern, reason in _REASONS:
        if pattern in detail:
            return reason
    if detail.startswith("Ambiguous value for argument"):
        return "several values: add -m (--multirun) to sweep them, or write [a,b] for a list"
    missing = re.search(r"Could not find '([^']+)/([^'/]+)'", detail)
    if missing:
        group = missing.group(1)
        return f"no such {group}; available: {', '.join(_group_options(group))}"
    options = re.search(r"expected one of \[([^\]]*)\]", detail)
    if options:
        return f"must be one of {options.group(1)}"
    if re.match(r"Key '[^']+' (is )?not in", detail):
        if full_key.startswith("timeline."):
            return ("no such timeline event (add one with +timeline.<name>={date: ..., "
                    "label: ..., changes: {...}})")
        if "destination_shares" in full_key or "trusted_share" in full_key:
            return f"no such destination; allowed: {', '.join(params.DESTINATIONS)}"
        kind = getattr(params, reference.split("[")[0], None)
        if dataclasses.is_dataclass(kind):
            return f"no such key; allowed: {', '.join(f.name for f in dataclasses.fields(kind))}"
        return "no such setting"
    return detail


def _group_options(group: str) -> list[str]:
    """A config group's options as Hydra sees them: configs/ and the plugins' (a launcher)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))
