"""``chatbot kb regression import|list|export|check``: the knowledge base's regression set from
the command line (the administrator's path; the console and the staff API call the same
``RegressionSet`` functions, and the audit log names the actor ``cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chatbot.cli import emit_json, load_settings, quiet_libraries
from chatbot.cli.kb import kb

if TYPE_CHECKING:
    from chatbot.staff.regression import RegressionSet


def _regression(*, models: bool = False) -> RegressionSet:
    """The set of the configured database; ``models``: with the embedding model, for checks."""
    from chatbot.db import make_engine, upgrade
    from chatbot.services import build_services
    from chatbot.staff.audit import AuditLog
    from chatbot.staff.regression import RegressionSet
    from knowledge.store import KnowledgeStore

    settings = load_settings()
    if models:
        quiet_libraries()
        services = build_services(settings, load_generator=False)
        return RegressionSet(services.engine, services.knowledge, services.chat,
                             AuditLog(services.engine))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return RegressionSet(engine, KnowledgeStore(engine), None, AuditLog(engine))


def report_lines(report: dict[str, Any]) -> list[str]:
    """A check's result for people: the counts, then each case that changed."""
    from chatbot.staff.regression_run import outcome_text

    lines = [f"Regression set: {report['cases']} case(s); {report['before']['label']} passes "
             f"{report['before']['passed']}, {report['after']['label']} passes "
             f"{report['after']['passed']}; {len(report['newly_failing'])} newly failing, "
             f"{len(report['newly_passing'])} newly passing."]
    for heading, key in (("newly failing", "newly_failing"), ("newly passing", "newly_passing")):
        for r in report[key]:
            expects = r["expected_id"] or "no answer"
            lines.append(f"  {heading}: #{r['id']} {r['query']!r} (expects {expects}): was "
                         f"{outcome_text(r['before'])}, now {outcome_text(r['after'])}")
    return lines


@kb.group()
def regression() -> None:
    """Cases checked before each publish (the JSONL of chatbot eval --queries)."""


@regression.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--replace", is_flag=True, help="The file becomes the whole regression set.")
def import_(file: Path, replace: bool) -> None:
    """Add the cases of FILE (all or nothing; cases already there are kept once)."""
    from chatbot.errors import InvalidInput
    from chatbot.staff.regression import CLI_ACTOR

    if not file.is_file():
        raise InvalidInput(f"{file}: no such file.")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{file} is not UTF-8 text.") from None
    result = _regression().import_jsonl(CLI_ACTOR, text, name=str(file), replace=replace)
    click.echo(f"Imported {file}: {result['added']} new, {result['unchanged']} already there, "
               f"{result['deleted']} removed; the regression set holds {result['cases']} case(s).")


@regression.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON list of cases.")
def list_(as_json: bool) -> None:
    """List the cases."""
    from chatbot.staff.regression import CLI_ACTOR

    cases = _regression().cases(CLI_ACTOR)
    if as_json:
        emit_json(cases)
        return
    for case in cases:
        turns = f"  (+{len(case['history'])} earlier turns)" if case["history"] else ""
        click.echo(f"{case['id']}\t{case['expected_id'] or '-'}\t{case['query']}{turns}")
    click.echo(f"{len(cases)} case(s).", err=True)


@regression.command("export")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def export(file: Path) -> None:
    """Write the cases as JSONL (the shape chatbot eval --queries reads)."""
    from chatbot.staff.regression import CLI_ACTOR

    if not file.parent.exists():
        raise click.BadParameter(f"the folder {file.parent} does not exist", param_hint="FILE")
    text = _regression().export_jsonl(CLI_ACTOR)
    file.write_text(text, encoding="utf-8")
    click.echo(f"Wrote {len(text.splitlines())} case(s) to {file}.")


@regression.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def check(as_json: bool) -> None:
    """Check the draft against the live version; exit status 1 when cases would break."""
    from chatbot.staff.regression import CLI_ACTOR

    report = _regression(models=True).check(CLI_ACTOR)
    if as_json:
        emit_json(report)
    else:
        for line in report_lines(report):
            click.echo(line)
    if report["newly_failing"]:
        click.echo(f"Error: publishing the draft would break {len(report['newly_failing'])} "
                   "regression case(s).", err=True)
        raise SystemExit(1)
