"""The console's regression parts: the **Regression** sub-tab of the knowledge-base tab (the
cases: list, add, delete, import, export; check the draft) and, in the **Publish** sub-tab, the
check's result before publishing and the admins' "Publish anyway".

Every handler calls ``staff.regression`` (``chatbot.staff.regression.RegressionSet``) or
``staff.kb.publish``, the functions the staff API calls.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from chatbot.errors import InvalidInput
from chatbot.staff.accounts import StaffUser
from chatbot.staff.regression_run import outcome_text
from ui.staff_console.context import ConsoleContext
from ui.staff_console.kb_format import publish_message, shown

CASE_HEADERS = ["id", "query", "expected id", "history turns", "added by"]
RESULT_HEADERS = ["id", "query", "expected id", "status", "live", "draft"]
PUBLISH_WAIT = 30.0
STATUS_WORDS = {"newly_failing": "newly failing", "newly_passing": "newly passing",
                "still_failing": "still failing", "still_passing": "passing"}


def case_rows(cases: list[dict[str, Any]]) -> list[list[Any]]:
    return [[c["id"], c["query"], c["expected_id"] or "(no answer)", len(c["history"]),
             c["author"]] for c in cases]


def result_rows(report: dict[str, Any]) -> list[list[Any]]:
    order = {"newly_failing": 0, "newly_passing": 1, "still_failing": 2, "still_passing": 3}
    results = sorted(report["results"], key=lambda r: (order[r["status"]], r["id"]))
    return [[r["id"], r["query"], r["expected_id"] or "(no answer)", STATUS_WORDS[r["status"]],
             outcome_text(r["before"]), outcome_text(r["after"])] for r in results]


def report_markdown(report: dict[str, Any] | None, *, title: str = "Regression check") -> str:
    """What changed between the live version and the checked one, newly failing first."""
    if not report or not report["cases"]:
        return (f"**{title}**: no regression set. Add cases in the **Regression** tab to check "
                "each publish against them.")
    failing, passing = report["newly_failing"], report["newly_passing"]
    lines = [f"**{title}**: {report['cases']} case(s); {report['before']['label']} passes "
             f"{report['before']['passed']}, {report['after']['label']} passes "
             f"{report['after']['passed']} · **{len(failing)} newly failing**, "
             f"{len(passing)} newly passing, {len(report['still_failing'])} still failing "
             f"({report['seconds']:.1f} s)."]
    for heading, rows in (("Newly failing", failing), ("Newly passing", passing)):
        if rows:
            lines += ["", f"{heading}:"]
            lines += [f"- #{r['id']} \"{shown(r['query'], 160)}\" (expects "
                      f"{r['expected_id'] or 'no answer'}): live {outcome_text(r['before'])}, now "
                      f"{outcome_text(r['after'])}" for r in rows[:50]]
    if failing:
        lines += ["", "An editor cannot publish this; fix the draft or the cases, or ask an admin "
                      "to **Publish anyway**."]
    return "\n".join(lines)


def after_publish(result: dict[str, Any]) -> str:
    """The regression part of a publish message (empty when there is no set)."""
    report = result.get("regression")
    if not report:
        return ""
    overrode = " The admin overrode the check (recorded in the audit log)." if report[
        "newly_failing"] else ""
    return overrode + "\n\n" + report_markdown(report, title="Checked before publishing")


def parse_history(text: str) -> list[dict[str, str]]:
    """``user: ...`` / ``assistant: ...`` lines, oldest first."""
    turns = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        role, sep, content = line.partition(":")
        role = role.strip().lower()
        if not sep or role not in ("user", "assistant") or not content.strip():
            raise InvalidInput(f"History line {number}: write 'user: …' or 'assistant: …'.")
        turns.append({"role": role, "content": content.strip()})
    return turns


def publish_check(ctx: ConsoleContext, note: gr.Textbox, publish_tab: gr.Tab) -> gr.Markdown:
    """In the Publish sub-tab: the check of the draft (run when the tab opens), and "Publish
    anyway" for admins."""
    kb, regression = ctx.staff.kb, ctx.staff.regression
    check_view = gr.Markdown()
    with gr.Row():
        check_button = gr.Button("Check regression cases")
        anyway = gr.Button("Publish anyway (admins: override the regression check)",
                           variant="stop")
    anyway_status = gr.Markdown()

    @ctx.guarded("kb")
    def check_before_publish(actor: StaffUser) -> str:
        return report_markdown(regression.check(actor), title="Regression check of the draft")

    gr.on([check_button.click, publish_tab.select], check_before_publish, None, [check_view],
          api_visibility="private")

    @ctx.guarded("kb")
    def publish_with_override(actor: StaffUser, note_text: str) -> list[Any]:
        result = kb.publish(actor, note=note_text, wait=PUBLISH_WAIT, override=True)
        message = publish_message(result)
        gr.Info(message.replace("**", ""))
        return [message + after_publish(result), report_markdown(regression.check(actor))]

    anyway.click(publish_with_override, [note], [anyway_status, check_view],
                 api_visibility="private")

    @ctx.guarded("kb")
    def show_override(actor: StaffUser) -> Any:
        return gr.Button(visible=actor.role == "admin")  # the service refuses others anyway

    ctx.on_load(show_override, [], [anyway])
    return check_view


