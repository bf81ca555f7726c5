"""Text for the console's knowledge-base tab: pending changes, diffs, "try a question" results,
publish messages and entry histories, as Markdown (pure functions of the editor's results)."""

from __future__ import annotations

from typing import Any

import gradio as gr


def entry_form(entry: dict[str, Any]) -> list[Any]:
    return [gr.Textbox(value=entry["id"], interactive=False), entry["question"], entry["answer"],
            "\n".join(entry["paraphrases"]), ", ".join(entry["tags"]), entry.get("subject", "")]


def version_number(value: Any, which: str) -> int:
    if value is None or value < 0 or value != int(value):
        raise gr.Error(f"Enter a version number in '{which} version' (see the list above).")
    return int(value)


def pending_status(changes: dict[str, Any]) -> dict[str, str]:
    status = {r["id"]: "new (draft)" for r in changes["added"]}
    status.update({r["id"]: "changed (draft)" for r in changes["changed"]})
    return status


def pending_markdown(changes: dict[str, Any]) -> str:
    if not changes["count"]:
        return f"**No pending changes**: the draft equals the live version {changes['version']}."
    head = (f"**{changes['count']} pending change(s)** against the live version "
            f"{changes['version']}; customers see none of them until you publish.")
    return head + "\n\n" + diff_body(changes)


def diff_markdown(diff: dict[str, Any], title: str) -> str:
    if not (diff["added"] or diff["removed"] or diff["changed"]):
        return f"### {title}\n\nNo differences ({diff['unchanged']} records the same)."
    return f"### {title}\n\n" + diff_body(diff) + f"\n\n{diff['unchanged']} record(s) unchanged."


def diff_body(diff: dict[str, Any]) -> str:
    lines = []
    for r in diff["added"]:
        lines.append(f"- ➕ added **{r['id']}**: {r.get('question') or r.get('title')}")
    for r in diff["removed"]:
        lines.append(f"- ➖ removed **{r['id']}**: {r.get('question') or r.get('title')}")
    for r in diff["changed"]:
        lines.append(f"- ✏️ changed **{r['id']}** ({', '.join(r['fields'])})")
        for field in r["fields"]:
            lines.append(f"    - {field}: ~~{shown(r['before'].get(field))}~~ → "
                         f"{shown(r['after'].get(field))}")
    return "\n".join(lines)


def shown(value: Any, limit: int = 300) -> str:
    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value or "(none)")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def try_markdown(result: dict[str, Any]) -> str:
    lines = [f"### {result['decision'].capitalize()} · {result['reason'].replace('_', ' ')}",
             result["explanation"], ""]
    if result["reply"]:
        lines += ["The customer would read:", "", *(f"> {line}" for line in
                                                  result["reply"].splitlines())]
    lines.append(f"\n*Live version {result['version']}; thresholds: answer "
                 f"{result['thresholds']['answer']}, clarify {result['thresholds']['clarify']}, "
                 f"fast path {result['thresholds']['fast_path']}.*")
    return "\n".join(lines)


def publish_message(result: dict[str, Any]) -> str:
    if not result["published"]:
        return f"Nothing to publish: the draft equals the live version {result['version']}."
    counts = f"{result['added']} added, {result['changed']} changed, {result['removed']} removed"
    if result["live"]:
        return (f"Published version **{result['version']}** ({counts}). Customers are answered "
                f"from it now (index built in {result['index_seconds'] or 0:.1f} s).")
    return (f"Published version **{result['version']}** ({counts}). The index is still being "
            "built; customers get the new version within seconds.")


def history_markdown(rows: list[dict[str, Any]]) -> str:
    lines = []
    for row in reversed(rows):
        when = row["created_at"][:19].replace("T", " ")
        text = row["data"].get("answer") or row["data"].get("title") or ""
        lines.append(f"- revision {row['revision']} · {row['action']} · {row['author']} · {when}: "
                     f"{shown(text, 160)}")
    return "\n".join(lines) or "No revisions."
