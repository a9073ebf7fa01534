"""What `seqcirc lens MODEL --task T` runs: the task's prompts, the logit lens on the
unablated model, its table, JSON and plot (the CLI only parses options and prints)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError
from seqcirc.report.files import check_writable, write_bytes, write_text
from seqcirc.usecases.task_option import resolve_task

# Beyond this share of the logits' scale, the lens after the last block and the model's
# own logits disagree by more than float (or half-precision) noise: the model's output
# is not its final norm + unembedding (a logit soft-cap, say).
FINAL_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LensRun:
    table: dict[str, Any]
    title: str
    filter_line: str | None


def plot_format(path: str) -> str:
    """The figure's format from `-o`'s suffix (E361 when it names none)."""
    from seqcirc.report.lens_plot import FORMATS

    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InputError(
            f"-o {path}: cannot tell the plot's format from its suffix", code="E361",
            hint="end the path in " + ", ".join(f".{f}" for f in FORMATS),
        )  # fmt: skip
    return fmt


def run_lens(
    model: str,
    *,
    task: str | None,
    prompts: str | None = None,
    seed: int = 0,
    filter_correct: bool = False,
    components: bool = False,
    device: str = "auto",
    plot: str | None = None,
    json_path: str | None = None,
) -> LensRun:
    """Load, build the prompts, run the lens; write the plot and JSON where asked."""
    from seqcirc.lens import lens_table, logit_lens
    from seqcirc.models.load import load_model
    from seqcirc.usecases.task_option import build_for

    option = resolve_task(task, prompts, seed=seed, filter_correct=filter_correct)
    if plot is not None:
        plot_format(plot)
        check_writable(plot, "lens plot")
    if json_path not in (None, "-"):
        check_writable(str(json_path), "lens JSON")
    loaded = load_model(model, device=device)
    data, filter_line = build_for(option, loaded)
    result = logit_lens(loaded.bridge, data, components=components)
    table = lens_table(result, loaded.tokenizer)
    table["meta"].update(model=model, seed=option.seed, filter=filter_line)
    title = (
        f"logit lens of {model} on {data.name}: {data.n_prompts} clean prompts, the unablated "
        "model's residual stream at END decoded by its final norm and unembedding"
    )
    if plot is not None:
        from seqcirc.report.lens_plot import lens_figure

        write_bytes(plot, lens_figure(table, title, plot_format(plot)), "lens plot")
    if json_path not in (None, "-"):
        write_text(str(json_path), json.dumps(table, indent=1) + "\n", "lens JSON")
    return LensRun(table, title, filter_line)


def summary(run: LensRun, *, plot: str | None, json_path: str | None) -> str:
    from seqcirc.lens import lens_text

    diff = run.table["final_max_abs_diff"]
    lines = [lens_text(run.table, run.title), ""]
    if run.filter_line:
        lines.append(run.filter_line)
    lines.append(
        "rank: median over prompts (1 = top); logit: mean; after the last block the lens "
        f"equals the model's logits to {diff:.1e}"
    )
    if diff > FINAL_TOLERANCE * max(1.0, run.table.get("final_max_abs_logit", 0.0)):
        lines.append(
            f"warning: the model's logits differ from its final norm + unembedding by {diff:.3g} "
            "(a logit soft-cap or other output transform): the last row is not its output"
        )
    if plot is not None:
        lines.append(f"plot: {plot}")
    if json_path not in (None, "-"):
        lines.append(f"json: {json_path}")
    return "\n".join(lines)
