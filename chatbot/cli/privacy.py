"""Privacy: ``privacy export|delete --user ID`` (CONTRACT.md) and ``privacy purge``."""

from __future__ import annotations

import click

from chatbot.cli import emit_json, load_settings, main
from chatbot.privacy.records import PrivacyRecords


def _records() -> tuple[PrivacyRecords, int]:
    from chatbot.db import make_engine, upgrade

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return PrivacyRecords(engine), settings.retention_days


@main.group()
def privacy() -> None:
    """Personal data: export or erase one visitor's, delete expired conversations."""


@privacy.command("export")
@click.option("--user", "user_id", required=True, metavar="ID",
              help="A verified visitor id (widget), or the conversation id of an anonymous visitor.")
def privacy_export(user_id: str) -> None:
    """Print everything stored about one visitor as one JSON object."""
    records, _ = _records()
    emit_json(records.export(user_id))


@privacy.command("delete")
@click.option("--user", "user_id", required=True, metavar="ID",
              help="A verified visitor id (widget), or the conversation id of an anonymous visitor.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def privacy_delete(user_id: str, as_json: bool) -> None:
    """Erase everything stored about one visitor (their conversations, messages, ratings)."""
    records, _ = _records()
    deleted = records.delete(user_id, actor="cli")
    if as_json:
        emit_json({"ok": True, **deleted.to_dict()})
        return
    click.echo(f"Deleted {deleted.conversations} conversation(s), {deleted.messages} message(s) "
               f"and {deleted.feedback} rating(s) of '{user_id}'.")


@privacy.command("purge")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Delete conversations inactive for more than this many days "
              "(default: CHATBOT_RETENTION_DAYS).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def privacy_purge(days: int | None, as_json: bool) -> None:
    """Delete expired conversations now (the server also does it every hour)."""
    records, retention_days = _records()
    days = days or retention_days
    if not days:
        raise click.UsageError("CHATBOT_RETENTION_DAYS is 0 (keep forever); pass --days N.")
    deleted = records.purge(days)
    if as_json:
        emit_json({"ok": True, "days": days, **deleted.to_dict()})
        return
    click.echo(f"Deleted {deleted.conversations} conversation(s) inactive for more than {days} "
               f"day(s) ({deleted.messages} message(s)).")
