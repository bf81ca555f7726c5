"""``chatbot train``: fine-tune the answer model on the published knowledge base."""

from __future__ import annotations

import random
from pathlib import Path

import click

from chatbot.cli import emit_json, load_settings, main, quiet_libraries


@main.command("train")
@click.option("--base", default=None, help="Model to start from (default: the serving model, "
              "CHATBOT_MODEL): a Hugging Face id, a folder, a GGUF file or 'bundled'.")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Folder for the tuned model (default: <data dir>/models/answer-v<KB version>).")
@click.option("--epochs", type=float, default=3.0, show_default=True)
@click.option("--learning-rate", type=float, default=None,
              help="Default 5e-5 (full fine-tuning) or 3e-4 (--lora).")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Examples per optimizer step.")
@click.option("--max-batch-tokens", type=int, default=8192, show_default=True,
              help="Most tokens (examples x longest example) one forward pass holds; a larger "
              "--batch-size is reached by gradient accumulation, with the same loss.")
@click.option("--max-steps", type=int, default=-1, help="Stop after this many steps (-1: epochs).")
@click.option("--lora", is_flag=True, help="Train LoRA adapters (PEFT), merged on save.")
@click.option("--validation-split", type=float, default=0.1, show_default=True,
              help="Share of questions held out for validation loss and early stopping "
              "(every example made from one question; never an entry's main question).")
@click.option("--search", type=int, default=0, show_default=True,
              help="Optuna trials over learning rate and epochs, chosen by validation loss.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto",
              show_default=True, help="Mixed precision: auto is bf16 on a GPU that has it (else "
              "fp16) and on a CPU that multiplies bfloat16 natively (AMX, AVX512-BF16), else fp32.")
@click.option("--max-examples", type=click.IntRange(min=1), default=None,
              help="Train on a random sample of at most this many examples (CPU budgets).")
@click.option("--conversations", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Exported conversations (JSONL); replies rated up are added as examples.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--retriever", is_flag=True,
              help="Fine-tune the embedding model instead (sentence-transformers, hard "
              "negatives); --validation-split is then the share of paraphrases held out to "
              "measure the gain, and the index is rebuilt with the tuned model.")
