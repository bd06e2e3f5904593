"""The report's plots: this change beside its baseline, from both revisions' plot data.

What to draw comes from `dvc.yaml`'s ``plots:`` (file, title, template, x,
y), and the data from the plot CSVs, which live in Git (``cache: false``):
the baseline's are read from its commit, so no remote and no second pipeline
run are needed. Each plot is rendered two ways:

- ``png``: one image per plot with both revisions drawn together, for a
  poster that uploads local images (`cml comment` publishes every image the
  Markdown links);
- ``inline``: Mermaid charts and Markdown tables inside the Markdown itself,
  which GitHub renders in a comment posted by `gh` and in the job summary,
  where a local image path would be a broken link.

Line templates (``simple``, ``linear``, ``smooth``, ``scatter``) become
curves, ``confusion`` a table of counts, ``bar_*`` a table of the largest
values.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml

from churn.release import revision

if TYPE_CHECKING:
    from collections.abc import Sequence

    from matplotlib.axes import Axes

Style = Literal["png", "inline"]
LINE_TEMPLATES = frozenset({"simple", "linear", "smooth", "scatter"})
GRID_POINTS = 21  # a curve is resampled at this many evenly spaced x values for Mermaid
TOP_BARS = 10
BASELINE_COLOUR, CURRENT_COLOUR = "#9e9e9e", "#1f77b4"

Table = list[dict[str, str]]


@dataclass(frozen=True)
class PlotSpec:
    """One entry of dvc.yaml's ``plots:``."""

    path: str
    title: str
    template: str
    x: str
    y: str
    x_label: str
    y_label: str

    @property
    def name(self) -> str:
        return Path(self.path).stem

    @property
    def kind(self) -> Literal["line", "confusion", "bar"] | None:
        if self.template in LINE_TEMPLATES:
            return "line"
        if self.template == "confusion":
            return "confusion"
        return "bar" if self.template.startswith("bar") else None


@dataclass(frozen=True)
class PlotPair:
    spec: PlotSpec
    current: Table | None
    baseline: Table | None


def specs(dvc_yaml: Path = Path("dvc.yaml")) -> list[PlotSpec]:
    """The plots dvc.yaml defines from a single CSV with an x and a y, in its order."""
    data = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}
    found = []
    for entry in data.get("plots", []):
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        path, props = next(iter(entry.items()))
        props = props or {}
        if not str(path).endswith(".csv") or not {"x", "y"} <= props.keys():
            continue
        x, y = str(props["x"]), str(props["y"])
        found.append(
            PlotSpec(
                path=str(path),
                title=str(props.get("title", Path(path).stem)),
                template=str(props.get("template", "linear")),
                x=x,
                y=y,
                x_label=str(props.get("x_label", x)),
                y_label=str(props.get("y_label", y)),
            )
        )
    return [spec for spec in found if spec.kind is not None]


def _table(text: bytes | None) -> Table | None:
    if text is None:
        return None
    return list(csv.DictReader(io.StringIO(text.decode("utf-8"))))


def pairs(baseline_commit: str | None, plot_specs: Sequence[PlotSpec]) -> list[PlotPair]:
    """Each plot's data in the working tree and at ``baseline_commit`` (None: no baseline)."""
    result = []
    for spec in plot_specs:
        path = Path(spec.path)
        current = _table(path.read_bytes()) if path.is_file() else None
        baseline = (
            None if baseline_commit is None else _table(revision.show(baseline_commit, spec.path))
        )
        if current is not None or baseline is not None:
            result.append(PlotPair(spec, current, baseline))
    return result


# -- data shaping ------------------------------------------------------------------------


def _points(table: Table, spec: PlotSpec) -> list[tuple[float, float]]:
    points = [(float(row[spec.x]), float(row[spec.y])) for row in table]
    return sorted(points)


