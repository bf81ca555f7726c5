"""Operations: ``index rebuild``, ``db upgrade``, ``eval``."""

from __future__ import annotations

from pathlib import Path

import click

from chatbot.cli import emit_json, load_settings, main, quiet_libraries


@main.group()
def index() -> None:
    """The FAISS search index (derived from the database)."""


@index.command("rebuild")
def rebuild() -> None:
    """Rebuild the search index from the published knowledge base."""
    from chatbot.service import build_services

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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def eval_(kb_files: tuple[Path, ...], queries: Path, retrieval_only: bool, as_json: bool) -> None:
    """Evaluate on a throwaway data dir (the live one is untouched)."""
    from tqdm import tqdm

    from chatbot.evaluation import read_cases, run_eval

    quiet_libraries()
    settings = load_settings()
    total = len(read_cases(queries))
    with tqdm(total=total, desc="eval", unit="case", file=click.get_text_stream("stderr")) as bar:
        report = run_eval(
            settings, list(kb_files), queries, retrieval_only=retrieval_only, progress=bar.update
        )
    if as_json:
        emit_json(report)
        return
    for key, value in report.items():
        if isinstance(value, float):
            value = f"{value:.3f}"
        click.echo(f"{key:>18}: {value}")
