"""The ``chatbot`` command (also ``python -m chatbot``).

Errors: a message on stderr and exit status 2 for bad input or usage, 1 for other failures;
an unexpected failure is logged with its traceback under the data dir, never dumped raw.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from chatbot.errors import ChatbotError
from chatbot.settings import Settings

log = logging.getLogger("chatbot")


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    for name in ("sentence_transformers", "bm25s", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CHATBOT_{'_'.join(str(p) for p in err['loc']).upper() or 'SETTINGS'}: {err['msg']}"
            for err in exc.errors()
        )
        raise click.UsageError(f"invalid setting: {problems}") from None


class ChatbotGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ChatbotError as exc:
            click.echo(f"Error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except Exception as exc:
            path = _log_unexpected(exc)
            click.echo(
                f"Error: unexpected failure ({type(exc).__name__}: {exc}). "
                f"The traceback is in {path}.",
                err=True,
            )
            ctx.exit(1)


def _log_unexpected(exc: BaseException) -> Path:
    import traceback

    try:
        folder = Settings().data_dir / "logs"
    except ValidationError:
        folder = Path("data") / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "cli-errors.log"
    text = "".join(traceback.format_exception(exc))
    try:
        text = Settings().redactor.redact(text)  # no personal data in the log file
    except (ValidationError, ValueError):
        pass
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    return path


@click.group(cls=ChatbotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="support-chatbot")
def main() -> None:
    """Support Chatbot: a self-hosted customer-service chatbot."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


from chatbot.cli import chat, kb, model, ops, privacy, regression, staff, train  # noqa: E402,F401  (registers the commands)

__all__ = ["main"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