def resample(points: list[tuple[float, float]], grid: list[float]) -> list[float]:
    """Linear interpolation of a curve at ``grid`` (held flat beyond its ends)."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    values = []
    for g in grid:
        if g <= xs[0]:
            values.append(ys[0])
            continue
        if g >= xs[-1]:
            values.append(ys[-1])
            continue
        # The last point at or before g, then the first after it.
        i = max(i for i, x in enumerate(xs) if x <= g)
        j = next(j for j in range(i + 1, len(xs)) if xs[j] > g)
        share = (g - xs[i]) / (xs[j] - xs[i])
        values.append(ys[i] + share * (ys[j] - ys[i]))
    return values


def _counts(table: Table, spec: PlotSpec) -> Counter[tuple[str, str]]:
    return Counter((row[spec.x], row[spec.y]) for row in table)


def _bars(table: Table, spec: PlotSpec) -> dict[str, float]:
    return {row[spec.y]: float(row[spec.x]) for row in table}


# -- inline: Mermaid and Markdown --------------------------------------------------------


def _number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _mermaid_line(pair: PlotPair, baseline_name: str) -> list[str]:
    spec = pair.spec
    curves = {
        name: _points(table, spec)
        for name, table in (("baseline", pair.baseline), ("current", pair.current))
        if table
    }
    low = min(x for points in curves.values() for x, _ in points)
    high = max(x for points in curves.values() for x, _ in points)
    grid = [low + (high - low) * i / (GRID_POINTS - 1) for i in range(GRID_POINTS)]
    series = {name: resample(points, grid) for name, points in curves.items()}
    y_low = min(min(values) for values in series.values())
    y_high = max(max(values) for values in series.values())
    colours = [BASELINE_COLOUR] * ("baseline" in series) + [CURRENT_COLOUR] * ("current" in series)
    lines = [
        "```mermaid",
        "---",
        "config:",
        "  themeVariables:",
        "    xyChart:",
        f'      plotColorPalette: "{", ".join(colours)}"',
        "---",
        "xychart-beta",
        f'  title "{spec.title}"',
        f'  x-axis "{spec.x_label}" {low:.3g} --> {high:.3g}',
        f'  y-axis "{spec.y_label}" {min(0.0, y_low):.3g} --> {max(1.0, y_high):.3g}',
    ]
    lines += [f"  line [{', '.join(f'{v:.4f}' for v in values)}]" for values in series.values()]
    lines.append("```")
    legend = []
    if "baseline" in series:
        legend.append(f"grey: `{baseline_name}`")
    if "current" in series:
        legend.append("blue: this change")
    return [*lines, "", f"<sub>{', '.join(legend)}</sub>"]


def _confusion_table(pair: PlotPair, baseline_name: str) -> list[str]:
    spec = pair.spec
    now = _counts(pair.current, spec) if pair.current else Counter()
    then = _counts(pair.baseline, spec) if pair.baseline else None
    levels = sorted({level for key in [*now, *(then or {})] for level in key})
    lines = [
        f"**{spec.title}** (rows: {spec.x}, columns: {spec.y}"
        + (f"; `{baseline_name}` → this change)" if then is not None else ")"),
        "",
        f"| {spec.x} \\ {spec.y} | " + " | ".join(levels) + " |",
        "|---|" + "--:|" * len(levels),
    ]
    for actual in levels:
        cells = []
        for predicted in levels:
            count = now.get((actual, predicted), 0)
            cells.append(
                f"{then.get((actual, predicted), 0)} → {count}" if then is not None else str(count)
            )
        lines.append(f"| {actual} | " + " | ".join(cells) + " |")
    return lines


def _bar_table(pair: PlotPair, baseline_name: str) -> list[str]:
    spec = pair.spec
    now = _bars(pair.current, spec) if pair.current else {}
    then = _bars(pair.baseline, spec) if pair.baseline else {}
    order = sorted(set(now) | set(then), key=lambda k: -abs(now.get(k, then.get(k, 0.0))))
    lines = [
        f"**{spec.title}** (largest {TOP_BARS})",
        "",
        f"| {spec.y} | `{baseline_name}` | this change |",
        "|---|--:|--:|",
    ]
    lines += [
        f"| {key} | {_number(then.get(key))} | {_number(now.get(key))} |"
        for key in order[:TOP_BARS]
    ]
    return lines


def inline(plot_pairs: Sequence[PlotPair], baseline_name: str) -> list[str]:
    """Markdown (Mermaid charts and tables) for every plot."""
    render = {"line": _mermaid_line, "confusion": _confusion_table, "bar": _bar_table}
    lines: list[str] = []
    for pair in plot_pairs:
        kind = pair.spec.kind
        assert kind is not None
        lines += [*render[kind](pair, baseline_name), ""]
    return lines[:-1]


# -- png: matplotlib ---------------------------------------------------------------------


def write_png(plot_pairs: Sequence[PlotPair], out_dir: Path, baseline_name: str) -> list[Path]:
    """One image per plot with both revisions, in ``out_dir``; the paths in order."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for pair in plot_pairs:
        spec = pair.spec
        fig, axes = plt.subplots(1, 2 if spec.kind == "confusion" else 1, figsize=(6.4, 4.2))
        if spec.kind == "line":
            _draw_lines(axes, pair, baseline_name)
        elif spec.kind == "bar":
            _draw_bars(axes, pair, baseline_name)
        else:
            _draw_confusion(axes, pair, baseline_name)
        fig.suptitle(spec.title)
        fig.tight_layout()
        path = out_dir / f"{spec.name}.png"
        # No timestamp or software version in the file: the same data, the same bytes.
        fig.savefig(path, dpi=90, metadata={"Software": None})
        plt.close(fig)
        written.append(path)
    return written


