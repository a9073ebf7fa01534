"""The ablation set-up as a value (seqcirc.plan.ablation): its JSON form, its words in
results and reports, and `ablate mean pooled` from the language down to the engine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqcirc.checks.checker import check_text
from seqcirc.engine.means_cache import MeansCache
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import run_circuits
from seqcirc.errors import DiagnosticsError, InputError
from seqcirc.language.fmt import format_text
from seqcirc.plan import AblationSpec, plan_to_json, to_jsonable
from seqcirc.plan.compile import compile_text
from seqcirc.report import view
from seqcirc.results import CircuitResult
from tests.planted import D_HEAD, N_HEADS, bridge_of, planted_hf, planted_task
from tests.report_fixtures import full_result

POOLED = AblationSpec(per_position=False)


def _recorded(ablation: dict[str, Any], metric: str) -> CircuitResult:
    """A node circuit's result with this recorded ablation set-up."""
    return replace(full_result().circuits[0], granularity="node", ablation=ablation, metric=metric)


def test_json_leaves_out_per_position_at_its_default() -> None:
    assert to_jsonable(AblationSpec()) == {
        "granularity": "node", "value": "mean", "positions": None,
        "direction": "ablate_complement",
    }  # fmt: skip
    assert to_jsonable(POOLED)["per_position"] is False
    assert AblationSpec() != POOLED and hash(AblationSpec()) != hash(POOLED)


@pytest.mark.parametrize(
    ("spec", "setup", "means_from", "values_from"),
    [
        (AblationSpec(),
         "node ablation; value: mean over the corrupted prompts per position; all positions; "
         "clean input, complement ablated",
         "64 corrupted prompts of task 'months'",
         "per-position mean over the 64 corrupted prompts of 'months'"),
        (AblationSpec(granularity="edge", value="resample", positions=("S1", "END")),
         "edge ablation; value: resample (the paired corrupted prompt); positions S1, END; "
         "clean input, complement ablated",
         "none (resample ablation, ablate_complement)",
         "each prompt's paired corrupted prompt (task 'months')"),
        (AblationSpec(value="resample", direction="patch_circuit"),
         "node ablation; value: resample (the paired corrupted prompt); all positions; "
         "corrupted input, circuit patched in",
         "none (resample ablation, patch_circuit)",
         "circuit nodes from the clean prompts; input: the paired corrupted prompt"),
        (AblationSpec(value="zero"),
         "node ablation; value: zero; all positions; clean input, complement ablated",
         "none (zero ablation, ablate_complement)",
         "zeros (no corrupted run)"),
        (POOLED,
         "node ablation; value: mean over the corrupted prompts, pooled over all positions; "
         "all positions; clean input, complement ablated",
         "64 corrupted prompts of task 'months'",
         "mean over the 64 corrupted prompts of 'months', pooled over all positions"),
    ],
)  # fmt: skip
def test_one_description_for_results_and_reports(
    spec: AblationSpec, setup: str, means_from: str, values_from: str
) -> None:
    words = spec.describe("months", 64)
    assert (words.setup, words.means_from, words.values_from) == (
        setup, means_from, values_from,
    )  # fmt: skip
    ablation = {**to_jsonable(spec), "means_from": means_from, "values_from": values_from}
    circuit = _recorded(ablation, "logit_diff")
    assert view.ablation_setup(circuit) == f"{setup}; means from {means_from}; metric logit_diff"


@pytest.mark.parametrize(
    ("recorded", "line"),
    [
        ({}, "node ablation; value —; all positions; direction —; metric kl"),
        ({"granularity": "edge", "value": "noise", "positions": [], "direction": "sideways"},
         "edge ablation; value noise; all positions; direction sideways; metric kl"),
        ({"value": None, "positions": ["S2"]},
         "node ablation; value None; positions S2; direction —; metric kl"),
    ],
)  # fmt: skip
def test_a_report_reads_back_any_recorded_set_up(recorded: dict[str, Any], line: str) -> None:
    circuit = _recorded(recorded, "kl")
    assert view.ablation_setup(circuit) == line


def test_what_the_engine_asks_of_a_set_up() -> None:
    mean, zero = AblationSpec(), AblationSpec(value="zero")
    resample = AblationSpec(value="resample")
    patch = AblationSpec(value="resample", direction="patch_circuit")
    assert mean.uses_means and POOLED.uses_means and not patch.uses_means
    assert not zero.needs_corrupted_run and resample.needs_corrupted_run
    assert resample.per_prompt_values and patch.per_prompt_values and not mean.per_prompt_values
    assert mean.per_position_means and not POOLED.per_position_means
    assert AblationSpec(granularity="edge").is_edge and patch.patches_circuit
    assert POOLED.circ_value() == "mean pooled" and mean.circ_value() == "mean"
    with pytest.raises(InputError) as err:
        AblationSpec(value="zero", per_position=False).check()
    assert err.value.code == "E320"


