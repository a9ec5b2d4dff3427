"""The command line, run as a user would: ``python -m sim [key=value ...]`` in a subprocess.

Every run writes into a folder under pytest's ``tmp_path`` (``hydra.run.dir``) with the working
directory there too, so nothing lands in the repository. Runs are kept short: the M/M/c check
scenario over 120 days, or the baseline cut at 2025-07-31.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

MMC = ("scenario=mmc", "horizon_days=120", "warmup_days=30")
BASELINE_SHORT = ("end_date=2025-07-31",)
RESULT_FILES = ("daily.csv", "daily_by_class.csv", "applications.csv", "backlog.png",
                "summary.json")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _env() -> dict[str, str]:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("HYDRA_FULL_ERROR", None)  # keep Hydra's short error messages
    return env


def run_sim(cwd: Path, *overrides: str, run_dir: Path | None = None,
            config_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m sim`` with ``overrides``, writing into ``run_dir`` (default cwd/run)."""
    run_dir = run_dir if run_dir is not None else cwd / "run"
    cmd = [sys.executable, "-m", "sim"]
    if config_dir is not None:
        cmd += ["--config-dir", str(config_dir)]
    cmd += [*overrides, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=300, check=False)


def _ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# -- 1. end to end ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mmc_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], Path]:
    cwd = tmp_path_factory.mktemp("cli_mmc")
    run_dir = cwd / "run"
    proc = run_sim(cwd, *MMC, "output.applications=true", run_dir=run_dir)
    _ok(proc)
    return proc, run_dir


@pytest.mark.xdist_group("cli_mmc_run")  # one worker builds the module fixture once
def test_end_to_end_prints_run_folder(mmc_run):
    proc, run_dir = mmc_run
    assert str(run_dir) in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == f"wrote {run_dir}"
    assert "scenario mmc" in proc.stdout


@pytest.mark.xdist_group("cli_mmc_run")  # one worker builds the module fixture once
def test_end_to_end_writes_all_files(mmc_run):
    _, run_dir = mmc_run
    for name in RESULT_FILES:
        assert (run_dir / name).is_file(), f"{name} missing"
        assert (run_dir / name).stat().st_size > 0, f"{name} empty"
    assert (run_dir / "backlog.png").read_bytes()[:8] == PNG_MAGIC
    stray = [p.name for p in run_dir.rglob("*") if p.name.endswith((".tmp", ".sim-tmp"))]
    assert stray == []


@pytest.mark.xdist_group("cli_mmc_run")  # one worker builds the module fixture once
def test_end_to_end_daily_csv(mmc_run):
    _, run_dir = mmc_run
    daily = pd.read_csv(run_dir / "daily.csv")
    needed = {"date", "arrivals", "approved", "denied", "pending", "in_review", "utilisation"}
    assert needed <= set(daily.columns)
    assert len(daily) == 120
    dates = pd.to_datetime(daily["date"])
    assert dates.iloc[0] == pd.Timestamp("2025-01-01")  # mmc start_date
    assert (dates.diff().dropna() == pd.Timedelta(days=1)).all()  # one row per calendar day
    assert (daily[["arrivals", "approved", "denied", "pending", "in_review"]] >= 0).all().all()
    assert daily["utilisation"].between(0, 1).all()


@pytest.mark.xdist_group("cli_mmc_run")  # one worker builds the module fixture once
def test_end_to_end_applications_csv(mmc_run):
    _, run_dir = mmc_run
    apps = pd.read_csv(run_dir / "applications.csv")
    needed = {"id", "submitted", "review_start", "decided", "outcome", "wait_days"}
    assert needed <= set(apps.columns)
    assert apps["id"].is_unique


