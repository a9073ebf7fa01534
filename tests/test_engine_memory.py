"""seqcirc.engine.memory: the bytes-per-row estimate against the measured peak of real forwards,
and the chunking it drives (a run too large for the budget is cut, with the same numbers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seqcirc.engine import runner
from seqcirc.engine.memory import (
    CPU_BUDGET_BYTES,
    ForwardShape,
    budget_bytes,
    edge_row_bytes,
    node_row_bytes,
    rows_for,
)
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import run_circuits
from seqcirc.errors import InputError
from seqcirc.plan import AblationSpec
from tests.planted import bridge_of, planted_hf, planted_task

ROOT = Path(__file__).resolve().parent.parent

# One process per measurement set: the kernel's resident high-water mark (VmHWM) is reset
# to the current RSS before each forward (/proc/self/clear_refs), so its rise is that
# forward's peak. glibc's fixed mmap threshold hands every large tensor straight back to
# the kernel, so freed memory neither lingers nor hides a later allocation.
PROBE = r"""
import json, sys
from pathlib import Path
from types import SimpleNamespace
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from seqcirc.forward.gpt2 import Replacement, extract_weights, forward_nodes
from seqcirc.engine.memory import ForwardShape, node_row_bytes
from seqcirc.engine.metric import per_prompt

torch.set_num_threads(1)
L, H, D, V, S, B = (int(x) for x in sys.argv[1:7])
torch.manual_seed(0)
cfg = GPT2Config(n_layer=L, n_head=H, n_embd=D, vocab_size=V, n_positions=S)
w = extract_weights(SimpleNamespace(original_model=GPT2LMHeadModel(cfg).eval()))
tokens, pos = torch.randint(0, V, (B, S)), torch.full((B,), S - 1)
dh = D // H
shared = Replacement(tuple(torch.zeros(S, H, dh) for _ in range(L)),
                     tuple(torch.zeros(S, D) for _ in range(L)))
per_row = Replacement(tuple(torch.zeros(B, S, H, dh) for _ in range(L)),
                      tuple(torch.zeros(B, S, D) for _ in range(L)))

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

def run(mode, b):
    t, p = tokens[:b], pos[:b]
    if mode == "capture":
        return forward_nodes(w, t, p, capture=True, logits=False)
    keep = torch.zeros(b, 1, w.n_nodes, dtype=torch.bool)
    vals = shared if mode == "circuit" else per_row.rows(torch.arange(b))
    out = forward_nodes(w, t, p, replace=~keep, values=vals)
    return per_prompt("logit_diff", out.logits, p, p, None)

shape = ForwardShape.of(w, S)
result = {}
with torch.inference_mode():
    for mode in ("capture", "circuit", "resample"):
        run(mode, 2)  # kernels and thread pools first
        Path("/proc/self/clear_refs").write_text("5")
        before = hwm()
        run(mode, B)
        est = node_row_bytes(shape, capture=mode == "capture",
                             per_prompt_values=mode == "resample", logits=mode != "capture")
        result[mode] = {"measured": hwm() - before, "estimated": est * B}
