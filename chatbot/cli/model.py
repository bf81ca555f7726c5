"""``chatbot model quantize``: an int8 copy of the local answer model for CPU serving, with its
quality and speed compared with the fp32 model in the same run."""

from __future__ import annotations

import time
from pathlib import Path

import click

from chatbot.cli import emit_json, load_settings, main, quiet_libraries


@main.group()
def model() -> None:
    """The local answer model."""


@model.command("quantize")
@click.option("--model", "source", default="default", show_default=True, metavar="M",
              help="Model to quantize: 'default' (CHATBOT_MODEL), a folder, a GGUF file or a hub id.")
@click.option("--output", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="New folder for the quantized model (serve it with CHATBOT_MODEL=DIR).")
@click.option("--keep-lm-head", is_flag=True,
              help="Leave the output projection in fp32 (slower, closer to the fp32 model).")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Compare quality (chatbot eval's generation metrics) and speed with fp32.")
@click.option("--kb", "kb_files", multiple=True, type=click.Path(path_type=Path),
              help="Knowledge-base file for the comparison (repeatable; default: the demo KB).")
@click.option("--queries", type=click.Path(path_type=Path),
              help="JSONL cases for the comparison (default: the KB's own paraphrases).")
@click.option("--limit", type=click.IntRange(min=1), default=8, show_default=True, metavar="N",
              help="Cases each model answers in the comparison.")
@click.option("--speed-prompts", type=click.IntRange(min=1), default=3, show_default=True,
              help="Prompts the speed is measured on.")
@click.option("--new-tokens", type=click.IntRange(min=2), default=32, show_default=True,
              help="Tokens generated per speed measurement.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def quantize(source: str, output: Path, keep_lm_head: bool, compare: bool,
             kb_files: tuple[Path, ...], queries: Path | None, limit: int, speed_prompts: int,
             new_tokens: int, as_json: bool) -> None:
    """Int8 dynamic quantization of the answer model's Linear layers, for the CPU."""
    import torch

    from chatbot.demo import demo_files
    from chatbot.errors import InvalidInput
    from chatbot.generation.local import load_pretrained
    from chatbot.generation.quantize import (
        folder_megabytes,
        is_quantized,
        quantize,
        quantized_layers,
        save_quantized,
    )

    quiet_libraries()
    settings = load_settings()
    name = settings.model if source == "default" else source
    if is_quantized(name):
        raise InvalidInput(f"{name} is already int8-quantized; quantize the fp32 model instead.")
    if output.exists() and any(output.iterdir()):
        raise InvalidInput(f"{output} exists and is not empty; choose a new folder.")
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    started = time.perf_counter()
    tokenizer, fp32 = load_pretrained(name, dtype=torch.float32)
    if tokenizer.chat_template is None:
        raise InvalidInput(f"The model '{name}' has no chat template, so it cannot serve.")
    int8 = quantize(fp32, keep_lm_head=keep_lm_head)
    save_quantized(int8, tokenizer, output, base=name, keep_lm_head=keep_lm_head)
    result: dict = {"output": str(output), "base_model": name, "keep_lm_head": keep_lm_head,
                    "quantized_layers": quantized_layers(int8), "folder_mb": folder_megabytes(output),
                    "seconds": round(time.perf_counter() - started, 1)}
    del fp32, int8
    click.echo(f"Quantized {result['quantized_layers']} Linear layers of {name} to int8 in "
               f"{result['seconds']:.1f} s; saved {result['folder_mb']:.0f} MB to {output}. "
               f"Serve it with CHATBOT_MODEL={output}.", err=True)
    if compare:
        from tqdm import tqdm

        from chatbot.model_compare import compare as run_compare
        from chatbot.model_compare import table_lines

        files = list(kb_files) or demo_files()
        with tqdm(total=2 * limit, desc="compare", unit="case",
                  file=click.get_text_stream("stderr")) as bar:
            result["comparison"] = run_compare(
                settings, name, output, files, queries=queries, limit=limit,
                speed_runs=speed_prompts, new_tokens=new_tokens, progress=bar.update)
    if as_json:
        emit_json(result)
    elif compare:
        for line in table_lines(result["comparison"]):
            click.echo(line)
