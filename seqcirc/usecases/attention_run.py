"""What `seqcirc attention MODEL --heads 4.4,9.1 ...` runs: the prompts (a task, a prompt
file or the built-in mixed prompts), the heads' token-level attention patterns averaged
per group of prompts, heatmaps (one file per head), the mean attention between named
positions, JSON (the CLI only parses options and prints)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcirc.errors import InputError
from seqcirc.language.names import HEAD_SPELLINGS, canonical, parse_component
from seqcirc.report.files import check_writable, write_bytes, write_text

MAX_HEADS = 64  # heads of one run: one figure file each


def split_heads(values: list[str]) -> list[str]:
    """`--heads 4.4,9.1 --heads a9.h1`: names split at commas outside brackets (a hook
    name `blocks.9.attn.hook_z[:, :, 1]` has commas of its own)."""
    out, depth, cur = [], 0, ""
    for ch in ",".join(values):
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return [h for h in out if h]


def parse_heads(values: list[str]) -> list[tuple[int, int]]:
    """Heads in any spelling (seqcirc.language.names), in the order given, each once."""
    heads: list[tuple[int, int]] = []
    for text in split_heads(values):
        got = parse_component(text)
        if got is None or got[1] is None:
            raise InputError(
                f"--heads {text!r} is not a head", code="E362", hint=f"write heads {HEAD_SPELLINGS}"
            )
        if (got[0], got[1]) not in heads:
            heads.append((got[0], got[1]))
    if not heads or len(heads) > MAX_HEADS:
        raise InputError(f"--heads names {len(heads)} heads", code="E362",
                         hint=f"name 1 to {MAX_HEADS} heads, e.g. --heads 4.4,9.1")  # fmt: skip
    return heads


def check_heads(heads: list[tuple[int, int]], bridge: Any) -> None:
    n_layers, n_heads = int(bridge.cfg.n_layers), int(bridge.cfg.n_heads)
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise InputError(
                f"head {canonical(layer, head)} does not exist in this model", code="E362",
                hint=f"layers 0..{n_layers - 1}, heads 0..{n_heads - 1}",
            )  # fmt: skip


@dataclass(frozen=True)
class AttentionRun:
    records: list[dict[str, Any]]  # one per (head, group), seqcirc.roles.patterns.pattern_record
    files: list[Path]
    meta: dict[str, Any]


def _groups(loaded: Any, *, task: str | None, prompts: str | None, builtin: str | None,
            seed: int, option: Any) -> list[Any]:  # fmt: skip
    from seqcirc.roles.members import bos_id
    from seqcirc.roles.mixed import builtin_groups
    from seqcirc.roles.patterns import task_group
    from seqcirc.usecases.task_option import build_for

    if builtin is not None:
        bos = bos_id(loaded.bridge, loaded.tokenizer)
        return builtin_groups(builtin, loaded.tokenizer, bos, seed)
    data, _ = build_for(option, loaded)
    return [task_group(data, loaded.tokenizer)]


def run_attention(
    model: str, heads: list[str], *, task: str | None = None, prompts: str | None = None,
    builtin: str | None = None, seed: int = 0, pair: tuple[str, str] | None = None,
    output_dir: str | None = None, fmt: str = "png", json_path: str | None = None,
    device: str = "auto",
) -> AttentionRun:  # fmt: skip
    """Load, build the prompt groups, read the heads' patterns; write figures and JSON."""
    from seqcirc.models.load import load_model
    from seqcirc.roles.patterns import head_patterns, pattern_record
    from seqcirc.usecases.task_option import resolve_task

    wanted = parse_heads(heads)
    option = None
    if builtin is not None:
        if task is not None or prompts is not None:
            raise InputError("give --builtin or --task/--prompts, not both", code="E361")
    else:
        option = resolve_task(task, prompts, seed=seed)
    _check_outputs(output_dir, fmt, json_path)
    loaded = load_model(model, device=device)
    check_heads(wanted, loaded.bridge)
    groups = _groups(loaded, task=task, prompts=prompts, builtin=builtin, seed=seed, option=option)
    records = []
    for group in groups:
        pats = head_patterns(loaded.bridge, group, wanted)
        for (layer, head), p in pats.items():
            records.append(pattern_record(group, p, canonical(layer, head), pair))
    meta = {"model": model, "heads": [canonical(*h) for h in wanted], "seed": seed,
            "prompts": builtin or task or prompts}  # fmt: skip
    files = _write(records, meta, output_dir, fmt)
    if json_path not in (None, "-"):
        write_text(str(json_path), json.dumps({"meta": meta, "records": records}) + "\n",
                   "attention JSON")  # fmt: skip
    return AttentionRun(records, files, meta)


def _check_outputs(output_dir: str | None, fmt: str, json_path: str | None) -> None:
    from seqcirc.report.attention_heatmap import FORMATS

    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}", code="E361", hint="png, svg or pdf")
    if output_dir is not None and Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise InputError(f"-o {output_dir} is a file; give a folder", code="E901")
    if output_dir is not None:
        check_writable(Path(output_dir) / f"attention.{fmt}", "attention heatmaps")
    if json_path not in (None, "-"):
        check_writable(str(json_path), "attention JSON")


def _write(records: list[dict[str, Any]], meta: dict[str, Any], output_dir: str | None,
           fmt: str) -> list[Path]:  # fmt: skip
    """One figure per head, a panel per prompt group."""
    from seqcirc.report.attention_heatmap import heatmaps

    if output_dir is None:
        return []
    files = []
    for head in meta["heads"]:
        panels = [
            {"title": f"{r['group']} (mean of {r['n_prompts']})", "pattern": r["pattern"],
             "labels": r["labels"], "cell": (r.get("attends") or {}).get("cell")}
            for r in records if r["head"] == head
        ]  # fmt: skip
        title = (f"head {head} of {meta['model']}: mean attention pattern per group of prompts "
                 "(query rows, key columns; labels: the first prompt's tokens)")  # fmt: skip
        path = Path(output_dir) / f"attention_{head}.{fmt}"
        files.append(write_bytes(path, heatmaps(panels, title, fmt), "attention heatmap"))
    return files


def summary(run: AttentionRun) -> str:
    """Per head and group: where END attends most, and the from -> to mean if asked."""
    from seqcirc.roles.patterns import end_row

    lines = [f"attention of {', '.join(run.meta['heads'])} on {run.meta['model']}"]
    for head in run.meta["heads"]:
        lines += ["", f"head {head}"]
        for r in (r for r in run.records if r["head"] == head):
            top = ", ".join(f"{label} {w:.2f}" for label, w in end_row(r)[:3])
            lines.append(f"  {r['group']} ({r['n_prompts']} prompts): END attends to {top}")
            if "attends" in r:
                a = r["attends"]
                lines.append(f"    attends({a['from']} -> {a['to']}) = {a['mean']:.3f}")
    if run.files:
        lines += ["", "heatmaps: " + ", ".join(str(f) for f in run.files)]
    return "\n".join(lines)
