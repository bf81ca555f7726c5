"""Customer-facing commands: ``serve`` and ``ask``."""

from __future__ import annotations

import click

from chatbot.cli import emit_json, load_settings, main, quiet_libraries

# The web layer sits above chatbot (ui -> chatbot -> knowledge), so the CLI names its app
# factory instead of importing it, the way uvicorn names applications.
WEB_APP = "ui.app:create_app"
TRIM_INTERVAL = 10.0  # seconds


@main.command()
@click.option("--host", help="Address to listen on (default: CHATBOT_HOST).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: CHATBOT_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Migrate the database, load the models and serve the web app."""
    import importlib

    import uvicorn

    from chatbot.demo import ensure_demo_kb
    from chatbot.logs import configure_logging
    from chatbot.memory import (
        MemoryTrim,
        limit_malloc_arenas,
        map_large_blocks,
        release_free_memory,
    )
    from chatbot.services import build_services
    from chatbot.warmup import warm_up

    limit_malloc_arenas()
    map_large_blocks()
    quiet_libraries()
    settings = load_settings()
    if host:
        settings = settings.model_copy(update={"host": host})
    if port:
        settings = settings.model_copy(update={"port": port})
    click.echo("Loading models…", err=True)
    services = build_services(settings)
    if ensure_demo_kb(services):
        click.echo("Imported the demo knowledge base (CHATBOT_DEMO_KB=false turns this off).",
                   err=True)
    services.retriever.index()
    warm_up(services)
    release_free_memory()  # what loading the models (a GGUF file is dequantized) left behind
    module, _, factory = WEB_APP.partition(":")
    app = getattr(importlib.import_module(module), factory)(services)
    click.echo(f"Serving on http://{settings.host}:{settings.port}", err=True)
    configure_logging(settings)
    MemoryTrim(TRIM_INTERVAL).start()
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                log_level=settings.log_level, timeout_graceful_shutdown=10)


@main.command()
@click.argument("text")
@click.option("--conversation", "conversation_id", help="Continue this conversation id.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result as JSON.")
@click.option("--retrieval-only", is_flag=True, help="Answer from the KB text; no language model.")
@click.option("--max-new-tokens", type=int, help="Sampling for this turn (default: settings).")
@click.option("--temperature", type=float, help="0 is greedy.")
@click.option("--top-k", type=int)
@click.option("--top-p", type=float)
@click.option("--repetition-penalty", type=float)
@click.option("--num-beams", type=int)
@click.option("--seed", type=int)
def ask(
    text: str,
    conversation_id: str | None,
    as_json: bool,
    retrieval_only: bool,
    **sampling: float | int | None,
) -> None:
    """One customer turn through the same pipeline the web uses."""
    from chatbot.demo import ensure_demo_kb
    from chatbot.services import build_services

    quiet_libraries()
    settings = load_settings()
    services = build_services(settings, load_generator=not retrieval_only)
    ensure_demo_kb(services)
    services.retriever.index()
    cid = services.chat.ensure_conversation(conversation_id)
    overrides = {name: value for name, value in sampling.items() if value is not None}
    result = services.chat.send_message(cid, text, overrides)
    if as_json:
        emit_json(result.to_dict())
        return
    click.echo(result.text)
    if result.sources and result.decision == "answer":
        click.echo("\nSources: " + ", ".join(s["id"] for s in result.sources[:3]), err=True)
    click.echo(f"(conversation {cid}; continue it with --conversation {cid})", err=True)
