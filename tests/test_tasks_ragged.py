"""Prompts of different token lengths (docs/tasks.md, ragged prompts): padded on the right,
every number equals running each prompt alone, unpadded, with the values an independent
reference computes through the bridge's own hook points (mean per named position, one
mean over the unnamed tokens, pooled, zero, resample, patching), on both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric, run_circuits
from seqcirc.errors import InputError
from seqcirc.plan import AblationSpec, Node, TaskSpec
from seqcirc.tasks.types import TokenizedTask
from tests.families import BY_KEY, bridge_of, build
from tests.llama_tiny import bridge_of_llama, tiny_llama

VOCAB = 40
LENGTHS = (7, 5, 9, 6, 8, 5)
SETUPS = {
    "mean": AblationSpec(),
    "mean-pooled": AblationSpec(per_position=False),
    "zero": AblationSpec(value="zero"),
    "resample": AblationSpec(value="resample"),
    "named-positions": AblationSpec(positions=("S", "END")),
    "patch-circuit": AblationSpec(value="resample", direction="patch_circuit"),
}


def ragged_task(seed: int = 0, lengths: tuple[int, ...] = LENGTHS) -> TokenizedTask:
    """Random prompts of the given lengths, right-padded with 0: named positions FIRST
    (index 0), S (a middle token) and END (the last)."""
    rng = np.random.default_rng(seed)
    n, seq = len(lengths), max(lengths)
    clean = np.zeros((n, seq), dtype=np.int64)
    corrupted = np.zeros((n, seq), dtype=np.int64)
    for i, k in enumerate(lengths):
        clean[i, :k] = rng.integers(3, VOCAB, k)
        corrupted[i, :k] = rng.integers(3, VOCAB, k)
    lens = np.asarray(lengths, dtype=np.int64)
    return TokenizedTask(
        name="ragged", clean=clean, corrupted=corrupted,
        correct=rng.integers(3, VOCAB, n), incorrect=rng.integers(3, VOCAB, n),
        positions={"FIRST": np.zeros(n, dtype=np.int64), "S": lens // 2, "END": lens - 1},
        lengths=lens,
    )  # fmt: skip


# ------------------------------------------------------------ the reference, prompt by prompt


def _acts(bridge: Any, ids: list[int]) -> dict[str, torch.Tensor]:
    """hook_z [S, H, dh] and hook_mlp_out [S, d] of every layer, one unpadded prompt."""
    names = lambda n: n.endswith("attn.hook_z") or n.endswith("hook_mlp_out")  # noqa: E731
    _, cache = bridge.run_with_cache(torch.tensor([ids]), names_filter=names)
    h = bridge.cfg.n_heads
    return {k: v[0].reshape(v.shape[1], h, -1) if "hook_z" in k else v[0] for k, v in cache.items()}


def _values(bridge: Any, task: TokenizedTask, setup: str) -> list[dict[str, torch.Tensor]]:
    """Per prompt, the value each hook point is replaced with at each of its real tokens."""
    n = task.n_prompts
    corr = [_acts(bridge, task.real_ids(i, "corrupted")) for i in range(n)]
    if setup in ("resample", "patch-circuit"):
        return corr
    if setup == "zero":
        return [{k: torch.zeros_like(v) for k, v in c.items()} for c in corr]
    real = [(i, s) for i in range(n) for s in range(int(task.lengths[i]))]  # type: ignore[index]
    if setup == "mean-pooled":
        pooled = {k: torch.stack([corr[i][k][s] for i, s in real]).mean(0) for k in corr[0]}
        return [{k: v.expand_as(c[k]) for k, v in pooled.items()} for c in corr]
    # per named position; every other real token gets the mean over all of those
    named = dict(task.positions)
    if task.meta.get("prepend_bos"):  # the BOS token is aligned in every prompt
        named["BOS"] = np.zeros(n, dtype=np.int64)
    slot = {(i, int(idx[i])): name for name, idx in named.items() for i in range(n)}
    rest = [p for p in real if p not in slot]
    means = {
        name: {k: torch.stack([corr[i][k][int(idx[i])] for i in range(n)]).mean(0) for k in corr[0]}
        for name, idx in named.items()
    }
    other = {k: torch.stack([corr[i][k][s] for i, s in rest]).mean(0) for k in corr[0]}
    out = []
    for i in range(n):
        vals = {k: v.clone() for k, v in corr[i].items()}
        for k in vals:
            for s in range(int(task.lengths[i])):  # type: ignore[index]
                vals[k][s] = means[slot[(i, s)]][k] if (i, s) in slot else other[k]
        out.append(vals)
    return out


def _node_keep(hook: str, keep: np.ndarray, n_heads: int, n_layers: int) -> torch.Tensor:
    layer = int(hook.split(".")[1])
    if "hook_z" in hook:
        return torch.as_tensor(keep[layer * n_heads : (layer + 1) * n_heads])
    return torch.as_tensor(keep[n_layers * n_heads + layer : n_layers * n_heads + layer + 1])


def reference(bridge: Any, task: TokenizedTask, setup: str, keep: np.ndarray) -> np.ndarray:
    """logit_diff of each prompt alone with the circuit `keep` [n_nodes] left clean
    (patching: the corrupted prompt with the circuit's clean activations)."""
    spec = SETUPS[setup]
    values = _values(bridge, task, setup)
    nh, nl = bridge.cfg.n_heads, bridge.cfg.n_layers
    out = []
    for i in range(task.n_prompts):
        k = int(task.lengths[i])  # type: ignore[index]
        clean_pos = torch.ones(k, dtype=torch.bool)
        if spec.positions is not None:
            clean_pos[:] = False
            for name in spec.positions:
                clean_pos[int(task.positions[name][i])] = True
        patch = spec.patches_circuit
        src = _acts(bridge, task.real_ids(i)) if patch else values[i]
        ids = task.real_ids(i, "corrupted" if patch else "clean")

        def make(name: str, src: Any = src, cp: Any = clean_pos, patch: bool = patch) -> Any:
            kept = _node_keep(name, keep, nh, nl)  # [H] or [1]
            heads = "hook_z" in name
            mask = kept[None, :] & cp[:, None] if heads else kept & cp
            take = (mask if patch else ~mask)[..., None]  # [S, H, 1] or [S, 1]

            def hook(x: torch.Tensor, hook: Any) -> torch.Tensor:
                new = src[name].to(x)
                return torch.where(take, new, x[0].reshape(new.shape)).reshape(x.shape)

            return hook

        hooks = [(name, make(name)) for name in values[i]]
        with torch.inference_mode():
            logits = bridge.run_with_hooks(torch.tensor([ids]), fwd_hooks=hooks)[0, -1]
        out.append(float(logits[int(task.correct[i])] - logits[int(task.incorrect[i])]))
    return np.asarray(out)


# ------------------------------------------------------------ the checks


def _models() -> dict[str, Any]:
    return {
        "gpt2": bridge_of(build(BY_KEY["gpt2"], VOCAB)),
        "llama": bridge_of_llama(tiny_llama(VOCAB)),
    }


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return _models()


def plain(bridge: Any, task: TokenizedTask, which: str = "clean") -> np.ndarray:
    """logit_diff of each prompt alone, unpadded, without intervention."""
    out = []
    with torch.inference_mode():
        for i in range(task.n_prompts):
            logits = bridge(torch.tensor([task.real_ids(i, which)]))[0, -1]
            out.append(float(logits[int(task.correct[i])] - logits[int(task.incorrect[i])]))
    return np.asarray(out)


@pytest.mark.parametrize("setup", list(SETUPS))
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_padded_circuits_equal_each_prompt_alone(models, arch, setup):  # type: ignore[no-untyped-def]
    bridge, task = models[arch], ragged_task()
    spec = SETUPS[setup]
    n_nodes = bridge.cfg.n_layers * (bridge.cfg.n_heads + 1)
    rng = np.random.default_rng(1)
    masks = np.stack([rng.random(n_nodes) < 0.5, rng.random(n_nodes) < 0.5])
    want = np.stack([reference(bridge, task, setup, m) for m in masks])
    if spec.patches_circuit:
        empty = plain(bridge, task, "corrupted")
    else:  # everything ablated everywhere (named positions too)
        base = "mean" if setup == "named-positions" else setup
        empty = reference(bridge, task, base, np.zeros(n_nodes, bool))
    for engine in ("fast", "generic"):
        state = prepare(bridge, task, spec, engine=engine, batch_rows=4)
        np.testing.assert_allclose(run_circuits(state, masks), want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(state.m_model, plain(bridge, task), atol=1e-5, rtol=0)
        np.testing.assert_allclose(empty_metric(state), empty, atol=1e-5, rtol=0)
    assert np.abs(want - plain(bridge, task)).max() > 0.1  # the ablation moves the metric


def alone(task: TokenizedTask, i: int) -> TokenizedTask:
    """Prompt i as a task of its own, unpadded."""
    return TokenizedTask(
        name="alone", clean=np.asarray([task.real_ids(i)]),
        corrupted=np.asarray([task.real_ids(i, "corrupted")]),
        correct=task.correct[i : i + 1], incorrect=task.incorrect[i : i + 1],
        positions={k: v[i : i + 1] for k, v in task.positions.items()},
    )  # fmt: skip


@pytest.mark.parametrize("value", ["zero", "resample"])
def test_padded_edge_circuits_equal_each_prompt_alone(models, value):  # type: ignore[no-untyped-def]
    from seqcirc.engine.edges import run_edges

    bridge, task = models["gpt2"], ragged_task(2)
    spec = AblationSpec(granularity="edge", value=value)  # type: ignore[arg-type]
    for engine in ("fast", "generic"):
        state = prepare(bridge, task, spec, engine=engine, batch_rows=4)
        keep = np.random.default_rng(3).random((3, state.graph.n_edges)) < 0.4
        got = np.stack([run_edges(state, k) for k in keep])
        for i in range(task.n_prompts):
            one = prepare(bridge, alone(task, i), spec, engine=engine)
            want = np.stack([run_edges(one, k) for k in keep])[:, 0]
            np.testing.assert_allclose(got[:, i], want, atol=1e-5, rtol=0, err_msg=engine)
        np.testing.assert_allclose(empty_metric(state, "edge"), [
            empty_metric(prepare(bridge, alone(task, i), spec, engine=engine), "edge")[0]
            for i in range(task.n_prompts)
        ], atol=1e-5, rtol=0)  # fmt: skip


def test_every_node_claim_runs_alike_on_both_engines(models):  # type: ignore[no-untyped-def]
    from tests.test_forward_generic import NODE_CLAIMS, _evaluate, assert_same_results

    bridge, task = models["llama"], ragged_task(3)
    nodes = [Node(0, 1), Node(1, 0), Node(2, 3), Node(0), Node(2)]
    # mean only: the one set-up whose values ragged prompts change (per named position);
    # resample's per-prompt values are checked against each prompt alone above
    for setup in ("mean",):
        results = [
            _evaluate(bridge, task, nodes, SETUPS[setup], NODE_CLAIMS, e)
            for e in ("fast", "generic")
        ]
        # ratios amplify the engines' rounding; per-prompt metrics agree to 1e-5 above
        assert assert_same_results(*results, atol=1e-4) > 50
        circuit = results[0].circuits[0]
        assert "error" not in {c.verdict for c in circuit.claims}
        shared = [w for w in circuit.warnings if "share one mean" in w]
        assert bool(shared) == (setup == "mean")
        assert not [w for w in circuit.warnings if "mix tokens" in w]
        assert circuit.task["lengths"] == [7, 5, 9, 6, 8, 5]  # the result records them


def test_attends_reads_each_prompts_own_positions(models):  # type: ignore[no-untyped-def]
    from seqcirc.roles.attention import attends_scores

    bridge, task = models["gpt2"], ragged_task(4)
    got = attends_scores(bridge, task, "END", "S", batch_size=4)
    want = np.mean([attends_scores(bridge, alone(task, i), "END", "S") for i in range(6)], 0)
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("method", ["eap", "eap-ig-inputs", "exact"])
def test_attribution_of_padded_prompts_is_the_mean_of_each_alone(models, method):  # type: ignore[no-untyped-def]
    from seqcirc.discovery.attribute import attribute

    bridge, task = models["gpt2"], ragged_task(5, (5, 8, 6))
    spec = AblationSpec(granularity="edge", value="resample")
    steps = 3 if method.startswith("eap-ig") else None
    got = attribute(prepare(bridge, task, spec, batch_rows=2), method, steps=steps).scores
    want = np.mean([attribute(prepare(bridge, alone(task, i), spec), method, steps=steps).scores
                    for i in range(3)], 0)  # fmt: skip
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_the_logit_lens_reads_each_prompts_own_end(models):  # type: ignore[no-untyped-def]
    from seqcirc.lens.stream import logit_lens

    bridge, task = models["llama"], ragged_task(6)
    got = logit_lens(bridge, task, components=True, batch_size=4)
    for i in range(task.n_prompts):
        one = logit_lens(bridge, alone(task, i), components=True)
        assert (got.top[:, i] == one.top[:, 0]).all()
        for m, by_target in one.values.items():
            for target, v in by_target.items():
                np.testing.assert_allclose(got.values[m][target][:, i], v[:, 0], atol=1e-4)


def test_two_names_on_one_token_are_refused(models):  # type: ignore[no-untyped-def]
    task = ragged_task()
    task.positions["S"][1] = task.positions["END"][1]
    with pytest.raises(InputError) as err:
        prepare(models["gpt2"], task, AblationSpec())
    assert err.value.code == "E323" and "S and END are the same token" in err.value.message
    prepare(models["gpt2"], task, AblationSpec(value="resample"))  # no means: no clash


def test_a_subset_of_one_length_is_an_ordinary_task() -> None:
    task = ragged_task()
    some = task.subset(np.array([0, 2, 3]))
    assert some.ragged and some.seq_len == 9 and some.lengths.tolist() == [7, 9, 6]  # type: ignore[union-attr]
    one = task.subset(np.array([1, 5]))  # both 5 tokens: the padding goes
    assert (
        not one.ragged
        and one.seq_len == 5
        and one.clean.tolist() == task.clean[[1, 5], :5].tolist()
    )
    assert one.answer_pos.tolist() == [4, 4]


def test_index_by_index_consumers_refuse_ragged_prompts() -> None:
    from seqcirc.roles.patterns import task_group

    with pytest.raises(InputError) as err:
        task_group(ragged_task(), None)
    assert err.value.code == "T315" and "5 to 9 tokens" in err.value.message


# ------------------------------------------------------------ a prompt file on seqcirc-mini

BUNDLED = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini" / "model.safetensors"
NAMES = ("Paul", "Kate", "Peter", "Mary", "Alex")


def mini_rows() -> list[dict[str, Any]]:
    """numerals prompts with 2, 3 or 4 members (different lengths); N1 S1 N2 S2 named."""
    rows = []
    for k, (members, start) in enumerate([(2, 3), (3, 5), (4, 1), (2, 7), (3, 2), (4, 6)]):
        shown = list(range(start, start + members))
        corrupt = [shown[0] + 5, *shown[1:-1], shown[0]] if members > 2 else [shown[1], shown[0]]

        def text(ms: list[int]) -> str:
            parts = [f"{NAMES[j]} born in {m}." for j, m in enumerate(ms)]
            return " ".join([*parts, f"{NAMES[len(ms)]} born in"])

        first, second = text(shown), text(corrupt)
        rows.append({
            "id": k, "clean": first, "corrupted": second, "correct": str(shown[-1] + 1),
            "incorrect": str(shown[-1]),
            "positions": {"N1": "Paul", "S1": [first.index(" ", 10) + 1, first.index(".")],
                          "N2": "Kate", "S2": str(shown[1])},
        })  # fmt: skip
    return rows


@pytest.mark.skipif(not BUNDLED.exists(), reason="the bundled model's weights are not built")
def test_a_ragged_prompt_file_on_seqcirc_mini(tmp_path: Path) -> None:
    import json

    from seqcirc.models.load import load_model
    from seqcirc.tasks.build import build_task
    from seqcirc.tasks.export import export_lines
    from seqcirc.tasks.filtering import filter_from_logits, model_filter

    path = tmp_path / "ragged.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in mini_rows()), encoding="utf-8")
    model = load_model("seqcirc-mini")
    spec = TaskSpec(name="ragged", file=path.name)
    task = build_task(spec, model.tokenizer, prepend_bos=True, base_dir=tmp_path)
    ids = [model.tokenizer(r["clean"], add_special_tokens=False)["input_ids"] for r in mini_rows()]
    assert task.lengths is not None and task.lengths.tolist() == [len(x) + 1 for x in ids]
    assert task.answer_pos.tolist() == [len(x) for x in ids]  # each prompt's own last token
    lines = [json.loads(x) for x in export_lines(task)[1:]]
    assert [x["clean_ids"] for x in lines] == [[0, *x] for x in ids]  # BOS, no padding
    assert [x["positions"]["END"] for x in lines] == [len(x) for x in ids]
    kept, report = model_filter(task, model.bridge, batch_rows=4)
    with torch.inference_mode():  # the filter reads each prompt's own END
        ends = [model.bridge(torch.tensor([task.real_ids(i)]))[0, -1] for i in range(6)]
    alone_report = filter_from_logits(torch.stack(ends).numpy(), task.correct, task.incorrect)
    assert report.kept.tolist() == alone_report.kept.tolist()
    assert kept.answer_pos.tolist() == task.answer_pos[report.kept].tolist()
    n_nodes = model.bridge.cfg.n_layers * (model.bridge.cfg.n_heads + 1)
    keep = np.random.default_rng(0).random((2, n_nodes)) < 0.5
    for setup in ("mean", "resample"):
        want = np.stack([reference(model.bridge, task, setup, k) for k in keep])
        for engine in ("fast", "generic"):
            state = prepare(model.bridge, task, SETUPS[setup], engine=engine)
            np.testing.assert_allclose(run_circuits(state, keep), want, atol=1e-5, rtol=0)
            np.testing.assert_allclose(state.m_model, plain(model.bridge, task), atol=1e-5)