def build(ctx: ConsoleContext) -> None:
    """The Regression sub-tab."""
    regression = ctx.staff.regression
    gr.Markdown("Questions whose handling must not get worse. Each publish runs them against the "
                "draft and the live version; an editor cannot publish a draft that breaks cases "
                "passing live. The file format is that of `chatbot eval --queries` (JSONL).")
    cases = gr.Dataframe(headers=CASE_HEADERS, interactive=False, wrap=True, max_height=320,
                         label="Cases (click one to select it)")
    with gr.Row(equal_height=True):
        with gr.Column():
            query = gr.Textbox(label="Customer question")
            expected = gr.Textbox(label="Expected entry id (empty: the bot must not answer)")
        history = gr.Textbox(label="Earlier turns (optional; 'user: …' / 'assistant: …' lines)",
                             lines=3)
    with gr.Row():
        add = gr.Button("Add case", variant="primary")
        selected = gr.Number(label="Selected case", precision=0, interactive=False)
        remove = gr.Button("Delete selected case", variant="stop")
    status = gr.Markdown()
    with gr.Row():
        upload = gr.File(label="Import cases (JSONL)", file_types=[".jsonl"])
        with gr.Column():
            replace = gr.Checkbox(label="Replace: the file becomes the whole set")
            import_button = gr.Button("Import")
            export_button = gr.Button("Export JSONL")
    download = gr.File(label="Download", interactive=False)
    check_button = gr.Button("Check the draft against the live version")
    report = gr.Markdown()
    results = gr.Dataframe(headers=RESULT_HEADERS, interactive=False, wrap=True,
                           label="Each case on the live version and on the draft")

    @ctx.guarded("kb")
    def load_regression_cases(actor: StaffUser) -> list[list[Any]]:
        return case_rows(regression.cases(actor))

    ctx.on_load(load_regression_cases, [], [cases])

    @ctx.guarded("kb")
    def pick_regression_case(actor: StaffUser, evt: gr.SelectData) -> int:
        return int(evt.row_value[0])

    cases.select(pick_regression_case, None, [selected], api_visibility="private")

    @ctx.guarded("kb")
    def add_regression_case(actor: StaffUser, text: str, expected_id: str, turns: str) -> list[Any]:
        case = regression.add(actor, {"query": text or "",
                                      "expected_id": (expected_id or "").strip() or None,
                                      "history": parse_history(turns)})
        return [f"Added case #{case['id']}.", case_rows(regression.cases(actor)), "", "", ""]

    add.click(add_regression_case, [query, expected, history],
              [status, cases, query, expected, history], api_visibility="private")

    @ctx.guarded("kb")
    def delete_regression_case(actor: StaffUser, case_id: Any) -> list[Any]:
        if case_id is None:
            raise InvalidInput("Select a case in the table first.")
        regression.delete(actor, int(case_id))
        return [f"Deleted case #{int(case_id)}.", case_rows(regression.cases(actor)), None]

    remove.click(delete_regression_case, [selected], [status, cases, selected],
                 api_visibility="private")

    @ctx.guarded("kb")
    def import_regression_cases(actor: StaffUser, path: Any, replace_all: bool) -> list[Any]:
        if not path:
            raise InvalidInput("Choose a JSONL file of cases first.")
        name = Path(str(path)).name
        text = Path(str(path)).read_text(encoding="utf-8-sig")
        r = regression.import_jsonl(actor, text, name=name, replace=bool(replace_all))
        message = (f"Imported {name}: {r['added']} new, {r['unchanged']} already there, "
                   f"{r['deleted']} removed; {r['cases']} case(s) in the set.")
        return [message, case_rows(regression.cases(actor)), None]

    import_button.click(import_regression_cases, [upload, replace], [status, cases, upload],
                        api_visibility="private")

    @ctx.guarded("kb")
    def export_regression_cases(actor: StaffUser) -> str:
        path = Path(tempfile.mkdtemp(prefix="kb-regression-")) / "regression.jsonl"
        path.write_text(regression.export_jsonl(actor), encoding="utf-8")
        return str(path)

    export_button.click(export_regression_cases, None, [download], api_visibility="private")

    @ctx.guarded("kb")
    def check_regression(actor: StaffUser) -> list[Any]:
        checked = regression.check(actor)
        return [report_markdown(checked, title="Regression check of the draft"),
                result_rows(checked)]

    check_button.click(check_regression, None, [report, results], api_visibility="private")