print(json.dumps(result))
"""


def _measure(*sizes: int) -> dict[str, dict[str, int]]:
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, sizes)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize(
    "sizes",
    [
        (2, 4, 64, 2000, 32, 512),  # attention and MLP dominate
        (2, 12, 768, 50257, 9, 192),  # GPT-2's widths and vocabulary: the logits dominate
    ],
    ids=["long-prompts", "gpt2-widths"],
)
def test_estimate_is_within_a_factor_of_two_of_the_measured_peak(sizes: tuple[int, ...]) -> None:
    for mode, got in _measure(*sizes).items():
        ratio = got["measured"] / got["estimated"]
        assert 0.5 <= ratio <= 2.0, (mode, got, ratio)


def test_estimate_by_hand_for_a_small_shape() -> None:
    shape = ForwardShape(n_layers=2, n_heads=2, d_model=8, d_mlp=32, vocab=10, seq=3)
    # resid 3*3*8=72; attention 9*3*8 + 2*2*9 = 252 > mlp 2*3*32 + 2*3*8 = 240
    # logits 30; ids and masks 3 * (8 + 2*6) = 60 bytes
    assert node_row_bytes(shape) == (72 + 252 + 30) * 4 + 60
    # capture adds z and mlp_out of both layers (2*2*3*8 = 96) and drops the logits
    assert node_row_bytes(shape, capture=True, logits=False) == (72 + 252 + 96) * 4 + 60
    assert node_row_bytes(shape, per_prompt_values=True) == (72 + 252 + 96 + 30) * 4 + 60
    # edges: 7 senders; 3*7*8 buffer + 3*3*6*8 + 3*3*2*8 + 2*3*32 + 4*3*8 + 30
    assert edge_row_bytes(shape) == (168 + 432 + 144 + 192 + 96 + 30) * 4


def test_rows_fill_the_budget_and_stay_in_bounds() -> None:
    assert rows_for(1000, 300) == 3
    assert rows_for(100, 300) == 1  # one row even over budget
    assert rows_for(1 << 40, 1) == 1 << 16
    assert budget_bytes("cpu") == CPU_BUDGET_BYTES
    gpt2 = ForwardShape(n_layers=12, n_heads=12, d_model=768, d_mlp=3072, vocab=50257, seq=9)
    rows = rows_for(CPU_BUDGET_BYTES, node_row_bytes(gpt2))
    assert 40 < rows < 100  # about 0.9 MB per row in a 64 MiB chunk
    # a 200-circuit baseline on 64 prompts is 12,800 rows: a couple of hundred chunks
    assert 120 <= -(-200 * 64 // rows) <= 320


@pytest.fixture(scope="module")
def bridge():  # type: ignore[no-untyped-def]
    return bridge_of(planted_hf())


def test_a_run_larger_than_the_budget_is_chunked_with_the_same_numbers(
    bridge, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    task = planted_task()
    big = prepare(bridge, task, AblationSpec())
    shape = ForwardShape.of(big.weights, task.seq_len)
    per_row = node_row_bytes(shape)
    budget = 5 * per_row + per_row // 2  # room for 5 rows of a circuit pass
    small = prepare(bridge, task, AblationSpec(), memory_budget=budget)
    assert small.batch_rows == 5 and big.batch_rows >= 8 * 40
    assert small.capture_rows == budget // node_row_bytes(shape, capture=True)
    chunks: list[int] = []
    real = runner.forward_nodes

    def counting(w, tokens, answer_pos, **kw):  # type: ignore[no-untyped-def]
        chunks.append(int(tokens.shape[0]))
        return real(w, tokens, answer_pos, **kw)

    monkeypatch.setattr(runner, "forward_nodes", counting)
    rng = np.random.default_rng(0)
    masks = rng.random((40, big.weights.n_nodes)) < 0.5
    got = run_circuits(small, masks)
    assert chunks == [5] * 64  # 40 circuits x 8 prompts in chunks of 5 rows
    assert max(chunks) * per_row <= budget
    chunks.clear()
    want = run_circuits(big, masks)
    assert chunks == [320]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batch_size_overrides_every_chunk_and_must_be_positive(bridge) -> None:  # type: ignore[no-untyped-def]
    task = planted_task()
    st = prepare(bridge, task, AblationSpec(), batch_rows=3, memory_budget=1)
    assert (st.batch_rows, st.capture_rows, st.edge_rows) == (3, 3, 3)
    with pytest.raises(InputError) as err:
        prepare(bridge, task, AblationSpec(), batch_rows=0)
    assert err.value.code == "E406"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_budget_is_a_share_of_free_memory_and_bounds_the_peak() -> None:
    free, _ = torch.cuda.mem_get_info()
    assert 0 < budget_bytes("cuda") <= free
    from types import SimpleNamespace

    from transformers import GPT2Config, GPT2LMHeadModel

    from seqcirc.forward.gpt2 import Replacement, extract_weights, forward_nodes

    cfg = GPT2Config(n_layer=2, n_head=4, n_embd=64, vocab_size=2000, n_positions=32)
    w = extract_weights(SimpleNamespace(original_model=GPT2LMHeadModel(cfg).eval().cuda()))
    b, s = 512, 32
    tokens = torch.randint(0, 2000, (b, s), device="cuda")
    pos = torch.full((b,), s - 1, device="cuda")
    shared = Replacement(
        tuple(torch.zeros(s, 4, 16, device="cuda") for _ in range(2)),
        tuple(torch.zeros(s, 64, device="cuda") for _ in range(2)),
    )
    keep = torch.zeros(b, 1, w.n_nodes, dtype=torch.bool, device="cuda")
    with torch.inference_mode():
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        forward_nodes(w, tokens, pos, replace=~keep, values=shared)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    est = node_row_bytes(ForwardShape.of(w, s)) * b
    assert 0.5 <= peak / est <= 2.0, (peak, est)


def test_the_generic_edge_pass_takes_four_budgets_on_a_cpu_only_by_default() -> None:
    """Its per-chunk costs are spread over 4x the rows (engine/prepare.py); a budget that
    is given, and the fast engine, keep the rows the budget holds."""
    bridge, task = bridge_of(planted_hf()), planted_task()
    edge = AblationSpec(granularity="edge")
    cpu = budget_bytes(torch.device("cpu"))
    row = cpu // 10  # as if a row took a tenth of the budget: 10 rows, 40 for the generic pass
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("seqcirc.engine.prepare.edge_row_bytes", lambda *a, **k: row)
        assert prepare(bridge, task, edge).edge_rows == 10
        assert prepare(bridge, task, edge, engine="generic").edge_rows == 40
        given = prepare(bridge, task, edge, engine="generic", memory_budget=cpu)
        assert given.edge_rows == 10
