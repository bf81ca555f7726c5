"""``chatbot eval`` output: plain text for the terminal, and a report comparing models.

The report (``--report PATH``) is Markdown when PATH ends in ``.md``, else HTML. It holds a
table of every figure by model and one bar chart per metric, drawn as plain SVG (no plotting
library): inline in HTML, beside a Markdown report in ``<name>_plots/``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


@dataclass(frozen=True)
class Figure:
    key: str  # dotted path into one model's report
    label: str
    better: str  # "higher" | "lower"
    digits: int = 3


FIGURES = (
    Figure("generation.perplexity", "Perplexity of the reference answers", "lower", 2),
    Figure("generation.bleu", "BLEU (0-100)", "higher", 1),
    Figure("generation.rouge_l", "ROUGE-L F", "higher"),
    Figure("generation.token_f1", "Token F1", "higher"),
    Figure("generation.rouge_l_generated", "ROUGE-L F of the model's own words", "higher"),
    Figure("generation.token_f1_generated", "Token F1 of the model's own words", "higher"),
    Figure("generation.grounded_rate", "Grounded rate", "higher"),
    Figure("generation.fallback_rate", "Fallback rate", "lower"),
    Figure("generation.abstain_rate", "Abstain rate (the model's handoff reply)", "lower"),
    Figure("generation.grounded_rate_answers", "Grounded rate of stated answers", "higher"),
    Figure("generation.latency_ms.p50", "Model turn latency p50 (ms)", "lower", 0),
    Figure("generation.latency_ms.p95", "Model turn latency p95 (ms)", "lower", 0),
    Figure("recall@1", "Retrieval recall@1", "higher"),
    Figure("in_scope_accuracy", "In-scope accuracy", "higher"),
    Figure("oos_recall", "Out-of-scope recall", "higher"),
    Figure("latency_ms.p50", "Turn latency p50 (ms)", "lower", 0),
)
COUNTS = ("n", "n_in_scope", "generation.n", "generation.n_model", "generation.n_generated")


def by_model(report: Mapping[str, Any], name: str) -> dict[str, Mapping[str, Any]]:
    """``{model: report}`` from a one-model report (named ``name``) or a ``{"models": ...}`` one."""
    if set(report) == {"models"}:
        return dict(report["models"])
    return {name: report}


def lookup(report: Mapping[str, Any], key: str) -> Any:
    value: Any = report
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def text_lines(report: Mapping[str, Any], name: str) -> list[str]:
    """``key: value`` lines, nested objects flattened to dotted keys, a heading per model."""
    models = by_model(report, name)
    lines: list[str] = []
    for model, one in models.items():
        if len(models) > 1:
            lines.append(f"== {model} ==")
        lines.extend(f"{key:>28}: {_fmt(value)}" for key, value in _flatten(one))
    return lines


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in obj.items():
        if isinstance(value, Mapping):
            out.extend(_flatten(value, f"{prefix}{key}."))
        else:
            out.append((prefix + key, value))
    return out


def bar_chart(figure: Figure, values: Mapping[str, Any]) -> str:
    """A horizontal bar per model, as a standalone SVG document."""
    width, left, right, row = 620, 200, 70, 28
    plot = width - left - right
    height = 40 + row * len(values)
    numbers = [v for v in values.values() if isinstance(v, int | float)]
    top = max(numbers, default=0.0) or 1.0
    title = f"{figure.label} ({figure.better} is better)"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<title>{html.escape(title)}</title>',
        f'<text x="4" y="18" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="28" x2="{left}" y2="{height - 6}" stroke="#888"/>',
    ]
    for i, (model, value) in enumerate(values.items()):
        y = 32 + i * row
        label = model if len(model) <= 30 else "…" + model[-29:]
        parts.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{html.escape(label)}</text>'
        )
        length = plot * float(value) / top if isinstance(value, int | float) and value > 0 else 0
        colour = COLOURS[i % len(COLOURS)]
        parts.append(
            f'<rect x="{left}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
            f'fill="{colour}"/>'
        )
        parts.append(
            f'<text x="{left + length + 4:.1f}" y="{y + 15}">'
            f"{html.escape(_fmt(value, figure.digits))}</text>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _plotted(models: Mapping[str, Mapping[str, Any]]) -> list[tuple[Figure, dict[str, Any]]]:
    out = []
    for figure in FIGURES:
        values = {name: lookup(report, figure.key) for name, report in models.items()}
        if any(isinstance(v, int | float) for v in values.values()):
            out.append((figure, values))
    return out


def _table_rows(models: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    rows = [["figure", *models]]
    for key in COUNTS:
        rows.append([key, *(_fmt(lookup(r, key)) for r in models.values())])
    for figure in FIGURES:
        rows.append([figure.label, *(_fmt(lookup(r, figure.key), figure.digits)
                                     for r in models.values())])
    return rows


def write_report(
    path: Path, report: Mapping[str, Any], name: str, command: str = ""
) -> list[Path]:
    """Write the report (and, for Markdown, its SVG plots); returns the files written."""
    models = by_model(report, name)
    plotted = _plotted(models)
    rows = _table_rows(models)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = [path]
    if path.suffix.lower() in (".md", ".markdown"):
        folder = path.with_name(f"{path.stem}_plots")
        folder.mkdir(exist_ok=True)
        lines = ["# chatbot eval", ""]
        if command:
            lines += ["```sh", command, "```", ""]
        lines.append("| " + " | ".join(rows[0]) + " |")
        lines.append("|" + "---|" * len(rows[0]))
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        lines.append("")
        for figure, values in plotted:
            svg = folder / (figure.key.replace(".", "_").replace("@", "_at_") + ".svg")
            svg.write_text(bar_chart(figure, values), encoding="utf-8")
            written.append(svg)
            lines += [f"![{figure.label}]({folder.name}/{svg.name})", ""]
        path.write_text("\n".join(lines), encoding="utf-8")
        return written
    cells = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = [f"<tr>{cells}</tr>"]
    for r in rows[1:]:
        body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    page = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>chatbot eval</title>',
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}figure{margin:1em 0}pre{white-space:pre-wrap}</style>",
        "</head><body><h1>chatbot eval</h1>",
        f"<pre>{html.escape(command)}</pre>" if command else "",
        "<table>", *body, "</table>",
        *(f"<figure>{bar_chart(figure, values)}</figure>" for figure, values in plotted),
        "</body></html>",
    ]
    path.write_text("\n".join(page), encoding="utf-8")
    return written
