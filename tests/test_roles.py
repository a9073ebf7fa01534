"""Head roles on planted models whose answers are known by construction.

The planted model (GPT-2 architecture, hand-set weights):
- vocabulary: BOS, the 12 months, filler words; token t embeds as the unit vector e_t,
  position p as e_{64+p}; block 0 writes nothing (its output projections are zero),
  so the residual after block 0 is embedding + position;
- layer 1: head 0's OV map sends each month to the next month (successor by
  construction), head 1's to itself (copy), head 2's to a filler word (neither),
  head 3 is all zeros (writes nothing; ties must not count as hits);
- layer 0: head 0 attends to the previous position (W_Q/W_K on the position
  dimensions), head 1 to the current position, head 2 uniformly (zero Q/K).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from roles_planted import N_HEADS, VOCAB, planted_bridge, planted_tokenizer

from seqcirc.errors import InputError
from seqcirc.roles.attention import (
    attends_from_patterns,
    attends_scores,
    detection_patterns,
    pattern_match,
    pattern_scores,
    repeated_random_tokens,
)
from seqcirc.roles.members import member_contexts, member_tokens
from seqcirc.roles.ov import head_ov_logits, ov_scores, resid_after_block0
from seqcirc.tasks.sets import ORDERED_SETS
from seqcirc.tasks.types import TokenizedTask

MONTHS = ORDERED_SETS["months"]


@pytest.fixture(scope="module")
def tokenizer():
    return planted_tokenizer()


@pytest.fixture(scope="module")
def bridge():
    return planted_bridge()


# ---- members and contexts -------------------------------------------------------------


def test_member_tokens_and_paper_contexts(tokenizer):
    toks = member_tokens(tokenizer, "months")
    assert toks.ids == tuple(range(1, 13))
    ctx = member_contexts(toks, "prompts", bos=0)
    # runs of 4 whose last member has a successor: Jan-Apr ... Aug-Nov (8 prompts)
    assert ctx.tokens.shape == (8, 5)
    assert ctx.tokens[0].tolist() == [0, 1, 2, 3, 4]
    assert ctx.tokens[-1].tolist() == [0, 8, 9, 10, 11]
    assert len(ctx.member) == 32 and ctx.member.max() == 10  # December never scored
    alone = member_contexts(toks, "alone", bos=None)
    assert alone.tokens.shape == (11, 1) and alone.pos.tolist() == [0] * 11


class _SplitTokenizer:
    """Splits 'September' in two, like a BPE without that word."""

    bos_token_id = None
    unk_token_id = None

    def encode(self, text, add_special_tokens=False):
        return [7, 8] if text.strip() == "September" else [hash(text.strip()) % 1000]

    def decode(self, ids):
        return {7: " Sept", 8: "ember"}.get(ids[0], "?")


def test_member_that_is_not_one_token_is_named():
    with pytest.raises(InputError) as err:
        member_tokens(_SplitTokenizer(), "months")
    assert err.value.code == "E803"
    assert "'September' -> 2 tokens [' Sept', 'ember']" in err.value.message


def test_member_missing_from_vocabulary_is_named(tokenizer):
    with pytest.raises(InputError, match="'one' -> the unknown token"):
        member_tokens(tokenizer, "number_words")


def test_unknown_set_suggests_the_close_name(tokenizer):
    with pytest.raises(InputError) as err:
        member_tokens(tokenizer, "month")
    assert "did you mean 'months'" in (err.value.hint or "")


def test_every_ordered_set_resolves_its_default_members():
    from seqcirc.roles.members import resolve_members
    from seqcirc.tasks.sets import DEFAULT_RANGE

    for name, full in ORDERED_SETS.items():
        assert resolve_members(name) == full[: DEFAULT_RANGE[name]]
    assert resolve_members("numerals", 100)[-1] == "100"
    with pytest.raises(InputError, match="consecutive"):
        resolve_members("months", ["March", "May"])


# ---- OV scores ---------------------------------------------------------------------------


def test_ov_weights_agree_with_the_model_run(bridge):
    """W_V/b_V/ln1 as used for OV scores reproduce the model's own hook_v."""
    tokens = np.array([[0, 1, 2, 3, 4, 5]])
    _, cache = bridge.run_with_cache(torch.as_tensor(tokens))
    x = bridge.blocks[1].ln1(cache["blocks.0.hook_resid_post"])
    v = torch.einsum("bpd,hde->bphe", x, bridge.W_V[1]) + bridge.b_V[1]
    torch.testing.assert_close(v, cache["blocks.1.attn.hook_v"])
    rows = resid_after_block0(bridge, tokens)[0]
    logits = head_ov_logits(bridge, 1, [0, 1], rows)
    assert logits.shape == (6, 2, VOCAB)
    assert logits[1:, 0].argmax(-1).tolist() == [2, 3, 4, 5, 6]  # successor head: next month
    assert logits[1:, 1].argmax(-1).tolist() == [1, 2, 3, 4, 5]  # copy head: the same month


