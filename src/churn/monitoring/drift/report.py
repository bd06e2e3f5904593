"""``churn drift``'s outputs: the self-contained HTML report, and the command's file I/O.

`render_html` turns a `DriftResult` into one HTML page (inline SVG charts
drawn by matplotlib, imported only here and only when a report is asked
for); `main` reads the two CSV files, compares them and writes the reports.
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING

import numpy as np

from churn.monitoring.drift.checks import load_checked
from churn.monitoring.drift.profile import build_profile, count
from churn.monitoring.drift.result import TABLE_HEADER, DriftResult, compare_counts
from churn.monitoring.drift.stats import format_p

if TYPE_CHECKING:
    from pathlib import Path

    from churn.core.domain import Domain
    from churn.core.params import DriftParams


def render_html(result: DriftResult, *, title: str = "") -> str:
    """A self-contained HTML report: verdict, table, one bar chart per feature.

    ``title`` names what the data is about (the contract's ``title``). Charts
    are inline SVG drawn by matplotlib (text kept as text), so the file needs
    no network, no JavaScript and no companion files.
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in TABLE_HEADER)
    body = []
    for feature, cells in zip(result.features, result.rows(), strict=True):
        row_class = ' class="drifted"' if feature.drifted else ""
        name = f'<a href="#{html.escape(feature.feature)}">{html.escape(cells[0])}</a>'
        rest = "".join(f"<td>{html.escape(c)}</td>" for c in cells[1:])
        body.append(f"<tr{row_class}><td>{name}</td>{rest}</tr>")
    sections = []
    for feature, svg in zip(result.features, _charts(result), strict=True):
        status = "drifted" if feature.drifted else "stable"
        sections.append(
            f'<section id="{html.escape(feature.feature)}"><h3>{html.escape(feature.feature)} '
            f'<span class="{status}">{status}</span></h3>'
            f"<p>PSI {feature.psi:.3f}, chi2 {feature.chi2:.1f} on {feature.dof} degrees of "
            f"freedom, p {html.escape(format_p(feature.p_value))}</p>{svg}</section>"
        )
    verdict_class = "drifted" if result.drift else "stable"
    rules = result.params
    thresholds = html.escape(
        f"PSI >= {rules.psi_threshold:g} and p < {rules.alpha:g} / {len(result.features)} "
        f"features = {result.alpha_per_feature:.1e}; the data has drifted when at least "
        f"{rules.min_drifted_features} feature(s) have; numeric bins at the reference's "
        f"{rules.numeric_bins}-quantiles."
    )
    page_title = html.escape(f"Data drift: {title}" if title else "Data drift")
    subtitle = f"<p><strong>{html.escape(title)}</strong></p>\n" if title else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{page_title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: left; }}
tr.drifted td {{ background: #fde8e4; font-weight: 600; }}
.drifted {{ color: #b3261e; }} .stable {{ color: #1e6b35; }}
h1 span, h3 span {{ font-size: 0.8em; }} svg {{ max-width: 100%; height: auto; }}
code {{ font-size: 0.85rem; }}
</style></head><body>
<h1>Data drift: <span class="{verdict_class}">{"DRIFT" if result.drift else "NO DRIFT"}</span></h1>
{subtitle}<p>{html.escape(result.headline())}</p>
<p>A feature has drifted when its population stability index reaches the threshold and
the chi-square test on the same bins is significant after a Bonferroni correction over
the features (params.yaml, <code>drift</code>): {thresholds}</p>
<table><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<h2>Features</h2>
<p>Share of rows per bin, reference against current. Numeric bins are the reference's
quantiles; values outside the reference's range fall in the end bins.</p>
{chr(10).join(sections)}
</body></html>
"""


def _charts(result: DriftResult) -> list[str]:
    """One grouped bar chart per feature (shares per bin), as inline SVG text."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        for number, feature in enumerate(result.features):
            ref = np.asarray(feature.reference_counts, np.float64)
            cur = np.asarray(feature.current_counts, np.float64)
            x = np.arange(len(feature.bins))
            fig, ax = plt.subplots(figsize=(7, 2.4))
            ax.bar(x - 0.2, ref / ref.sum(), width=0.4, color="#9e9e9e", label="reference")
            colour = "#b3261e" if feature.drifted else "#1f6fb2"
            ax.bar(x + 0.2, cur / cur.sum(), width=0.4, color=colour, label="current")
            rotate = 30 if sum(len(b) for b in feature.bins) > 60 else 0
            ax.set_xticks(x, feature.bins, rotation=rotate, ha="right" if rotate else "center")
            ax.set_ylabel("share of rows")
            ax.spines[["top", "right"]].set_visible(False)
            ax.legend(frameon=False, fontsize=8)
            fig.tight_layout()
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg", metadata={"Date": None})
            plt.close(fig)
            charts.append(_inline_svg(buffer.getvalue(), prefix=f"chart{number}-"))
    return charts


def _inline_svg(svg: str, prefix: str) -> str:
    """An SVG file's text made fit to sit beside others in one HTML page.

    Drops the XML prolog and the metadata block, and prefixes every id (and
    every reference to one): matplotlib names its groups ``figure_1``,
    ``axes_1``... in every file, and ids must be unique in a page.
    """
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r'id="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
    return re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', svg)


# --- the command: files in, reports out -------------------------------------


def main(
    reference_path: Path,
    current_path: Path,
    params: DriftParams,
    *,
    domain: Domain,
    report: Path | None = None,
    json_out: Path | None = None,
) -> DriftResult:
    """Compare two CSV files and write the requested reports; returns the result."""
    contract = domain.contract
    reference = load_checked(reference_path, domain=domain)
    current = load_checked(current_path, domain=domain)
    profile = build_profile(reference, params.numeric_bins, contract=contract)
    result = compare_counts(
        profile, count(profile, current), params, sources=(str(reference_path), str(current_path))
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(render_html(result, title=contract.title))
    return result