@pytest.mark.xdist_group("cli_mmc_run")  # one worker builds the module fixture once
def test_end_to_end_summary_json(mmc_run):
    _, run_dir = mmc_run
    s = json.loads((run_dir / "summary.json").read_text())
    needed = {"seed", "version", "config", "totals", "pending_end", "peak_pending",
              "peak_pending_date", "mean_wait_days", "p50_wait_days", "p90_wait_days",
              "mean_time_to_decision_days", "utilisation"}
    assert needed <= set(s), f"missing {needed - set(s)}"
    assert s["seed"] == s["config"]["seed"] == 20250404
    assert s["config"]["name"] == "mmc"
    assert s["config"]["horizon_days"] == 120
    assert s["config"]["warmup_days"] == 30
    assert s["config"]["output"]["applications"] is True
    assert 0 < s["utilisation"] <= 1
    assert 0 <= s["p50_wait_days"] <= s["p90_wait_days"]


@pytest.mark.xdist_group("cli_mmc_run")  # one worker builds the module fixture once
def test_end_to_end_files_agree(mmc_run):
    _, run_dir = mmc_run
    s = json.loads((run_dir / "summary.json").read_text())
    daily = pd.read_csv(run_dir / "daily.csv")
    apps = pd.read_csv(run_dir / "applications.csv")
    totals = s["totals"]
    assert {"arrivals", "approved", "denied"} <= set(totals)
    for key, total in totals.items():
        assert key in daily.columns, f"summary total {key!r} has no daily column"
        assert int(daily[key].sum()) == total, key
    assert int(daily["pending"].iloc[-1]) == s["pending_end"]
    assert int(daily["pending"].max()) == s["peak_pending"]
    assert s["peak_pending_date"] in set(daily.loc[daily["pending"] == s["peak_pending"], "date"])
    assert daily["date"].iloc[-1] == s["end_date"]
    assert len(apps) == totals["arrivals"]
    decided = apps["outcome"].value_counts()
    assert decided.get("approved", 0) == totals["approved"]
    assert decided.get("denied", 0) == totals["denied"]


# -- 2. default scenario ----------------------------------------------------------------------
@pytest.mark.slow
def test_default_scenario_runs(tmp_path):
    proc = run_sim(tmp_path, *BASELINE_SHORT)
    _ok(proc)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["scenario"] == "baseline_2025"
    assert s["config"]["name"] == "baseline_2025"
    assert s["end_date"] == "2025-07-31"
    assert not (tmp_path / "outputs").exists()  # the run went where it was told


# -- 3. determinism ---------------------------------------------------------------------------
@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    dirs = {name: tmp_path / name for name in ("a", "b", "seed7")}
    quick = (*MMC, "output.plots=false")  # what is compared: the tables and the summary
    _ok(run_sim(tmp_path, *quick, run_dir=dirs["a"]))
    _ok(run_sim(tmp_path, *quick, run_dir=dirs["b"]))
    _ok(run_sim(tmp_path, *quick, "seed=7", run_dir=dirs["seed7"]))
    daily = {name: (d / "daily.csv").read_bytes() for name, d in dirs.items()}
    assert daily["a"] == daily["b"]
    assert (dirs["a"] / "summary.json").read_bytes() == (dirs["b"] / "summary.json").read_bytes()
    assert daily["seed7"] != daily["a"]
    assert json.loads((dirs["seed7"] / "summary.json").read_text())["seed"] == 7


# -- 4. bad input -----------------------------------------------------------------------------
CONFIG_ERROR = "config error"  # refused by sim: exit 2, one line "error: ..." on stderr
HYDRA_ERROR = "hydra error"  # refused by Hydra's schema or loader: any non-zero exit


def _timeline_scenario(name: str, changes: str) -> dict[str, str]:
    """A scenario file (mmc plus one dated event) for a --config-dir in tmp_path."""
    text = (f"# @package _global_\ndefaults:\n  - mmc\n  - _self_\nname: {name}\n"
            f"timeline:\n  x:\n    date: \"2025-03-01\"\n    label: {name}\n"
            f"    changes: {changes}\n")
    return {f"scenario/{name}.yaml": text}


def _case(id_, overrides, key, kind, files=None, marks=()):
    return pytest.param(overrides, key, kind, files or {}, id=id_, marks=marks)


