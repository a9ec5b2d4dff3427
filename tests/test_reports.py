"""report.html of runs, sweeps and solver folders: self-contained, with figures and tables.

Each report is parsed as HTML: every image must be an embedded PNG that decodes (a real
picture, not a link), and the expected sections and tables must be there with numbers that
match the run's own files.
"""

from __future__ import annotations

import base64
import json
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from sim.who_waits import split

ROOT = Path(__file__).resolve().parent.parent
MMC = ["scenario=mmc", "horizon_days=600", "warmup_days=60", "replications=3"]


class Page(HTMLParser):
    """Images, tables (as lists of rows of cell texts), headings and links of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.tables, self.headings, self.links = [], [], [], []
        self._cell = self._row = self._heading = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag in ("link", "script") or (tag == "a" and "href" in attrs):
            self.links.append((tag, attrs))
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""
        elif tag in ("h1", "h2"):
            self._heading = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self.tables:
            self.tables[-1].append(self._row)
            self._row = None
        elif tag in ("h1", "h2"):
            self.headings.append(self._heading.strip())
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        if self._heading is not None:
            self._heading += data


def png_size(src: str) -> tuple[int, int]:
    """Width and height of an embedded PNG (fails unless it is one)."""
    assert src.startswith("data:image/png;base64,"), src[:40]
    data = base64.b64decode(src.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def check_self_contained(page: Page) -> None:
    assert page.images, "no figure"
    for src in page.images:
        w, h = png_size(src)
        assert w > 200 and h > 100
    assert not page.links, f"the report links elsewhere: {page.links}"


@pytest.mark.slow
def test_run_report(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "sim", *MMC, f"hydra.run.dir={out}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    page = Page((out / "report.html").read_text())
    check_self_contained(page)
    assert len(page.images) >= 2  # the backlog and who waits longest
    for heading in ("Headline figures", "The backlog", "Who waits longest",
                    "Statutory compliance", "What is calibrated and what is a guess",
                    "Provenance"):
        assert heading in page.headings, (heading, page.headings)
    summary = json.loads((out / "summary.json").read_text())
    headline = {row[1]: row for row in page.tables[0][1:]}  # keyed by the dotted key column
    arrivals = headline["totals.arrivals"][2]
    assert int(arrivals.replace(",", "")) == round(summary["totals"]["arrivals"])
    assert "–" in headline["mean_wait_days"][3]  # an interval with three replications
    who, _ = split(pd.read_csv(out / "who_waits.csv"))  # ranked as the figure draws them
    who_rows = page.tables[1][1:]
    assert [r[0] for r in who_rows] == who["group"].tolist()
    provenance = {r[0]: r[1] for r in page.tables[-1][1:]}
    assert provenance["seed"] == str(summary["seed"])
    assert provenance["replications"] == "3"


@pytest.mark.slow
def test_sweep_and_solver_reports(tmp_path):
    sweep = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-m", "sim", "-m", "officials.count=5,7", *MMC,
                           "output.plots=false", f"hydra.sweep.dir={sweep}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    page = Page((sweep / "report.html").read_text())
    check_self_contained(page)
    jobs = page.tables[-1]
    assert len(jobs) == 3 and "officials.count" in jobs[0]
    # each job folder has its own report too
    assert all((f / "report.html").is_file() for f in sweep.iterdir() if f.is_dir()
               and (f / "summary.json").is_file())

    solve = tmp_path / "solve"
    done = subprocess.run([sys.executable, "-m", "sim.solve", "solve.lever=officials.count",
                           "solve.target=mean_wait_days", "solve.at_most=0.5",
                           "solve.probability=0.6", "solve.low=5", "solve.high=8",
                           "solve.check_points=0", *MMC, f"hydra.run.dir={solve}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    page = Page((solve / "report.html").read_text())
    check_self_contained(page)
    doc = json.loads((solve / "solve.json").read_text())
    values = [float(r[0]) for r in page.tables[0][1:]]
    assert sorted(values) == sorted(e["value"] for e in doc["evaluations"])
    assert f"officials.count = {doc['answer']}" in (solve / "report.html").read_text()