def _draw_lines(ax: Axes, pair: PlotPair, baseline_name: str) -> None:
    spec = pair.spec
    for table, label, colour, style in (
        (pair.baseline, baseline_name, BASELINE_COLOUR, "--"),
        (pair.current, "this change", CURRENT_COLOUR, "-"),
    ):
        if table:
            xs, ys = zip(*_points(table, spec), strict=True)
            ax.plot(xs, ys, style, color=colour, label=label)
    ax.set_xlabel(spec.x_label)
    ax.set_ylabel(spec.y_label)
    ax.legend()


def _draw_bars(ax: Axes, pair: PlotPair, baseline_name: str) -> None:
    spec = pair.spec
    now = _bars(pair.current, spec) if pair.current else {}
    then = _bars(pair.baseline, spec) if pair.baseline else {}
    keys = sorted(set(now) | set(then), key=lambda k: abs(now.get(k, then.get(k, 0.0))))
    keys = keys[-TOP_BARS:]
    positions = range(len(keys))
    height = 0.4
    ax.barh(
        [p + height / 2 for p in positions],
        [then.get(k, 0.0) for k in keys],
        height,
        color=BASELINE_COLOUR,
        label=baseline_name,
    )
    ax.barh(
        [p - height / 2 for p in positions],
        [now.get(k, 0.0) for k in keys],
        height,
        color=CURRENT_COLOUR,
        label="this change",
    )
    ax.set_yticks(list(positions), keys)
    ax.set_xlabel(spec.x)
    ax.legend()


def _draw_confusion(axes: Sequence[Axes], pair: PlotPair, baseline_name: str) -> None:
    spec = pair.spec
    tables = ((pair.baseline, baseline_name), (pair.current, "this change"))
    levels = sorted(
        {level for table, _ in tables if table for key in _counts(table, spec) for level in key}
    )
    for ax, (table, label) in zip(axes, tables, strict=True):
        ax.set_title(label)
        if not table:
            ax.axis("off")
            continue
        counts = _counts(table, spec)
        grid = [[counts.get((a, p), 0) for p in levels] for a in levels]
        ax.imshow(grid, cmap="Blues")
        darkest = max(max(row) for row in grid)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                colour = "white" if value > darkest / 2 else "black"  # readable on any shade
                ax.text(j, i, str(value), ha="center", va="center", color=colour)
        ax.set_xticks(range(len(levels)), levels)
        ax.set_yticks(range(len(levels)), levels)
        ax.set_xlabel(spec.y)
        ax.set_ylabel(spec.x)