BAD_INPUT = [
    _case("negative-rate", ["arrivals.rate_per_day=-1"], "arrivals.rate_per_day", CONFIG_ERROR),
    _case("zero-officials", ["officials.count=0"], "officials.count", CONFIG_ERROR),
    _case("unknown-key", ["foo=1"], "foo", CONFIG_ERROR),
    _case("unknown-nested-key", ["officials.countt=3"], "officials.countt", CONFIG_ERROR),
    _case("wrong-type-int", ["officials.count=abc"], "officials.count", CONFIG_ERROR),
    _case("wrong-type-float", ["arrivals.rate_per_day=lots"], "arrivals.rate_per_day",
          CONFIG_ERROR),
    _case("wrong-type-bool", ["output.plots=maybe"], "output.plots", CONFIG_ERROR),
    _case("float-for-int", ["officials.count=2.5"], "officials.count", CONFIG_ERROR),
    _case("null-for-int", ["officials.count=null"], "officials.count", CONFIG_ERROR),
    _case("unreadable-override", ["officials.count=[3,"], "officials.count", CONFIG_ERROR),
    # Inside a dict the keys depend on the scenario, so Hydra refuses them (several lines).
    _case("unknown-timeline-event", ["timeline.nope.date=2025-01-01"], "timeline.nope",
          HYDRA_ERROR),
    _case("end-before-start", ["end_date=2025-01-01"], "end_date", CONFIG_ERROR),
    _case("share-above-1", ["classes.military_share=1.5"], "classes.military_share",
          CONFIG_ERROR),
    _case("shares-not-summing-to-1", ["classes.destination_shares.US=0.5"],
          "classes.destination_shares", CONFIG_ERROR),
    _case("unknown-destination", ["+classes.destination_shares.XX=0.1"],
          "classes.destination_shares.XX", CONFIG_ERROR),
    _case("unknown-scenario", ["scenario=nope"], "scenario", CONFIG_ERROR),
    _case("bad-military-policy", ["military.policy=shoot"], "military.policy", CONFIG_ERROR),
    _case("bad-green-channel-mode", ["green_channel.mode=fast"], "green_channel.mode",
          CONFIG_ERROR),
    _case("bad-calendar-kind", ["calendar.kind=lunar"], "calendar.kind", CONFIG_ERROR),
    _case("bad-review-distribution", ["review.distribution=gamma"], "review.distribution",
          CONFIG_ERROR),
    _case("bad-date", ["start_date=2025-13-01"], "start_date", CONFIG_ERROR),
    _case("beyond-holiday-calendar", ["end_date=2031-01-01"], "end_date", CONFIG_ERROR),
    _case("negative-seed", ["seed=-1"], "seed", CONFIG_ERROR),
    _case("zero-horizon", ["scenario=mmc", "horizon_days=0"], "horizon_days", CONFIG_ERROR),
    _case("warmup-beyond-horizon", ["scenario=mmc", "horizon_days=100", "warmup_days=200"],
          "warmup_days", CONFIG_ERROR),
    _case("hours-per-day-above-24", ["officials.hours_per_day=25"], "officials.hours_per_day",
          CONFIG_ERROR),
    _case("mean-hours-and-mean-days", ["review.mean_days=2"], "review.mean_days",
          CONFIG_ERROR),
    _case("incomplete-certain", ["incomplete.probability=1.0"], "incomplete.probability",
          CONFIG_ERROR),
    _case("zero-scale", ["officials.scale=0"], "officials.scale", CONFIG_ERROR),
    _case("negative-interagency", ["interagency.mean_working_days=-2"],
          "interagency.mean_working_days", CONFIG_ERROR),
    _case("served-last-unknown", ["queue.served_last=[Mars]"], "queue.served_last",
          CONFIG_ERROR),
    _case("ramp-zero-count", ["officials.ramp.count=0"], "officials.ramp.count", CONFIG_ERROR),
    _case("dedicated-none",
          ["green_channel.mode=dedicated", "green_channel.dedicated_officials=0"],
          "green_channel.dedicated_officials", CONFIG_ERROR),
    # Hydra cannot add a timeline event from the command line (an EventConfig value inside a
    # dict is refused), so these use a scenario file in tmp_path passed with --config-dir.
    _case("timeline-unknown-key", ["scenario=bad_tl_key"], "officials.cout", CONFIG_ERROR,
          _timeline_scenario("bad_tl_key", "{officials.cout: 3}")),
    _case("timeline-invalid-value", ["scenario=bad_tl_value"], "officials.count",
          CONFIG_ERROR, _timeline_scenario("bad_tl_value", "{officials.count: 0}")),
    _case("timeline-replaces-group", ["scenario=bad_tl_group"], "officials", CONFIG_ERROR,
          _timeline_scenario("bad_tl_group", "{officials: 3}")),
]