CIRC = "task months = sequence(months)\ncircuit months on gpt2-small {{\n  {}\n  heads 9.1\n}}\n"


def test_pooled_compiles_and_changes_the_hash_only_where_written() -> None:
    plain = compile_text(CIRC.format("ablate nodes mean(corrupted) per position")).circuits[0]
    pooled = compile_text(CIRC.format("ablate mean pooled")).circuits[0]
    assert plain.ablation == AblationSpec() and pooled.ablation == POOLED
    assert plain.circuit_hash() == "0c8601d28d8b8837"  # as before `pooled` existed
    assert pooled.circuit_hash() != plain.circuit_hash()
    assert '"per_position"' not in plan_to_json(compile_text(CIRC.format("ablate mean")))
    assert '"per_position": false' in plan_to_json(compile_text(CIRC.format("ablate pooled")))
    assert "ablate nodes mean pooled" in format_text(CIRC.format("ablate nodes mean pooled"))


@pytest.mark.parametrize(
    "ablate", ["ablate mean pooled per position", "ablate resample pooled", "ablate zero pooled"]
)
def test_pooled_is_a_mean_and_not_per_position(ablate: str) -> None:
    with pytest.raises(DiagnosticsError) as info:
        check_text(CIRC.format(ablate), "t.circ")
    assert [d.code for d in info.value.diagnostics] == ["E251"]


# ---------------------------------------------------------------- the engine


def _hand_pooled_means(task: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means over every corrupted prompt and position, read off the Hugging Face model with
    hooks: each head's z (c_proj's input), the MLP's output, the embeddings."""
    hf = planted_hf()
    got: dict[str, torch.Tensor] = {}
    block = hf.transformer.h[0]
    hooks = [
        block.attn.c_proj.register_forward_hook(lambda m, i, o: got.update(z=i[0])),
        block.mlp.register_forward_hook(lambda m, i, o: got.update(mlp=o)),
    ]
    with torch.no_grad():
        out = hf(torch.tensor(task.corrupted), output_hidden_states=True)
    for h in hooks:
        h.remove()
    n, seq = task.corrupted.shape
    z = got["z"].reshape(n, seq, N_HEADS, D_HEAD)
    return z.mean((0, 1)), got["mlp"].mean((0, 1)), out.hidden_states[0].mean((0, 1))


def test_a_pooled_mean_is_the_mean_over_prompts_and_positions(tmp_path: Path) -> None:
    bridge, task = bridge_of(planted_hf()), planted_task()
    pooled = prepare(bridge, task, POOLED, means_cache=MeansCache(tmp_path))
    per_position = prepare(bridge, task, AblationSpec(), means_cache=MeansCache(tmp_path))
    z, mlp, embed = _hand_pooled_means(task)
    seq = task.corrupted.shape[1]
    torch.testing.assert_close(pooled.values.z[0], z.expand(seq, -1, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(pooled.values.mlp[0], mlp.expand(seq, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(pooled.embed_values, embed.expand(seq, -1), atol=1e-6, rtol=0)
    # per position differs: each position has its own embedding, so its own mean
    assert not torch.allclose(per_position.embed_values, pooled.embed_values, atol=1e-3)
    assert not torch.allclose(per_position.values.z[0], pooled.values.z[0], atol=1e-3)
    masks = np.array([[1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=bool)
    assert np.abs(run_circuits(pooled, masks) - run_circuits(per_position, masks)).max() > 1e-3
    # the means cache keeps the two apart, and a pooled hit is the pooled miss
    assert pooled.means_cache == per_position.means_cache == "stored"
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    hit = prepare(bridge, task, POOLED, means_cache=MeansCache(tmp_path))
    assert hit.means_cache == "hit"
    assert torch.equal(hit.values.z[0], pooled.values.z[0])
    assert torch.equal(hit.embed_values, pooled.embed_values)


def test_prompts_of_different_lengths_say_means_per_named_position() -> None:
    """A ragged task's means are per named position (docs/tasks.md); its results record
    the prompts' lengths, and the report's set-up line says so. Pooled and resample
    values read as for any task."""
    assert (
        AblationSpec()
        .describe(ragged=True)
        .setup.startswith(
            "node ablation; value: mean over the corrupted prompts per named position;"
        )
    )
    assert POOLED.describe(ragged=True).setup == POOLED.describe().setup
    resample = AblationSpec(value="resample")
    assert resample.describe(ragged=True).setup == resample.describe().setup
    circuit = _recorded(to_jsonable(AblationSpec()), "logit_diff")
    ragged = replace(circuit, task={**(circuit.task or {}), "lengths": [5, 7, 6]})
    assert "per named position" in view.ablation_setup(ragged)
    assert "per named position" not in view.ablation_setup(circuit)
