"""Answers of several tokens (seqcirc.engine.answers): logprob, accuracy (exact match) and
logit_diff at the first differing token, teacher-forced, against a reference written out
here: the Hugging Face model's own forward of each prompt alone (its prompt followed by
its answer tokens, no padding), with plain hooks replacing hook_z (the input of
attn.c_proj) and the MLP's output, and mean values taken prompt by prompt over the
corrupted prompts that have a token at each position. On a tiny GPT-2 built in code
(" 10", " 11", " 12" two tokens each), the tiny Llama (numerals are "▁" + digits) and
seqcirc-mini (the answer " 7." is the member and the full stop, two tokens of its
word-level tokenizer); edge circuits against node circuits and across the two engines.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from seqcirc.engine.edges import run_edge_circuits
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric, run_circuits
from seqcirc.errors import InputError
from seqcirc.plan import AblationSpec, TaskSpec, params
from seqcirc.tasks.generate import generate_prompts
from seqcirc.tasks.tokenization import tokenize_records
from seqcirc.tasks.types import TokenizedTask
from tests.families import BY_KEY, bridge_of, build
from tests.tasks_fixtures import gpt2_like

MINI = Path(__file__).parents[1] / "seqcirc" / "bundled" / "seqcirc-mini"
PAIRS = [(" 12", " 11"), (" 10", " 5"), (" 5", " 12"), (" 11", " 10"), (" 7", " 8"), (" 12", " 10")]


def _records(pairs: list[tuple[str, str]], range_: int = 9) -> list[Any]:
    spec = TaskSpec(
        "t",
        generator="numerals",
        params=params(prompts=len(pairs), seed=3, range=range_, template="born_in"),
    )
    recs = generate_prompts(spec)
    return [replace(r, correct=c, incorrect=i) for r, (c, i) in zip(recs, pairs, strict=True)]


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any, TokenizedTask]:
    tok = gpt2_like(exclude=["10", "11", "12"])  # " 12" -> "Ġ1" + "2"
    model = build(BY_KEY["gpt2"], len(tok), seed=0)  # the reference's; the bridge wraps a twin
    task = tokenize_records(_records(PAIRS), tok, name="t", prepend_bos=True, multi_token=True)
    return model, bridge_of(build(BY_KEY["gpt2"], len(tok), seed=0)), task


class Reference:
    """The metric of one node circuit, prompt by prompt (module docstring)."""

    def __init__(self, model: Any, task: TokenizedTask, metric: str, value: str = "mean"):
        self.model, self.task, self.metric, self.value = model, task, metric, value
        c_ids, c_len = task.answer_ids("correct")
        i_ids, i_len = task.answer_ids("incorrect")
        self.c = [c_ids[i, : c_len[i]].tolist() for i in range(task.n_prompts)]
        self.i = [i_ids[i, : i_len[i]].tolist() for i in range(task.n_prompts)]
        first = [
            next(k for k, (a, b) in enumerate(zip(c, i, strict=False)) if a != b)
            for c, i in zip(self.c, self.i, strict=True)
        ]
        self.read = first if metric == "logit_diff" else [len(c) - 1 for c in self.c]
        self.corr_acts = [self._capture(self._seq(task.corrupted, i)) for i in range(len(first))]
        if value == "patch":  # the circuit's clean activations, into the corrupted run
            self.corr_acts = [self._capture(self._seq(task.clean, i)) for i in range(len(first))]

    def _seq(self, prompts: np.ndarray, i: int) -> torch.Tensor:
        return torch.as_tensor([prompts[i].tolist() + self.c[i][: self.read[i]]])

    def _blocks(self) -> list[Any]:
        body = getattr(self.model, "transformer", None)
        return list(body.h) if body is not None else list(self.model.model.layers)

    @staticmethod
    def _out_proj(block: Any) -> Any:
        """The attention output projection, whose input is hook_z (GPT-2, Llama)."""
        return block.attn.c_proj if hasattr(block, "attn") else block.self_attn.o_proj

    def _capture(self, seq: torch.Tensor) -> dict[str, torch.Tensor]:
        acts: dict[str, torch.Tensor] = {}
        handles = []
        for layer, b in enumerate(self._blocks()):
            handles.append(
                self._out_proj(b).register_forward_pre_hook(
                    lambda m, a, layer=layer: acts.__setitem__(f"z{layer}", a[0][0].clone())
                )
            )
            handles.append(
                b.mlp.register_forward_hook(
                    lambda m, a, o, layer=layer: acts.__setitem__(f"mlp{layer}", o[0].clone())
                )
            )
        with torch.no_grad():
            self.model(seq)
        for h in handles:
            h.remove()
        return acts

    def _values(self, i: int, name: str, length: int) -> torch.Tensor:
        """Ablation values [length, d] for prompt i: its own corrupted twin (resample), or
        per position the mean over corrupted prompts with a token there."""
        if self.value in ("resample", "patch"):
            return self.corr_acts[i][name][:length]
        rows = []
        for p in range(length):
            have = [a[name][p] for a in self.corr_acts if a[name].shape[0] > p]
            rows.append(torch.stack(have).mean(0))
        return torch.stack(rows)

    def run(self, keep: set[Any], n_heads: int, keep_at: list[str] | None = None) -> np.ndarray:
        """keep: ("h", layer, head) and ("m", layer); keep_at: named positions (END covers
        the appended answer tokens) where kept nodes stay clean, elsewhere ablated."""
        out = []
        for i in range(self.task.n_prompts):
            patch = self.value == "patch"
            seq = self._seq(self.task.corrupted if patch else self.task.clean, i)
            length, end = seq.shape[1], int(self.task.answer_pos[i])
            on = torch.ones(length, dtype=torch.bool)
            if keep_at is not None:
                on[:] = False
                for name in keep_at:
                    on[int(self.task.positions[name][i])] = True
                if "END" in keep_at:
                    on[end : end + self.read[i] + 1] = True
            handles = []
            for layer, b in enumerate(self._blocks()):
                z_abl, m_abl = (
                    self._values(i, f"z{layer}", length),
                    self._values(i, f"mlp{layer}", length),
                )
                d_head = z_abl.shape[-1] // n_heads
                heads = torch.stack(
                    [
                        on if ("h", layer, h) in keep else torch.zeros_like(on)
                        for h in range(n_heads)
                    ],
                    -1,
                ).repeat_interleave(d_head, -1)
                mlp_on = (on if ("m", layer) in keep else torch.zeros_like(on))[:, None]
                if patch:  # circuit nodes get the clean values, the rest runs as it is
                    heads, mlp_on = ~heads, ~mlp_on
                handles.append(
                    self._out_proj(b).register_forward_pre_hook(
                        lambda m, a, z=z_abl, k=heads: (torch.where(k, a[0], z[None]),)
                    )
                )
                handles.append(
                    b.mlp.register_forward_hook(
                        lambda m, a, o, v=m_abl, k=mlp_on: torch.where(k, o, v[None])
                    )
                )
            with torch.no_grad():
                logits = self.model(seq).logits[0].double()
            for h in handles:
                h.remove()
            out.append(self._score(logits, i, end))
        return np.asarray(out)

    def _score(self, logits: torch.Tensor, i: int, end: int) -> float:
        c, r = self.c[i], self.read[i]
        if self.metric == "logit_diff":
            return float(logits[end + r, c[r]] - logits[end + r, self.i[i][r]])
        lp = [torch.log_softmax(logits[end + k], -1)[c[k]] for k in range(len(c))]
        if self.metric == "logprob":
            return float(sum(lp))
        return float(all(int(logits[end + k].argmax()) == c[k] for k in range(len(c))))


def _nodes(n_layers: int, n_heads: int) -> list[Any]:
    return [("h", layer, h) for layer in range(n_layers) for h in range(n_heads)] + [
        ("m", layer) for layer in range(n_layers)
    ]


def _masks(n_layers: int, n_heads: int, seed: int = 0) -> tuple[np.ndarray, list[set[Any]]]:
    nodes = _nodes(n_layers, n_heads)
    rng = np.random.default_rng(seed)
    masks = rng.random((4, len(nodes))) < 0.6
    masks[0] = False  # the empty circuit, through the forward
    return masks, [{n for n, k in zip(nodes, m, strict=True) if k} for m in masks]


@pytest.mark.parametrize("engine", ["fast", "generic"])
@pytest.mark.parametrize("metric", ["logprob", "accuracy", "logit_diff"])
def test_several_token_answers_match_the_reference(tiny: Any, metric: str, engine: str) -> None:
    model, bridge, task = tiny
    assert task.multi_token and sorted(set(task.correct_len.tolist())) == [1, 2]  # type: ignore[union-attr]
    cfg = model.config
    ref = Reference(model, task, metric)
    state = prepare(bridge, task, AblationSpec(), metric, engine=engine, batch_rows=5)
    np.testing.assert_allclose(
        state.m_model, ref.run(set(_nodes(cfg.n_layer, cfg.n_head)), cfg.n_head), atol=1e-5
    )
    masks, kept = _masks(cfg.n_layer, cfg.n_head)
    got = run_circuits(state, masks)
    for row, keep in zip(got, kept, strict=True):
        np.testing.assert_allclose(row, ref.run(keep, cfg.n_head), atol=1e-5)
    np.testing.assert_allclose(empty_metric(state), ref.run(set(), cfg.n_head), atol=1e-5)
    if metric == "logit_diff":  # reads END + 1 where " 12" and " 11" share their "Ġ1"
        assert state.answer_pos.tolist()[0] == task.answer_pos[0] + 1
    if metric != "accuracy":  # accuracy: 0/1 per prompt; the values above say enough
        assert len(set(np.round(got[1], 6))) > 1


@pytest.mark.parametrize("setup", ["resample", "named", "patch"])
def test_resample_named_positions_and_patching(tiny: Any, setup: str) -> None:
    model, bridge, task = tiny
    cfg = model.config
    value = {"resample": "resample", "named": "mean", "patch": "patch"}[setup]
    positions = ("S1", "END") if setup == "named" else None
    ref = Reference(model, task, "logprob", value)
    spec = AblationSpec(
        value="resample" if setup == "patch" else value,
        positions=positions,
        direction="patch_circuit" if setup == "patch" else "ablate_complement",
    )
    state = prepare(bridge, task, spec, "logprob")
    masks, kept = _masks(cfg.n_layer, cfg.n_head, seed=1)
    got = run_circuits(state, masks[1:])
    for row, keep in zip(got, kept[1:], strict=True):
        want = ref.run(keep, cfg.n_head, list(positions) if positions else None)
        np.testing.assert_allclose(row, want, atol=1e-5)
    np.testing.assert_allclose(empty_metric(state), ref.run(set(), cfg.n_head), atol=1e-5)


def test_edges_of_both_engines_agree_and_the_full_graph_is_the_model(tiny: Any) -> None:
    _, bridge, task = tiny
    ablation = AblationSpec(granularity="edge")
    fast = prepare(bridge, task, ablation, "logprob", engine="fast")
    generic = prepare(bridge, task, ablation, "logprob", engine="generic")
    n = fast.graph.n_edges
    keeps = np.random.default_rng(2).random((3, n)) < 0.5
    keeps[0] = True
    keeps[0, 0] = False  # every edge but one: close to the model, not equal
    got_fast, got_generic = run_edge_circuits(fast, keeps), run_edge_circuits(generic, keeps)
    np.testing.assert_allclose(got_fast, got_generic, atol=1e-5)
    np.testing.assert_allclose(empty_metric(fast), empty_metric(generic), atol=1e-5)
    full = np.ones((1, n), dtype=bool)
    full[0, 0] = False
    assert not np.allclose(run_edge_circuits(fast, full)[0], empty_metric(fast))
    # every edge out of a node removed = that node ablated (node runs: the reference above)
    nodes = prepare(bridge, task, AblationSpec(), "logprob", engine="fast")
    for i, node in enumerate(nodes.nodes[:3]):
        keep = np.asarray([e.sender != str(node) for e in fast.graph.edges])
        mask = np.ones((1, len(nodes.nodes)), dtype=bool)
        mask[0, i] = False
        np.testing.assert_allclose(
            run_edge_circuits(fast, keep[None])[0], run_circuits(nodes, mask)[0], atol=1e-5
        )


def test_one_token_answers_are_untouched(tiny: Any) -> None:
    """A task whose answers are all one token runs the arrays it holds, as before, and
    logprob there is log p(correct) at END."""
    model, bridge, _ = tiny
    tok = gpt2_like(exclude=["10", "11", "12"])
    pairs = [(" 5", " 4"), (" 6", " 9"), (" 8", " 7")]
    task = tokenize_records(_records(pairs), tok, name="t", prepend_bos=True, multi_token=True)
    assert not task.multi_token and task.correct_ids is None
    state = prepare(bridge, task, AblationSpec(), "logprob")
    assert state.reads is None and state.clean.shape == task.clean.shape
    with torch.no_grad():
        logits = model(torch.as_tensor(task.clean)).logits.double()
    rows = np.arange(3)
    want = torch.log_softmax(logits[rows, task.answer_pos], -1)[rows, task.correct]
    np.testing.assert_allclose(state.m_model, want.numpy(), atol=1e-6)


def test_one_token_metrics_and_prefix_answers_are_refused(tiny: Any) -> None:
    _, bridge, task = tiny
    with pytest.raises(InputError) as err:
        prepare(bridge, task, AblationSpec(), "prob")
    assert err.value.code == "T310" and "the metric prob needs one-token answers" in str(err.value)
    tok = gpt2_like(exclude=["10", "11", "12"])
    prefix = tokenize_records(
        _records([(" 12", " 1"), (" 5", " 6")]), tok, name="t", prepend_bos=True, multi_token=True
    )
    with pytest.raises(InputError) as err:
        prepare(bridge, prefix, AblationSpec(), "logit_diff")
    assert err.value.code == "T317"
    assert prepare(bridge, prefix, AblationSpec(), "logprob").m_model.shape == (2,)


@pytest.mark.parametrize("metric", ["logprob", "accuracy"])
def test_seqcirc_mini_member_and_full_stop(metric: str) -> None:
    """seqcirc-mini's answer " 7." is two tokens ("7", "."): the model's own forward says
    how likely the member and the full stop after it are."""
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    from seqcirc.models.load import load_model

    tok = PreTrainedTokenizerFast.from_pretrained(str(MINI))
    model = GPT2LMHeadModel.from_pretrained(str(MINI), attn_implementation="eager").eval()
    spec = TaskSpec("t", generator="numerals", params=params(prompts=4, seed=3, template="born_in"))
    recs = [
        replace(r, correct=r.correct + ".", incorrect=r.incorrect + ".")
        for r in generate_prompts(spec)
    ]
    task = tokenize_records(recs, tok, name="t", prepend_bos=True, multi_token=True)
    assert task.correct_len.tolist() == [2] * 4  # type: ignore[union-attr]
    state = prepare(load_model("seqcirc-mini").bridge, task, AblationSpec(), metric)
    ref = Reference(model, task, metric)
    np.testing.assert_allclose(state.m_model, ref.run(set(_nodes(4, 2)), 2), atol=1e-5)
    masks, kept = _masks(4, 2, seed=3)
    for row, keep in zip(run_circuits(state, masks), kept, strict=True):
        np.testing.assert_allclose(row, ref.run(keep, 2), atol=1e-5)
    if metric == "accuracy":  # trained to predict members only, it misses the full stop
        assert state.m_model.tolist() == [0.0] * 4


def test_what_reads_one_answer_token_refuses_several(tiny: Any) -> None:
    """The paper's filter and the logit lens read one token (T310); gradient attribution
    of a metric with several reads, and ratios to F(M) of logprob, are refused too."""
    from seqcirc.claims.measures import f_model
    from seqcirc.claims.removals import removals
    from seqcirc.discovery.attribute import attribute
    from seqcirc.errors import EvaluationError
    from seqcirc.lens.stream import logit_lens
    from seqcirc.tasks.filtering import model_filter

    _, bridge, task = tiny
    for run in (lambda: model_filter(task, bridge), lambda: logit_lens(bridge, task)):
        with pytest.raises(InputError) as err:
            run()
        assert err.value.code == "T310"
    state = prepare(bridge, task, AblationSpec(granularity="edge"), "logprob")
    with pytest.raises(InputError) as err:  # logprob has no gradient method (yet)
        attribute(state, "eap")
    assert err.value.code == "E365"
    exact = attribute(state, "exact")  # one edge circuit per edge: several reads each
    assert np.isfinite(exact.scores).all() and np.abs(exact.scores).max() > 0
    with pytest.raises(EvaluationError) as info:
        f_model(state)
    assert info.value.code == "E312"
    table = removals(state, [], {}, state.m_model, seed=0, n_boot=10, level=0.95)
    assert table["error"].startswith("[E312]")


def test_means_of_padded_answers_are_cached(tiny: Any, tmp_path: Path) -> None:
    """The on-disk means of a padded teacher-forced task: stored, then read back alike."""
    from seqcirc.engine.means_cache import MeansCache

    _, bridge, task = tiny
    masks = _masks(bridge.cfg.n_layers, bridge.cfg.n_heads, seed=4)[0]
    first = prepare(bridge, task, AblationSpec(), "logprob", means_cache=MeansCache(tmp_path))
    again = prepare(bridge, task, AblationSpec(), "logprob", means_cache=MeansCache(tmp_path))
    assert (first.means_cache, again.means_cache) == ("stored", "hit")
    np.testing.assert_array_equal(run_circuits(first, masks), run_circuits(again, masks))
    # logit_diff appends fewer tokens (up to the first differing one): other means
    other = prepare(bridge, task, AblationSpec(), "logit_diff", means_cache=MeansCache(tmp_path))
    assert other.means_cache == "stored"


@pytest.mark.parametrize(("metric", "engine"), [("logit_diff", "fast"), ("logprob", "generic")])
def test_llama_numerals_are_three_pieces(metric: str, engine: str) -> None:
    """The tiny Llama's tokenizer splits " 12" into "▁" + "1" + "2", as Llama-2's does:
    logit_diff of " 31" against " 30" reads END + 2, logprob three tokens."""
    from tests.llama_tiny import bridge_of_llama, llama_tokenizer, tiny_llama

    tok = llama_tokenizer()
    model = tiny_llama(len(tok))
    spec = TaskSpec("t", generator="number_words", params=params(prompts=5, seed=2,
                    template="born_in"))  # fmt: skip
    pairs = [(" 31", " 30"), (" 5", " 7"), (" 12", " 9"), (" 10", " 11"), (" 8", " 9")]
    recs = [replace(r, correct=c, incorrect=i)
            for r, (c, i) in zip(generate_prompts(spec), pairs, strict=True)]  # fmt: skip
    task = tokenize_records(recs, tok, name="t", prepend_bos=True, multi_token=True)
    assert task.correct_len.tolist() == [3, 2, 3, 3, 2]  # type: ignore[union-attr]
    ref = Reference(model, task, metric)
    if metric == "logit_diff":
        assert ref.read == [2, 1, 1, 2, 1]
    bridge = bridge_of_llama(tiny_llama(len(tok)))  # the same weights; the bridge wraps its own
    state = prepare(bridge, task, AblationSpec(), metric, engine=engine)
    cfg = model.config
    n_layers, n_heads = cfg.num_hidden_layers, cfg.num_attention_heads
    np.testing.assert_allclose(state.m_model, ref.run(set(_nodes(n_layers, n_heads)), n_heads),
                               atol=1e-5)  # fmt: skip
    masks, kept = _masks(n_layers, n_heads, seed=5)
    for row, keep in zip(run_circuits(state, masks), kept, strict=True):
        np.testing.assert_allclose(row, ref.run(keep, n_heads), atol=1e-5)


def test_several_token_answers_on_prompts_of_different_lengths_are_refused(tiny: Any) -> None:
    """Teacher forcing appends after prompts of one length; ragged prompts (padded on the
    right) with answers of several tokens stop with E329 before any forward pass."""
    _, bridge, _ = tiny
    tok = gpt2_like(exclude=["10", "11", "12"])
    recs = _records([(" 12", " 11"), (" 10", " 5")])
    recs[1] = replace(recs[1], clean=recs[1].clean + " 9", corrupted=recs[1].corrupted + " 9")
    task = tokenize_records(recs, tok, name="t", prepend_bos=True, multi_token=True)
    assert task.ragged and task.multi_token
    with pytest.raises(InputError) as err:
        prepare(bridge, task, AblationSpec(value="zero"), "logprob")
    assert err.value.code == "E329"