@pytest.mark.slow
@pytest.mark.parametrize("overrides, key, kind, files", BAD_INPUT)
def test_bad_input_is_refused(tmp_path, overrides, key, kind, files):
    config_dir = None
    if files:
        config_dir = tmp_path / "extra_configs"
        for rel, text in files.items():
            (config_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (config_dir / rel).write_text(text)
    run_dir = tmp_path / "run"
    proc = run_sim(tmp_path, *overrides, run_dir=run_dir, config_dir=config_dir)
    output = proc.stderr + proc.stdout
    assert proc.returncode != 0, output
    assert key in output, output
    assert "Traceback" not in output, output
    assert not list(tmp_path.rglob("summary.json"))
    if kind == CONFIG_ERROR:
        assert proc.returncode == 2, output
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("error: "), proc.stderr
        assert key in lines[0]
        assert "wrote" not in proc.stdout


def test_bad_value_in_a_sweep_refuses_the_whole_sweep(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "sim", "-m", *MMC, "officials.count=3,abc",
                           f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: officials.count='abc': must be an integer"]
    assert not sweep_dir.exists()  # no job ran, none half-written


def test_api_refuses_bad_overrides_with_one_line():
    from sim.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"^officials\.cnt=3: no such setting; officials has: "
                       r"count, hours_per_day, schedule, ramp, scale$"):
        load_config(["officials.cnt=3"])
    with pytest.raises(ConfigError, match=r"no such scenario; available: .*mmc"):
        load_config(["scenario=nope"])


# -- 5. nothing already written is lost -------------------------------------------------------
@pytest.mark.slow
def test_rejected_run_keeps_earlier_results(tmp_path):
    run_dir = tmp_path / "run"
    _ok(run_sim(tmp_path, *MMC, "output.applications=true", run_dir=run_dir))
    before = {name: (run_dir / name).read_bytes() for name in RESULT_FILES}
    config_dir = tmp_path / "extra_configs"
    for rel, text in {**_timeline_scenario("bad_tl_value", "{officials.count: 0}"),
                      **_timeline_scenario("bad_tl_group", "{officials: 3}")}.items():
        (config_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (config_dir / rel).write_text(text)
    bad_runs = [
        [*MMC, "officials.count=0"],  # refused by validate()
        [*MMC, "foo=1"],  # refused by Hydra
        ["scenario=nope"],
        ["scenario=bad_tl_value"],  # refused after the timeline is built
        ["scenario=bad_tl_group"],
    ]
    for overrides in bad_runs:
        proc = run_sim(tmp_path, *overrides, run_dir=run_dir, config_dir=config_dir)
        assert proc.returncode != 0, (overrides, proc.stdout, proc.stderr)
        for name in RESULT_FILES:
            assert (run_dir / name).is_file(), f"{name} gone after {overrides}"
            assert (run_dir / name).read_bytes() == before[name], f"{name} changed: {overrides}"
    assert not [p.name for p in run_dir.rglob("*") if p.name.endswith((".tmp", ".sim-tmp"))]


@pytest.mark.slow
def test_rejected_run_keeps_earlier_hydra_record(tmp_path):
    run_dir = tmp_path / "run"
    _ok(run_sim(tmp_path, *MMC, run_dir=run_dir))
    before = _snapshot(run_dir / ".hydra")
    assert before
    proc = run_sim(tmp_path, *MMC, "officials.count=0", run_dir=run_dir)
    assert proc.returncode == 2
    assert _snapshot(run_dir / ".hydra") == before
