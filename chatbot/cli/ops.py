"""Operations: ``index rebuild``, ``db upgrade``, ``eval``."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from chatbot.cli import emit_json, load_settings, main, quiet_libraries
from chatbot.errors import InvalidInput


@main.group()
def index() -> None:
    """The FAISS search index (derived from the database)."""


@index.command("rebuild")
def rebuild() -> None:
    """Rebuild the search index from the published knowledge base."""
    from chatbot.services import build_services

    quiet_libraries()
    services = build_services(load_settings(), load_generator=False)
    built = services.retriever.rebuild(show_progress=True)
    click.echo(
        f"Indexed {len(built.items)} item(s) of knowledge-base version {built.version} "
        f"({services.embedder.last_embedded} newly embedded)."
    )


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all database migrations."""
    from chatbot.db import current_revision, make_engine, upgrade

    engine = make_engine(load_settings().resolved_database_url)
    upgrade(engine)
    click.echo(f"Database at revision {current_revision(engine)}.")


@main.command("eval")
@click.option("--kb", "kb_files", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Knowledge-base file (repeatable).")
@click.option("--queries", required=True, type=click.Path(path_type=Path),
              help="JSONL cases: query, expected_id, history.")
@click.option("--retrieval-only", is_flag=True, help="Everything except LM generation.")
@click.option("--model", "models", multiple=True, metavar="M",
              help="Answer model to evaluate (repeatable): 'default' (the configured one), a "
              "folder, a GGUF file or a hub id. Several: one report per model, one KB import.")
@click.option("--fast-path/--no-fast-path", default=None,
              help="Keep the serving fast path (confident FAQ answers skip the model). "
              "Default: off when generating, so every answer is the model's.")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N",
              help="Evaluate the first N cases only.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write a report with a plot per metric (.md: Markdown, else HTML).")
@click.option("--cases", "cases_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write each case's outcome as JSONL (with several models, one line "
              "per case and model): passed, rank, reply, the model's own words, grounded.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_(
    kb_files: tuple[Path, ...],
    queries: Path,
    retrieval_only: bool,
    models: tuple[str, ...],
    fast_path: bool | None,
    limit: int | None,
    report_path: Path | None,
    cases_path: Path | None,
    as_json: bool,
) -> None:
    """Evaluate on a throwaway data dir (the live one is untouched)."""
    import shlex
    import sys

    from tqdm import tqdm

    from chatbot.eval_report import text_lines, write_report
    from chatbot.evaluation import DEFAULT_MODEL, read_cases, run_eval

    if retrieval_only and models:
        raise click.UsageError("--model needs generation; drop --retrieval-only to compare models.")
    names = list(dict.fromkeys(models)) or [DEFAULT_MODEL]
    quiet_libraries()
    settings = load_settings()
    total = len(read_cases(queries)[:limit]) * (1 if retrieval_only else len(names))
    with contextlib.ExitStack() as stack:
        # Opened first: a bad path fails before an hour of evaluation, not after it.
        on_case = None if cases_path is None else _jsonl_writer(stack, cases_path)
        bar = stack.enter_context(
            tqdm(total=total, desc="eval", unit="case", file=click.get_text_stream("stderr")))
        report = run_eval(
            settings,
            list(kb_files),
            queries,
            retrieval_only=retrieval_only,
            models=names,
            fast_path=fast_path,
            limit=limit,
            progress=bar.update,
            on_case=on_case,
        )
    if report_path is not None:
        command = shlex.join(["chatbot", *sys.argv[1:]])
        written = write_report(report_path, report, names[0], command)
        click.echo(f"Report written to {written[0]}.", err=True)
    if as_json:
        emit_json(report)
        return
    for line in text_lines(report, names[0]):
        click.echo(line)


def _jsonl_writer(stack: contextlib.ExitStack, path: Path) -> Callable[[dict[str, Any]], None]:
    """Writes one JSON object a line to ``path``, flushed, so a run cut short keeps its lines."""
    try:
        out = stack.enter_context(path.open("w", encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot write the cases file ({exc.strerror}).") from None

    def write(row: dict[str, Any]) -> None:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        out.flush()

    return write
