"""Self-contained HTML reports (``report.html``) for people who never open a notebook.

One file per run, comparison, sweep or solver folder: figures embedded as PNG (base64), tables
as HTML, no script and no link to the package, so it reads in any browser and survives being
mailed. Every report says what was asked, which scenario and overrides ran, the headline
figures with their intervals, where the numbers come from (calibrated, data, guess) and the
provenance (version, commit, seed, configuration).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sim.files import atomic_write, package_version

# sections kept in their own modules (they import this one's building blocks when called)
from sim.sources import sources_section, sources_table  # noqa: F401
from sim.stats import figure_kind, within_range
from sim.who_waits import held_section, who_waits_section  # noqa: F401

# Headline figures of a run report: (dotted key of summary.json, words).
HEADLINE = (
    ("totals.arrivals", "applications submitted"),
    ("totals.approved", "approved"),
    ("totals.denied", "denied"),
    ("totals.withdrawn", "withdrawn"),
    ("pending_end", "pending at the end"),
    ("held_end", "of which held for ever (military end use)"),
    ("waiting_end", "waiting for a first review at the end"),
    ("peak_pending", "peak pending (each replication's own peak, on its own day)"),
    ("clearance.days_peak_to_clearance", "days from the peak to clearance"),
    ("clearance.days_event_to_clearance", "days from the event to clearance"),
    ("clearance.backlog_end", "clearable backlog at the end"),
    ("mean_wait_days", "mean wait for a first review (days)"),
    ("p90_wait_days", "90th percentile wait (days)"),
    ("mean_wait_days_with_waiting", "mean wait counting those still waiting (days)"),
    ("mean_time_to_decision_days", "mean time to decision (days)"),
    ("p90_time_to_decision_days", "90th percentile time to decision (days)"),
    ("share_decided_within_limit", "decisions within the statutory limit"),
    ("by_group.military.False.share_decided_within_limit",
     "civilian decisions within the statutory limit"),
    ("past_statutory_limit_end", "pending past the statutory limit at the end"),
    ("utilisation", "officials' utilisation"),
)
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:62rem;
margin:2rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
img{max-width:100%;height:auto;border:1px solid #eee}
.question{font-size:1.1rem;background:#f6f8fa;padding:.6rem 1rem;border-left:4px solid #0072B2}
code,pre{background:#f6f8fa;font-size:.85rem}pre{padding:.5rem;overflow-x:auto}
.note{color:#555;font-size:.9rem}
"""


# -- building blocks -------------------------------------------------------------------------
def esc(value: Any) -> str:
    return html.escape(str(value))


