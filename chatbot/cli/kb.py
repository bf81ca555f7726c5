"""Knowledge-base commands: ``kb import``, ``kb export``, ``kb list``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chatbot.cli import emit_json, load_settings, main, quiet_libraries

if TYPE_CHECKING:
    from knowledge.store import KnowledgeStore


@main.group()
def kb() -> None:
    """Import, export and list the knowledge base."""


@kb.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--replace", is_flag=True, help="The files become the whole knowledge base.")
def import_(files: tuple[Path, ...], replace: bool) -> None:
    """Import FAQ entries (.jsonl, .csv) and documents (.md, .txt, .html); publishes at once."""
    from chatbot.services import build_services
    from knowledge.formats import read_files

    quiet_libraries()
    records = read_files(files)  # all-or-nothing: a bad row fails before anything is stored
    services = build_services(load_settings(), load_generator=False)
    previous = services.knowledge.current_version()
    summary, version = services.knowledge.save(
        records, replace=replace, publish=True, author="cli", note="kb import"
    )
    click.echo("Indexing…", err=True)
    index = services.retriever.rebuild(show_progress=True)
    click.echo(
        f"Imported {len(records)} record(s) from {len(files)} file(s): {summary.created} new, "
        f"{summary.updated} updated, {summary.unchanged} unchanged, {summary.deleted} removed. "
        f"Published knowledge-base version {version}."
    )
    _report_regression(services, previous, version, index)


def _report_regression(services: Any, previous: int, version: int | None, index: Any) -> None:
    """An import is not gated (it is the administrator's path), but says what it broke."""
    from chatbot.cli.regression import report_lines
    from chatbot.staff.audit import AuditLog
    from chatbot.staff.regression import RegressionSet

    if not previous or version is None or version == previous:
        return
    checks = RegressionSet(services.engine, services.knowledge, services.chat,
                           AuditLog(services.engine))
    report = checks.compare_versions(previous, version, after_index=index)
    if report is not None:
        for line in report_lines(report):
            click.echo(line)


@kb.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def export(file: Path) -> None:
    """Write every published entry (and document) as JSONL."""
    from knowledge.formats import write_jsonl

    if not file.parent.exists():
        raise click.BadParameter(f"the folder {file.parent} does not exist", param_hint="FILE")
    count = write_jsonl(file, _store().published())
    click.echo(f"Wrote {count} record(s) to {file}.")


@kb.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list of entry objects.")
def list_(as_json: bool) -> None:
    """List the published FAQ entries."""
    from knowledge.records import Entry

    store = _store()
    records = store.published()
    entries = [r for r in records if isinstance(r, Entry)]
    if as_json:
        emit_json([e.to_dict() for e in entries])
        return
    for entry in entries:
        tags = f"  [{', '.join(entry.tags)}]" if entry.tags else ""
        click.echo(f"{entry.id}\t{entry.question}{tags}")
    documents = len(records) - len(entries)
    click.echo(
        f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {documents} document(s), "
        f"version {store.current_version()}.",
        err=True,
    )


def _store() -> KnowledgeStore:
    """The knowledge store of the configured database, migrated; no models are loaded."""
    from chatbot.db import make_engine, upgrade
    from knowledge.store import KnowledgeStore

    engine = make_engine(load_settings().resolved_database_url)
    upgrade(engine)
    return KnowledgeStore(engine)