@pytest.mark.parametrize("context", ["prompts", "alone"])
def test_planted_successor_and_copy_heads(bridge, tokenizer, context):
    nxt = ov_scores(bridge, tokenizer, "months", target="next", context=context, top_k=1)
    cpy = ov_scores(bridge, tokenizer, "months", target="self", context=context, top_k=1)
    assert nxt.topk[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert nxt.first_in_set[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert cpy.topk[1].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert cpy.first_in_set[1].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert nxt.per_member(1, 0) == {m: 1.0 for m in MONTHS[:11]}


def test_top_k_counts_rank_and_ties_go_against_the_target(bridge, tokenizer):
    """Successor head: the member itself sits below every filler word (it gets a small
    negative logit), so its copy score is 0 even at k=5; the all-zero head ties every
    token and scores 0; at k = vocabulary size everything is a hit."""
    cpy = ov_scores(bridge, tokenizer, "months", target="self", top_k=5)
    assert cpy.topk[1].tolist() == [0.0, 1.0, 0.0, 0.0]
    everything = ov_scores(bridge, tokenizer, "months", target="self", top_k=VOCAB)
    assert everything.topk[1].tolist() == [1.0, 1.0, 1.0, 1.0]
    with pytest.raises(InputError, match="top=0"):
        ov_scores(bridge, tokenizer, "months", target="self", top_k=0)


def test_scoring_some_heads_leaves_the_rest_unscored(bridge, tokenizer):
    s = ov_scores(bridge, tokenizer, "months", target="next", heads=[(1, 0)])
    assert s.topk[1, 0] == 1.0
    assert np.isnan(s.topk[0]).all() and np.isnan(s.topk[1, 1:]).all()
    with pytest.raises(InputError, match=r"head 2\.0 does not exist"):
        ov_scores(bridge, tokenizer, "months", target="next", heads=[(2, 0)])


# ---- attention patterns ------------------------------------------------------------------


def test_pattern_match_on_hand_built_patterns():
    tokens = torch.tensor([[9, 1, 2, 3, 1, 2, 3]])  # BOS, ABC, ABC
    prev = detection_patterns(tokens, "previous_token")
    dup = detection_patterns(tokens, "duplicate")
    ind = detection_patterns(tokens, "induction")
    assert dup[0, 4].tolist() == [0, 1, 0, 0, 0, 0, 0]
    assert ind[0, 4].tolist() == [0, 0, 1, 0, 0, 0, 0]
    seq = tokens.shape[1]
    exact_prev = torch.zeros(1, 1, seq, seq)
    exact_prev[0, 0, 0, 0] = 1.0
    exact_prev[0, 0, torch.arange(1, seq), torch.arange(seq - 1)] = 1.0
    half = 0.5 * exact_prev + 0.5 * torch.eye(seq)  # half on previous, half on self
    half[0, 0, 0, 0] = 1.0
    pats = torch.cat([exact_prev, half], dim=1)  # [1, 2 heads, q, k]
    assert pattern_match(pats, prev).tolist() == [1.0, 0.5]
    # the exact previous-token head lands on the induction target only at the repeat's
    # first query (position 4 -> key 2 is not previous), so it scores 0 there
    assert pattern_match(pats, ind).tolist() == [0.0, 0.0]
    # an induction head: rows 4..6 put all weight on their target, earlier rows anywhere
    induct = torch.eye(seq)[None, None].clone()
    for q, k in ((4, 2), (5, 3), (6, 4)):
        induct[0, 0, q] = 0.0
        induct[0, 0, q, k] = 1.0
    assert pattern_match(induct, ind).tolist() == [1.0]
    assert pattern_match(induct, dup).tolist() == [0.0]


def test_repeated_random_tokens_have_no_accidental_duplicates():
    toks = repeated_random_tokens(list(range(5, 60)), n_seqs=3, half_len=10, seed=1, bos=0)
    assert toks.shape == (3, 21) and (toks[:, 0] == 0).all()
    assert torch.equal(toks[:, 1:11], toks[:, 11:])
    assert all(len(set(row[1:11].tolist())) == 10 for row in toks)
    again = repeated_random_tokens(list(range(5, 60)), n_seqs=3, half_len=10, seed=1, bos=0)
    assert torch.equal(toks, again)


def test_planted_previous_token_head(bridge, tokenizer):
    half = 10
    scores = pattern_scores(bridge, tokenizer, n_seqs=4, half_len=half, seed=0, bos=0)
    prev = scores["previous_token"]
    assert prev[0, 0] > 0.999  # planted previous-token head
    assert prev[0, 1] < 1e-3  # attends to itself
    # the uniform head puts 1/(q+1) on the previous token at query q (q = 1..2*half)
    seq = 2 * half + 1
    expected = np.mean([1 / (q + 1) for q in range(1, seq)])
    assert prev[0, 2] == pytest.approx(expected, abs=1e-5)
    # ... and 1/(q+1) on the one earlier copy at each query of the repeat
    expected_dup = np.mean([1 / (q + 1) for q in range(half + 1, seq)])
    assert scores["duplicate"][0, 2] == pytest.approx(expected_dup, abs=1e-5)
    assert scores["induction"][0, 2] == pytest.approx(expected_dup, abs=1e-5)


def _task(clean, positions):
    n = len(clean)
    return TokenizedTask(
        name="hand",
        clean=np.asarray(clean, dtype=np.int64),
        corrupted=np.asarray(clean, dtype=np.int64),
        correct=np.zeros(n, dtype=np.int64),
        incorrect=np.zeros(n, dtype=np.int64),
        positions={k: np.asarray(v, dtype=np.int64) for k, v in positions.items()},
    )


def test_attends_on_hand_built_patterns():
    pat = torch.zeros(2, 1, 4, 4)
    pat[0, 0, 3, 1] = 0.25
    pat[1, 0, 2, 0] = 0.75
    out = attends_from_patterns([pat], np.array([3, 2]), np.array([1, 0]))
    assert out.tolist() == [[0.5]]


def test_attends_on_planted_model(bridge):
    # S2 stands right after S1 in prompt 0, two after in prompt 1
    task = _task(
        [[0, 1, 2, 3, 4, 13], [0, 1, 14, 2, 3, 13]],
        {"S1": [1, 1], "S2": [2, 3], "END": [5, 5]},
    )
    out = attends_scores(bridge, task, "S2", "S1")
    assert out.shape == (2, N_HEADS)
    assert out[0, 0] == pytest.approx(0.5, abs=1e-3)  # previous-token head: prompt 0 only
    assert out[0, 1] == pytest.approx(0.0, abs=1e-3)
    assert out[0, 2] == pytest.approx((1 / 3 + 1 / 4) / 2, abs=1e-5)  # uniform head
    with pytest.raises(InputError, match="no position 'S3'"):
        attends_scores(bridge, task, "S3", "S1")
    with pytest.raises(InputError, match="cannot attend forward"):
        attends_scores(bridge, task, "S1", "S2")


# ---- the scan and role claims ---------------------------------------------------------


@pytest.fixture(scope="module")
def task():
    return _task(
        [[0, 1, 2, 3, 4, 13], [0, 1, 14, 2, 3, 13]],
        {"S1": [1, 1], "S2": [2, 3], "END": [5, 5]},
    )


def test_scan_scores_every_head_on_every_role(bridge, tokenizer, task, tmp_path):
    from seqcirc.roles import plot_role_heatmaps, scan_roles

    table = scan_roles(
        bridge, tokenizer, set_name="months", task=task, attends=[("S2", "S1")], half_len=10
    )
    assert table.roles == (
        "successor", "successor_first", "copy", "copy_first",
        "previous_token", "duplicate", "induction", "attends(S2->S1)",
    )  # fmt: skip
    assert table.values.shape == (8, 2, N_HEADS)
    assert table.column("successor")[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert table.top("successor", 1) == [("1.0", 1.0)]
    assert table.top("copy", 1) == [("1.1", 1.0)]
    assert table.top("previous_token", 1)[0][0] == "0.0"
    assert table.top("attends(S2->S1)", 1)[0][0] == "0.0"
    rows = table.rows()
    assert len(rows) == 2 * N_HEADS and rows[4]["head"] == "1.0" and rows[4]["successor"] == 1.0
    text = table.to_text(sort_by="successor", limit=2)
    assert text.splitlines()[1].startswith("1.0")
    assert table.meta["set"] == "months" and table.meta["n_scored"] == 32
    png = plot_role_heatmaps(table, tmp_path / "roles.png", title="planted")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _claim(threshold=0.9, op=">=", **kw):
    from seqcirc.plan import Claim, params

    return Claim(
        id="c1", kind="role", op=op, threshold=threshold, params=params(**kw),
        path="h.circ", line=7, col=3, text="role ...",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "value", "passed"),
    [
        ({"head": "1.0", "role": "successor", "top": 5}, 1.0, True),
        ({"head": "1.1", "role": "successor", "top": 5}, 0.0, False),
        ({"head": "1.1", "role": "copy", "top": 1, "among": "set"}, 1.0, True),
        ({"head": "1.2", "role": "copy"}, 0.0, False),
        ({"head": "0.0", "role": "attends", "from": "S2", "to": "S1"}, 0.5, False),
        ({"head": "0.0", "role": "previous_token", "half_len": 10}, 1.0, True),
    ],
    ids=["successor-holds", "copy-head-is-no-successor", "copy-first", "neither", "attends",
         "previous"],
)  # fmt: skip
def test_role_claims_measured_with_verdict(bridge, tokenizer, task, kw, value, passed):
    from seqcirc.claims.evaluate import judge
    from seqcirc.claims.roles import measure_role_claim

    claim = _claim(**kw)
    res = measure_role_claim(claim, bridge, tokenizer, set_name="months", task=task)
    assert res.value == pytest.approx(value, abs=1e-3)
    common = judge(claim, res.claim_value())  # the one verdict, as evaluate_plan decides it
    assert (common.verdict == "pass") is passed
    assert res.head == kw["head"] and res.role == kw["role"]
    assert common.kind == "role" and common.line == 7 and common.threshold == 0.9


def test_role_claim_threshold_direction(bridge, tokenizer):
    from seqcirc.claims.evaluate import judge
    from seqcirc.claims.roles import measure_role_claim

    def holds(claim):  # type: ignore[no-untyped-def]
        res = measure_role_claim(claim, bridge, tokenizer, set_name="months")
        return judge(claim, res.claim_value()).verdict == "pass"

    kw = {"head": "1.2", "role": "successor"}
    assert holds(_claim(0.05, "<", **kw))
    assert not holds(_claim(0.0, ">", **kw))


@pytest.mark.parametrize(
    ("kw", "code", "text"),
    [
        ({"head": "1.0", "role": "sucessor"}, "E809", "did you mean successor"),
        ({"head": "5.0", "role": "successor"}, "E805", "layers 0..1"),
        ({"head": "1.0", "role": "successor", "form": "S1"}, "E809", "takes: among"),
        ({"head": "1.0", "role": "successor", "set": "monts"}, "E801", "did you mean 'months'"),
        ({"head": "0.0", "role": "attends", "from": "S9", "to": "S1"}, "E808", "positions: END"),
    ],
    ids=["typo-role", "no-such-head", "unknown-param", "unknown-set", "unknown-position"],
)
def test_bad_role_claims_point_at_the_claim(bridge, tokenizer, task, kw, code, text):
    from seqcirc.claims.roles import measure_role_claim

    with pytest.raises(InputError) as err:
        measure_role_claim(_claim(**kw), bridge, tokenizer, set_name="months", task=task)
    assert err.value.code == code
    assert text in (err.value.hint or "") + err.value.message
    assert err.value.span is not None and err.value.span.line == 7


def test_role_claim_head_spellings_and_common_result(bridge, tokenizer):
    from seqcirc.claims.evaluate import judge
    from seqcirc.claims.roles import measure_role_claim
    from seqcirc.plan import Node
    from seqcirc.results import ClaimResult

    groups = {"succ": (Node(1, 0),), "pair": (Node(1, 0), Node(1, 1))}
    for head in ("L1H0", "succ"):
        claim = _claim(head=head, role="successor")
        res = measure_role_claim(claim, bridge, tokenizer, set_name="months", groups=groups)
        assert res.head == "1.0" and res.value == 1.0
    common = judge(claim, res.claim_value())
    assert isinstance(common, ClaimResult)
    assert (common.verdict, common.compared, common.bound) == ("pass", 1.0, "point")
    assert common.detail["head"] == "1.0" and common.detail["per_member"]["March"] == 1.0
    with pytest.raises(InputError, match="group pair has 2 members"):
        measure_role_claim(
            _claim(head="pair", role="successor"), bridge, tokenizer, set_name="months",
            groups=groups,
        )  # fmt: skip


def test_paper_flag_scores_the_authors_member_range(bridge, tokenizer):
    """`paper`: months January..November (the authors' 8 prompts of 4 from January..
    August), the same as members=11 and not the task's default 12."""
    from seqcirc.claims.roles import measure_role_claim
    from seqcirc.language.vocab import PAPER_OV_MEMBERS

    assert PAPER_OV_MEMBERS == {"numerals": 100, "number_words": 11, "months": 11}
    kw = {"head": "1.0", "role": "successor", "set": "months"}
    paper = measure_role_claim(_claim(**kw, paper=True), bridge, tokenizer)
    eleven = measure_role_claim(_claim(**kw, members=11), bridge, tokenizer)
    default = measure_role_claim(_claim(**kw), bridge, tokenizer)
    assert paper.detail["per_member"] == eleven.detail["per_member"]
    assert list(paper.detail["per_member"])[-1] == "October"  # November's successor is scored
    assert paper.detail["n_scored"] < default.detail["n_scored"]
    with pytest.raises(InputError) as err:
        measure_role_claim(_claim(**{**kw, "set": "days"}, paper=True), bridge, tokenizer)
    assert err.value.code == "E809" and "numerals" in (err.value.hint or "")