def number(value: Any) -> str:
    """A number for a reader: blank when undefined, thousands separators, 3 significant
    digits for small values, shares as percentages only where the caller asks."""
    if value is None or value is pd.NA or isinstance(value, str | bool):
        return "" if value is None or value is pd.NA else esc(value)
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return ""
    if abs(value) >= 1000 or (value == int(value) and abs(value) >= 10):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def share(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{100 * float(value):.1f} %"


def table(frame: pd.DataFrame, formats: dict[str, Any] | None = None) -> str:
    """A DataFrame as an HTML table, numbers formatted for reading."""
    formats = formats or {}
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            fmt = formats.get(column, number)
            cells.append(f"<td>{fmt(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def png(fig) -> str:
    """A matplotlib figure as an embedded <img> (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110)
    finally:
        plt.close(fig)
    return image(buffer.getvalue(), "figure")


def image(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{encoded}">'


def page(title: str, sections: Sequence[str]) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{esc(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")


def write(path: Path, text: str) -> Path:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def commit() -> str:
    """The package's git commit (with ``+changes`` when the work tree differs), or unknown."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def provenance(summary: dict[str, Any], command: str | None) -> str:
    """Version, commit, seed, replications, date, command and the whole configuration."""
    rows = pd.DataFrame({
        "item": ["package version", "commit", "seed", "replications", "written", "command"],
        "value": [package_version(), commit(), summary.get("seed", ""),
                  summary.get("replications", 1), dt.datetime.now().isoformat(timespec="seconds"),
                  command or ""]})
    config = json.dumps(summary.get("config", {}), indent=1, default=str)
    return ("<h2>Provenance</h2>" + table(rows, {"value": esc}) +
            f"<details><summary>the whole configuration</summary><pre>{esc(config)}</pre>"
            "</details>")


# -- a run -----------------------------------------------------------------------------------
def mean_curve_peak(daily: pd.DataFrame | None) -> tuple[float, str] | None:
    """The mean backlog curve's peak (the largest ``pending`` of the daily table, the curve the
    backlog figure draws) and its first date; None without a table."""
    if daily is None or "pending" not in daily or not len(daily):
        return None
    pending = pd.to_numeric(daily["pending"], errors="coerce")
    at = int(pending.to_numpy().argmax())
    return float(pending.iloc[at]), str(daily["date"].iloc[at])


def _peak_rows(summary: dict[str, Any], daily: pd.DataFrame | None) -> list[dict[str, Any]]:
    """With replications, the mean curve's peak as a row of its own: it is not the mean of
    the replications' peaks (each on its own day), and summary.json's ``peak_pending_date``
    is its date."""
    n = summary.get("replications", 1)
    if n <= 1:
        return []
    peak = mean_curve_peak(daily)
    when = peak[1] if peak else summary.get("peak_pending_date")
    return [{"figure": "the mean curve's peak (the curve of the backlog figure)",
             "key": "daily.csv: largest pending", "mean": (f"{number(peak[0])} on {when}"
                                                          if peak else f"on {when}"),
             "95 % CI of the mean": "", "95 % predictive": "", "replications": n}]


def headline_table(summary: dict[str, Any], daily: pd.DataFrame | None = None) -> pd.DataFrame:
    """Headline figures: mean, 95 % interval of the mean, 95 % predictive interval. With
    ``daily`` (the run's daily table), the mean curve's peak follows the mean of the
    replications' peaks."""
    from sim.keys import lookup

    ci, pred = summary.get("ci95") or {}, summary.get("predictive95") or {}
    rows = []
    for key, words in HEADLINE:
        value = lookup(summary, key)
        if value is None and key not in ci:
            continue
        if key == "peak_pending" and summary.get("replications", 1) <= 1:
            words = f"peak pending, on {summary.get('peak_pending_date')}"  # one curve, one peak
        fmt = share if figure_kind(key) == "share" else number
        # every headline figure is a count, a duration or a share: a t interval of few
        # replications can reach past that range, so it is cut there (said under the table)
        low, high = (within_range(v, key) for v in (ci.get(key) or [None, None, None])[:2])
        plow, phigh = (pred.get(key) or [None, None, None])[:2]
        n = (ci.get(key) or [None, None, summary.get("replications", 1)])[2]
        rows.append({"figure": words, "key": key, "mean": fmt(value),
                     "95 % CI of the mean": f"{fmt(low)} – {fmt(high)}" if low is not None
                     else "", "95 % predictive": f"{fmt(plow)} – {fmt(phigh)}"
                     if plow is not None else "", "replications": n})
        if key == "peak_pending":
            rows += _peak_rows(summary, daily)
    return pd.DataFrame(rows)


def headline_html(summary: dict[str, Any], daily: pd.DataFrame | None = None) -> str:
    """:func:`headline_table` as HTML (its cells are formatted already)."""
    frame = headline_table(summary, daily)
    return table(frame, {c: esc for c in frame.columns if c != "replications"})


def summary_sentence(summary: dict[str, Any]) -> str:
    """One honest sentence on clearance: threshold, when, whether it stayed cleared."""
    cl = summary["clearance"]
    n = summary.get("replications", 1)
    what = "waiting for an official" if cl["backlog"] == "waiting" else "pending"
    held = "" if cl.get("held_counted") else "; held ones counted apart"
    text = (f"The backlog (applications {what}{held}) counts as cleared below "
            f"{number(cl['threshold'])}. ")
    if cl["clearance_date"]:
        text += f"It cleared on {cl['clearance_date']}" + (
            " (mean date over replications)" if n > 1 else "")
        if cl.get("stayed_cleared") is False:
            text += (f", but did not stay cleared: it rose back to the threshold on "
                     f"{cl['back_above_threshold_date']}, and ended at "
                     f"{number(cl['backlog_end'])}")
        text += "."
    else:
        done = cl.get("cleared_in_replications")
        text += ((f"It did not clear by {summary['end_date']}" if n == 1 else
                  f"It did not clear in every replication (cleared in {done} of {n})")
                 + f"; it ended at {number(cl['backlog_end'])}.")
    return text


def _with_interval(summary: dict[str, Any], key: str, fmt=None) -> str:
    from sim.keys import lookup

    fmt = fmt or number
    text = fmt(lookup(summary, key))
    ci = (summary.get("ci95") or {}).get(key)
    if ci and ci[0] is not None:  # cut at the figure's range, as in the report's table
        low, high = (within_range(v, key) for v in ci[:2])
        text += f" [{fmt(low)}, {fmt(high)}]"
    return text


def _one_member(summary: dict[str, Any], n: int) -> list[str]:
    """With a calibrated ensemble and one replication, the run is one draw of one member: the
    figures below are one possible 2025, not the ensemble's answer."""
    ens = summary.get("ensemble")
    if n > 1 or not ens:
        return []
    used = ens["used"][0] if ens.get("used") else "?"
    return [f"  one replication = one draw of ensemble member {used} of {ens['members']}: "
            "other members give other answers; for the band over members and chance run "
            "replications=20 jobs=2"]


def peak_line(summary: dict[str, Any], daily: pd.DataFrame | None = None) -> str:
    """The peak in words: one run's peak and its date; with replications, the mean of the
    replications' peaks (each on its own day) and, apart, the mean curve's peak and date."""
    if summary.get("replications", 1) <= 1:
        return (f"peak pending {_with_interval(summary, 'peak_pending')} on "
                f"{summary['peak_pending_date']}")
    peak = mean_curve_peak(daily)
    curve = (f"the mean curve peaks at {number(peak[0])} on {peak[1]}" if peak
             else f"the mean curve peaks on {summary['peak_pending_date']}")
    return (f"peak pending: mean of the replications' peaks "
            f"{_with_interval(summary, 'peak_pending')} (each on its own day); {curve}")


def summary_lines(summary: dict[str, Any], seed: int,
                  daily: pd.DataFrame | None = None) -> list[str]:
    """The terminal summary of a run: counts, peak, clearance (threshold, from the peak and
    the event, whether it stayed cleared), held apart, statutory compliance; with
    replications, the mean and its 95 % interval in brackets. ``daily``: the run's daily
    table, for the mean curve's peak (without it, only its date is known)."""
    n = summary.get("replications", 1)
    t = summary["totals"]
    cl = summary["clearance"]
    reps = f", {n} replications: means [95 % CI]" if n > 1 else ""
    lines = [f"scenario {summary['scenario']}: {summary['start_date']} to "
             f"{summary['end_date']}, seed {seed}{reps}", *_one_member(summary, n),
             f"  arrived {number(t['arrivals'])}, approved {number(t['approved'])}, denied "
             f"{number(t['denied'])}, withdrawn {number(t['withdrawn'])}, pending at end "
             f"{_with_interval(summary, 'pending_end')} (held for ever "
             f"{number(summary['held_end'])}, counted "
             f"{'in' if cl.get('held_counted') else 'apart from'} the backlog)",
             f"  {peak_line(summary, daily)}", f"  {summary_sentence(summary)}"]
    if cl.get("days_peak_to_clearance") is not None:
        peak = _with_interval(summary, "clearance.days_peak_to_clearance")
        days = f"  days to clearance: {peak} from the peak"
        if cl.get("event") and cl.get("days_event_to_clearance") is not None:
            days += (f", {_with_interval(summary, 'clearance.days_event_to_clearance')} from "
                     f"{cl['event']} ({cl['event_date']})")
        if n > 1:
            days += f" (replications that cleared: {cl.get('cleared_in_replications')} of {n})"
        lines.append(days)
    lines.append(f"  mean wait {_with_interval(summary, 'mean_wait_days')} days (p90 "
                 f"{number(summary['p90_wait_days'])}); decisions within the statutory limit "
                 f"{_with_interval(summary, 'share_decided_within_limit', share)}; utilisation "
                 f"{share(summary['utilisation'])}")
    if summary.get("calendar_note"):
        lines.append(f"  calendar: {summary['calendar_note']}")
    if summary["waiting_end"]:
        lines.append(f"  still waiting for a first review at the end: "
                     f"{number(summary['waiting_end'])} (mean "
                     f"{number(summary['mean_age_waiting_end_days'])} days so far; mean wait "
                     f"with them {number(summary['mean_wait_days_with_waiting'])} days)")
    return lines


def run_report(out_dir: Path, results, document: dict[str, Any],
               command: str | None = None) -> Path:
    """``report.html`` of a run folder (sim.results.Results; ``document``: its summary.json
    content)."""
    params, summary = results.params, results.summary
    doc = document
    question = params.output.question or (
        f"What happens to the licence backlog under scenario {params.name}, from "
        f"{summary['start_date']} to {summary['end_date']}?")
    sections = [f'<p class="question">{esc(question)}</p>',
                f"<p>{esc(summary_sentence(summary))}</p>",
                f"<p class=\"note\">{results.n} replication(s), seed {params.seed}. "
                f"{esc(summary.get('bands', ''))}.</p>"]
    if command:
        sections.append(f"<p>Command: <code>{esc(command)}</code></p>")
    if summary.get("calendar_note"):
        sections.append(f"<p class=\"note\"><b>Calendar:</b> {esc(summary['calendar_note'])}</p>")
    sections += ["<h2>Headline figures</h2>", headline_html(summary, results.daily),
                 '<p class="note">95 % CI of the mean: Student t over replications, cut at the '
                 "figure's possible range (no count below 0, no share above 100 %). 95 % "
                 "predictive: where one more replication would fall. Replications: how many "
                 "define the figure (a backlog that never cleared has no clearance day).</p>"]
    sections += ["<h2>The backlog</h2>", figure_file(Path(out_dir) / "backlog.png")]
    sections += who_waits_section(results, Path(out_dir) / "who_waits.png")
    sections += record_section(summary, Path(out_dir) / "exports.png")
    sections += compliance_section(summary)
    sections += sources_section(params)
    sections.append(provenance(doc, command))
    return write(Path(out_dir) / "report.html", page(f"Rare-earth licences: {params.name}",
                                                     sections))


def record_section(summary: dict[str, Any], figure: Path) -> list[str]:
    """The run against China's customs exports of magnets, month by month."""
    record = summary.get("exports") or {}
    if not record:
        return []
    rows, inside, n = [], 0, 0
    for series, months in record.items():
        for month, r in sorted(months.items()):
            n += 1
            inside += r["inside"]
            rows.append({"series": "all destinations" if series == "total" else series,
                         "month": month, "observed": f"{r['observed']:.2f} ({r['kind']}, "
                         f"{number(r['tonnes'])} t)", "model mean": f"{r['mean']:.2f}",
                         "95 % band with errors": f"{r['with_error_low']:.2f} to "
                         f"{r['with_error_high']:.2f}", "inside": "yes" if r["inside"] else
                         "NO"})
    return ["<h2>Against the record: China's magnet exports</h2>",
            f"<p>{inside} of {n} observed months fall inside the model's 95 % band.</p>",
            figure_file(figure),
            '<p class="note">Export index: a month\'s customs exports of rare-earth magnets '
            "(HS 8505.11.10) against 2024's monthly mean; the model's: its licensed shipments "
            "(approvals after a shipping lag) and the flow needing no licence, against its own "
            "pre-control flow (sim/exports.py). The band is the replications' 2.5-97.5 % "
            "range widened by the observation error and the model discrepancy the calibration "
            "states; open points are derived from a published change. Source: "
            "seeds/customs_magnet_exports.csv.</p>",
            table(pd.DataFrame(rows), {k: esc for k in ("series", "month", "observed",
                                                        "model mean", "95 % band with errors",
                                                        "inside")})]


def figure_file(path: Path) -> str:
    """A figure the run wrote, embedded; figures are drawn once, when written, so with
    ``output.plots=false`` the report says they are off."""
    if path.is_file():
        return image(path.read_bytes(), path.stem)
    return ('<p class="note">Figures are off in this run (output.plots=false); '
            "rerun with output.plots=true to see them here.</p>")


def compliance_section(summary: dict[str, Any]) -> list[str]:
    """The share of decisions within the statutory limit, overall and by group."""
    rows = [{"group": "all", "share within the limit": summary["share_decided_within_limit"],
             "decisions": summary["decisions"],
             "pending past the limit at the end": summary["past_statutory_limit_end"]}]
    for dim, values in summary["by_group"].items():
        if dim not in ("destination", "trusted", "military"):
            continue
        for value, fig in values.items():
            if fig["arrivals"]:
                rows.append({"group": f"{dim} = {value}",
                             "share within the limit": fig["share_decided_within_limit"],
                             "decisions": fig["decisions"],
                             "pending past the limit at the end":
                                 fig["past_statutory_limit_end"]})
    limit = summary.get("config", {}).get("statutory", {}).get("working_days", 45)
    return [f"<h2>Statutory compliance</h2><p>Decisions due within {limit} working days "
            "of acceptance.</p>",
            table(pd.DataFrame(rows), {"group": esc, "share within the limit": share})]


# -- a comparison, a sweep, a solution -------------------------------------------------------
def compare_report(out_dir: Path, labels: Sequence[str], summaries: Sequence[dict[str, Any]],
                   differences: pd.DataFrame, figures: Sequence[Any], command: str) -> Path:
    """``report.html`` of a comparison (sim.compare)."""
    others = " and ".join(f"“{label}”" for label in labels[1:])
    sections = [f'<p class="question">How does {esc(others)} differ from “{esc(labels[0])}”, '
                "replication by replication (common random numbers)?</p>",
                f"<p>Command: <code>{esc(command)}</code></p>",
                "<h2>Paired differences</h2>",
                "<p class=\"note\">Each difference is taken within a replication (same seed, "
                "same random streams, same ensemble member), then averaged; the interval is "
                "the 95 % t interval of that mean.</p>",
                *[table(_difference_view(differences, labels[0], label),
                        {"figure": esc, "key": esc, "95 % CI": esc})
                  for label in labels[1:]]]
    sections += ["<h2>Backlog differences</h2>", *[png(f) for f in figures]]
    for label, summary in zip(labels, summaries, strict=True):
        sections += [f"<h2>{esc(label)}</h2><p>{esc(summary_sentence(summary))}</p>"]
    sections.append(provenance(summaries[0], command))
    return write(Path(out_dir) / "report.html", page("Rare-earth licences: comparison",
                                                     sections))


def _difference_view(differences: pd.DataFrame, base: str, label: str) -> pd.DataFrame:
    """One comparison's rows for reading: both means, the difference and its interval."""
    rows = differences[differences["against"] == f"{label} − {base}"]
    return pd.DataFrame({
        "figure": rows["figure"], "key": rows["key"], base: rows["reference"],
        label: rows["other"], f"difference ({label} − {base})": rows["difference"],
        "95 % CI": [f"{number(lo)} – {number(hi)}"
                    for lo, hi in zip(rows["ci95_low"], rows["ci95_high"], strict=True)]})


def sweep_report(sweep, table_frame: pd.DataFrame) -> Path:
    """``report.html`` of a sweep folder: the summary table and the comparison plots."""
    folder = Path(sweep.folder)
    command = " ".join(["python -m sim -m", *(sweep.command or [])])
    counts = {s: len(sweep.with_status(s)) for s in ("ok", "failed", "missing")}
    sections = [f'<p class="question">How do the figures move over {esc(", ".join(sweep.keys))}'
                f'?</p>', f"<p>Command: <code>{esc(command)}</code></p>",
                f"<p>{len(sweep.jobs)} jobs: {counts['ok']} finished, {counts['failed']} "
                f"failed, {counts['missing']} missing.</p>", "<h2>Figures</h2>"]
    for plot in sorted(folder.glob("sweep_*.png")):
        sections.append(image(plot.read_bytes(), plot.stem))
    keep = [c for c in table_frame.columns if not c.endswith(("_low", "_high"))
            and c not in ("folder",)]
    sections += ["<h2>The jobs</h2>", table(table_frame[keep], {
        c: esc for c in ("status", "message", *sweep.keys)})]
    return write(folder / "report.html", page("Rare-earth licences: sweep", sections))


def solve_report(out_dir: Path, document: dict[str, Any], evaluations: pd.DataFrame,
                 figures: Sequence[Any], run_summary: dict[str, Any] | None) -> Path:
    """``report.html`` of a solver folder (sim.solve)."""
    d = document
    bound = (f"at least {d['at_least']}" if d.get("at_least") is not None
             else f"at most {d['at_most']}")
    question = (f"What is the {d['seek']} {d['lever']} such that {d['target']} is {bound} in "
                f"at least {d['probability']:.0%} of replications?")
    answer = ("no answer in the bracket" if d["answer"] is None
              else f"{d['lever']} = {d['answer']:g}")
    sections = [f'<p class="question">{esc(question)}</p>',
                f"<p><b>Answer: {esc(answer)}</b> ({esc(d['status'])}). {esc(d['message'])}</p>",
                f"<p>Re-run it: <code>{esc(d['rerun'])}</code></p>" if d["rerun"] else "",
                "<h2>Values run</h2>",
                "<p class=\"note\">Every value ran the same replications (common random "
                "numbers). share_met: the share of replications meeting the threshold.</p>",
                table(evaluations, {"share_met": share}), *[png(f) for f in figures]]
    if run_summary is not None:
        sections += ["<h2>At the answer</h2>", f"<p>{esc(summary_sentence(run_summary))}</p>",
                     headline_html(run_summary)]
    sections.append(provenance({"config": d.get("config", {}), **(run_summary or {}),
                                "seed": d["seed"], "replications": d["replications"]},
                               d["command"]))
    return write(Path(out_dir) / "report.html", page("Rare-earth licences: what would it take",
                                                     sections))