def train(
    base: str | None,
    output: Path | None,
    epochs: float,
    learning_rate: float | None,
    batch_size: int,
    max_batch_tokens: int,
    max_steps: int,
    lora: bool,
    validation_split: float,
    search: int,
    seed: int,
    precision: str,
    max_examples: int | None,
    conversations: Path | None,
    as_json: bool,
    retriever: bool,
) -> None:
    """Fine-tune the answer model on the knowledge base (see the README's Fine-tuning section)."""
    if retriever:
        if lora or search or conversations or max_examples:
            raise click.UsageError("--lora, --search, --conversations and --max-examples train "
                                   "the answer model; they do not go with --retriever.")
        given = click.get_current_context().get_parameter_source("batch_size")
        # In-batch negatives want a larger batch than the answer model can afford.
        if given == click.core.ParameterSource.DEFAULT:
            batch_size = 32
        train_retriever_command(base, output, epochs, learning_rate, batch_size, max_steps,
                                validation_split, seed, as_json)
        return
    from chatbot.errors import InvalidInput, ModelUnavailable
    from chatbot.generation.local import load_tokenizer, resolve_model
    from chatbot.generation.quantize import is_quantized
    from chatbot.services import build_services
    from chatbot.training.data import (
        DataOptions,
        PromptShape,
        answer_check,
        build_examples,
        read_conversations,
    )
    from chatbot.training.trainer import TrainOptions, is_main_process
    from chatbot.training.trainer import train as run_training

    quiet_libraries()
    settings = load_settings()
    options = TrainOptions(
        base=base or settings.model,
        output=output or Path(),
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        max_steps=max_steps,
        lora=lora,
        validation_split=validation_split,
        search=search,
        seed=seed,
        max_length=settings.context_tokens,
        precision=precision,
    )
    options.check()
    exchanges = read_conversations(conversations, settings.redactor) if conversations else []
    services = build_services(settings, load_generator=False, migrate=is_main_process())
    version = services.retriever.index().version
    if output is None:
        options.output = settings.data_dir / "models" / f"answer-v{version}"
    try:
        if is_quantized(resolve_model(options.base)[0]):
            raise InvalidInput(f"--base: {options.base} is an int8 copy made for serving; train "
                               "the fp32 model it was made from, then quantize the result.")
        tokenizer = load_tokenizer(options.base)
    except ModelUnavailable as exc:
        raise InvalidInput(f"--base: {exc}") from exc
    shape = PromptShape.from_settings(
        settings, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    )
    examples = build_examples(
        services.knowledge.published(version),
        lambda q, k: services.retriever.search(q, k),
        shape,
        DataOptions(seed=seed),
        exchanges,
        states_answer=answer_check(
            services.embedder.embed_sentences, settings.grounding_threshold, shape.min_score
        ),
    )
    train_set, val_set = examples.split(validation_split, seed)
    if max_examples is not None and len(train_set) > max_examples:
        train_set = random.Random(seed).sample(train_set, max_examples)
    if is_main_process() and not as_json:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(examples.counts().items()))
        click.echo(
            f"Knowledge-base version {version}: {len(examples.examples)} examples ({counts}); "
            f"{len(train_set)} for training, {len(val_set)} for validation; "
            f"{examples.skipped_abstain} abstain examples not made, as their passages state "
            "the answer."
        )
    report = run_training(
        options,
        train_set,
        val_set,
        tokenizer=tokenizer,
        example_counts=examples.counts(),
        kb_version=version,
    )
    if not is_main_process():
        return
    if as_json:
        emit_json(report.to_dict())
        return
    for row in report.epochs:
        parts = [f"epoch {row['epoch']}"]
        if "train_loss" in row:
            parts.append(f"train loss {row['train_loss']}")
        if "validation_loss" in row:
            parts.append(
                f"validation loss {row['validation_loss']} "
                f"(perplexity {row['validation_perplexity']})"
            )
        click.echo(": ".join([parts[0], ", ".join(parts[1:])]) if parts[1:] else parts[0])
    for trial in report.search_trials:
        click.echo(f"search trial {trial['params']}: validation loss {trial['validation_loss']}")
    hp = report.hyperparameters
    click.echo(
        f"Chosen: learning rate {hp['learning_rate']:g}, epochs {hp['epochs']:g}"
        f"{', LoRA' if hp['lora'] else ''}. Took {report.seconds:.0f} s on {report.device} "
        f"({report.precision})."
    )
    click.echo(f"Saved to {report.output}. Serve it with: CHATBOT_MODEL={report.output} chatbot serve")



def train_retriever_command(
    base: str | None,
    output: Path | None,
    epochs: float,
    learning_rate: float | None,
    batch_size: int,
    max_steps: int,
    heldout_share: float,
    seed: int,
    as_json: bool,
) -> None:
    """``chatbot train --retriever``: tune, measure on held-out paraphrases, rebuild the index."""
    from chatbot.services import build_services
    from chatbot.training.retriever import RetrieverOptions, train_retriever

    quiet_libraries()
    settings = load_settings()
    services = build_services(settings, load_generator=False)
    version = services.retriever.index().version
    options = RetrieverOptions(
        base=base or settings.embedding_model,
        output=output or settings.data_dir / "models" / f"retriever-v{version}",
        epochs=epochs,
        learning_rate=learning_rate or 2e-5,
        batch_size=batch_size,
        max_steps=max_steps,
        heldout_share=heldout_share,
        seed=seed,
    )
    options.check()
    report = train_retriever(options, services.knowledge.published(version), kb_version=version,
                             progress=not as_json)
    # The index is rebuilt for the tuned model, so a server started with it is ready at once.
    tuned = settings.model_copy(update={"embedding_model": str(options.output)})
    rebuilt = build_services(tuned, load_generator=False).retriever.rebuild()
    report["index_rebuilt"] = {"version": rebuilt.version, "model": rebuilt.model}
    if as_json:
        emit_json(report)
        return
    before, after = report["heldout_top1_before"], report["heldout_top1_after"]
    if before is not None:
        click.echo(f"Held-out paraphrases ({report['heldout_paraphrases']}): nearest phrasing "
                   f"of the right entry {before:.1%} before, {after:.1%} after.")
    click.echo(f"Trained on {report['train_rows']} rows, {report['steps']} steps, "
               f"in {report['train_seconds']:.0f} s.")
    click.echo(f"Saved to {report['output']}; the index was rebuilt for it. Serve it with: "
               f"CHATBOT_EMBEDDING_MODEL={report['output']} chatbot serve")
