"""The console's analytics tab: number tiles and plots over a chosen range of days, and the CSV.

Every figure comes from ``staff.analytics.report`` (``chatbot.staff.analytics``, where each one
is defined), the function ``GET /api/v1/staff/analytics`` calls.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from chatbot.staff.accounts import StaffUser
from chatbot.staff.dates import DateRange
from ui.staff_console.context import ConsoleContext

DEFAULT_DAYS = 30
REASON_LABELS = {
    "customer_request": "asked for a person",
    "no_answer": "no answer",
    "low_confidence": "low confidence",
    "repeated_clarification": "repeated clarification",
    "action_request": "asked the bot to act",
    "negative_feedback": "negative feedback",
}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def tiles_html(r: dict[str, Any]) -> str:
    """The range's headline figures as a row of tiles ("–" where a figure is undefined)."""
    tiles = [
        ("Conversations", f"{r['conversations']:,}"),
        ("Messages", f"{r['messages']:,}"),
        ("Deflection", _pct(r["deflection_rate"])),
        ("Handoffs", f"{r['handoffs']:,}"),
        ("Feedback up / down", f"{r['feedback']['up']:,} / {r['feedback']['down']:,}"),
        ("Answer latency p50 / p95",
         f"{_ms(r['latency_ms']['p50'])} / {_ms(r['latency_ms']['p95'])}"),
        ("Unanswered questions", f"{r['unanswered']:,}"),
    ]
    cells = "".join(
        '<div style="flex:1 1 150px;border:1px solid var(--border-color-primary);'
        'border-radius:8px;padding:.6rem .8rem">'
        f'<div style="font-size:.8rem;opacity:.75">{label}</div>'
        f'<div style="font-size:1.4rem;font-weight:600">{value}</div></div>'
        for label, value in tiles
    )
    return f'<div style="display:flex;flex-wrap:wrap;gap:.6rem">{cells}</div>'


def frames(r: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The plots' data: long format where a plot has several series (``series`` column)."""
    days = pd.DataFrame([
        {"date": pd.Timestamp(d["date"]), "conversations": d["conversations"],
         "messages": d["messages"], "deflection rate": d["deflection_rate"],
         "feedback ratio": d["feedback_ratio"], "unanswered": d["unanswered"],
         "p50": d["latency_ms"]["p50"], "p95": d["latency_ms"]["p95"]}
        for d in r["days"]
    ])

    def long(columns: list[str], name: str) -> pd.DataFrame:
        out = days.melt(id_vars="date", value_vars=columns, var_name="series", value_name=name)
        return out.dropna(subset=[name])

    def single(column: str) -> pd.DataFrame:
        return days[["date", column]].dropna()

    reasons = pd.DataFrame(
        [{"reason": REASON_LABELS.get(k, k), "handoffs": v} for k, v in
         r["handoffs_by_reason"].items()],
        columns=["reason", "handoffs"],
    )
    entries = pd.DataFrame(
        [{"entry": e["id"], "answers": e["answers"]} for e in r["top_entries"]],
        columns=["entry", "answers"],
    )
    return {
        "volume": long(["conversations", "messages"], "count"),
        "deflection": single("deflection rate"),
        "reasons": reasons,
        "feedback": single("feedback ratio"),
        "entries": entries,
        "unanswered": single("unanswered"),
        "latency": long(["p50", "p95"], "ms"),
    }


def range_name(first: str, last: str) -> str:
    dates = DateRange.parse(first or None, last or None, default_days=DEFAULT_DAYS)
    return f"{dates.start.isoformat()}-to-{dates.end.isoformat()}"


def build(ctx: ConsoleContext) -> None:
    analytics = ctx.staff.analytics
    with gr.Row():
        # Empty means the default range, computed when asked (a console stays open for days).
        start = gr.Textbox(label="From (YYYY-MM-DD)", scale=1,
                           placeholder=f"{DEFAULT_DAYS - 1} days before 'to'")
        end = gr.Textbox(label="To (YYYY-MM-DD)", placeholder="today (UTC)", scale=1)
        show = gr.Button("Show", variant="primary", scale=0)
        export = gr.Button("Download CSV", scale=0)
    csv_file = gr.File(label="Figures (CSV)", interactive=False, visible=False)
    tiles = gr.HTML()
    gr.Markdown("Days are UTC. Deflection: conversations never handed to a person. "
                "Latency: answers from the knowledge base.")
    with gr.Row():
        volume = gr.LinePlot(x="date", y="count", color="series",
                             title="Conversations and messages per day")
        # Rates and latencies are points: a day without conversations has none, and a line
        # plot would hide a day that stands alone between such gaps.
        deflection = gr.ScatterPlot(x="date", y="deflection rate", title="Deflection rate",
                                    y_lim=[0, 1])
    with gr.Row():
        reasons = gr.BarPlot(x="reason", y="handoffs", title="Handoffs by reason", sort="-y",
                             y_lim=[0, None])
        feedback = gr.ScatterPlot(x="date", y="feedback ratio",
                                  title="Feedback ratio (share rated up)", y_lim=[0, 1])
    with gr.Row():
        entries = gr.BarPlot(x="entry", y="answers", title="Most used entries", sort="-y",
                             x_label_angle=-30, y_lim=[0, None])
        unanswered = gr.LinePlot(x="date", y="unanswered", title="Unanswered questions per day")
    latency = gr.ScatterPlot(x="date", y="ms", color="series", title="Answer latency p50 / p95 (ms)")
    plots = {"volume": volume, "deflection": deflection, "reasons": reasons,
             "feedback": feedback, "entries": entries, "unanswered": unanswered,
             "latency": latency}
    private = {"api_visibility": "private"}

    @ctx.guarded("analytics")
    def refresh(actor: StaffUser, first: str, last: str) -> list[Any]:
        report = analytics.report(actor, first or None, last or None)
        data = frames(report)
        return [tiles_html(report), *[data[name] for name in plots]]

    outputs = [tiles, *plots.values()]
    gr.on([show.click, start.submit, end.submit], refresh, [start, end], outputs, **private)
    ctx.on_load(refresh, [start, end], outputs)

    @ctx.guarded("analytics")
    def download(actor: StaffUser, first: str, last: str) -> Any:
        text = analytics.report_csv(actor, first or None, last or None)
        name = f"analytics-{range_name(first, last)}.csv"
        path = Path(tempfile.mkdtemp(prefix="analytics-")) / name
        path.write_text(text, encoding="utf-8")
        return gr.File(value=str(path), visible=True)

    export.click(download, [start, end], [csv_file], **private)
