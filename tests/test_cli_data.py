"""The model-side filter and `seqcirc data export FILE.circ --task NAME`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from tasks_fixtures import word_level_tokenizer

from seqcirc.errors import InputError
from seqcirc.plan import AblationSpec, CircuitPlan, ModelRef, Node, Plan, TaskSpec, params
from seqcirc.tasks import build_task, export_lines
from seqcirc.tasks.filtering import filter_from_logits, model_filter
from seqcirc.tasks.sets import ORDERED_SETS
from seqcirc.usecases.data_export import select_task
from tests.cli_in_process import seqcirc


def test_filter_from_logits_hand_worked():
    # Row 0: p = (0.5, 0.2, 0.3) over (correct=0, incorrect=1, other): kept.
    # Row 1: p = (0.4, 0.25, 0.35): top-1 right but 0.4 <= 2 * 0.25: dropped.
    # Row 2: p = (0.3, 0.1, 0.6): ratio fine but top-1 is token 2: dropped.
    logits = np.log([[0.5, 0.2, 0.3], [0.4, 0.25, 0.35], [0.3, 0.1, 0.6]]) + 7.0
    report = filter_from_logits(logits, [0, 0, 0], [1, 1, 1])
    assert report.kept.tolist() == [0]
    assert (report.n_not_top1, report.n_low_ratio) == (1, 1)


class FakeBridge(torch.nn.Module):
    """Logits that make prompt i's correct token win by margin[i] nats over the
    incorrect one (both far above every other token)."""

    def __init__(self, task, margin):
        super().__init__()
        self.rows = {tuple(r): i for i, r in enumerate(task.clean.tolist())}
        self.task, self.margin = task, margin
        self.vocab = int(max(task.clean.max(), task.correct.max(), task.incorrect.max())) + 1
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, tokens):
        out = torch.zeros(*tokens.shape, self.vocab)
        for b, row in enumerate(tokens.tolist()):
            i = self.rows[tuple(row)]
            out[b, :, int(self.task.correct[i])] = 20.0 + self.margin[i]
            out[b, :, int(self.task.incorrect[i])] = 20.0
        return out


def test_model_filter_keeps_confident_prompts_and_aligned_meta():
    task = build_task(
        TaskSpec("t", "months", params(prompts=6)), word_level_tokenizer(), prepend_bos=True
    )
    # p(c)/p(i) = exp(margin): > 2 iff margin > ln 2 ~ 0.693; negative = not top-1.
    margin = [1.0, 0.5, -1.0, 0.7, 3.0, 0.69]
    kept, report = model_filter(task, FakeBridge(task, margin), batch_rows=4)
    assert report.kept.tolist() == [0, 3, 4]
    assert (report.n_not_top1, report.n_low_ratio) == (1, 2)
    assert kept.meta["filter"] == report.as_dict()
    assert kept.clean_text == tuple(task.clean_text[i] for i in (0, 3, 4))
    rows = [json.loads(line) for line in export_lines(kept)[1:]]  # no tokenizer needed
    assert [r["correct"] for r in rows] == [task.meta["correct_text"][i] for i in (0, 3, 4)]
    assert math.log(2) < 0.7


def _plan(*pairs):
    circuits = tuple(
        CircuitPlan(f"c{i}", ModelRef(m, "local"), TaskSpec(t, "months"), AblationSpec(),
                    (Node(0, 0),))
        for i, (t, m) in enumerate(pairs)
    )  # fmt: skip
    return Plan(source="h.circ", circuits=circuits)


def test_select_task():
    spec, ref = select_task(_plan(("a", "m1"), ("b", "m1"), ("b", "m2")), "a", None)
    assert (spec.name, ref.name) == ("a", "m1")
    assert select_task(_plan(("a", "m1")), None, None)[1].name == "m1"
    cases = [
        ((("a", "m1"), ("b", "m1")), None, None, "T402", "--task"),
        ((("months", "m1"),), "month", None, "T403", "did you mean months?"),
        ((("b", "m1"), ("b", "m2")), "b", None, "T404", "--model"),
        ((("b", "m1"),), "b", "m3", "T405", "m1"),
    ]
    for pairs, task, model, code, needle in cases:
        with pytest.raises(InputError) as err:
            select_task(_plan(*pairs), task, model)
        assert err.value.code == code and needle in err.value.render()


CIRC = """seed 3

task t = sequence(months, template=born_in, members=4, prompts=6)
  corrupt shuffled_members
  metric logit_diff(correct=next, incorrect=last)

circuit c on "tiny" {
  heads 0.1, 1.0
  mlp 0
  expect faithfulness >= 0.5
}
"""


@pytest.fixture(scope="module")
def circ_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("export")
    tok = word_level_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tok), n_positions=32, n_embd=16, n_layer=2, n_head=2)
    GPT2LMHeadModel(config).save_pretrained(folder / "tiny", safe_serialization=True)
    tok.save_pretrained(folder / "tiny")
    (folder / "h.circ").write_text(CIRC, encoding="utf-8")
    return folder


def test_data_export_command(circ_dir):
    out = circ_dir / "t.jsonl"
    cmd = ["data", "export", "h.circ"]
    proc = seqcirc(*cmd, "--task", "t", "-o", str(out), cwd=circ_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote 6 prompts of task t (tokenized for tiny) to {out}" in proc.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    head, rows = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    assert head["task"] == "t" and head["meta"]["seed"] == 3  # the file's seed
    assert head["meta"]["params"]["corruption"] == "shuffled_members"
    assert head["meta"]["model"]["prepend_bos"] is True
    # The same prompts as building the task directly with the file's seed.
    spec = TaskSpec("t", "months", params(template="born_in", members=4, prompts=6),
                    corruption="shuffled_members")  # fmt: skip
    direct = build_task(spec, word_level_tokenizer(), prepend_bos=True, seed=3)
    assert [r["clean_ids"] for r in rows] == direct.clean.tolist()
    assert [r["corrupted"] for r in rows] == list(direct.corrupted_text)

    bad = seqcirc(*cmd, "--task", "tt", cwd=circ_dir)
    assert bad.returncode == 2
    assert "error[T403]" in bad.stderr and "did you mean t?" in bad.stderr


HYPOTHESES = sorted((Path(__file__).parent.parent / "hypotheses").glob("*.circ"))


@pytest.mark.parametrize("circ", HYPOTHESES, ids=lambda p: p.name)
def test_every_shipped_hypothesis_task_generates(circ):
    """The language's task parameters are ones the generators accept (paper defaults)."""
    from seqcirc.plan.compile import compile_file
    from seqcirc.tasks import prompt_records

    plan = compile_file(circ)
    for c in plan.circuits:
        records, meta = prompt_records(c.task, base_dir=circ.parent, seed=plan.seed)
        if c.task.file is not None:  # the authors' prompts (gpt2-small): 512 per template
            templates = [r.template for r in records]
            assert meta["n_prompts"] == len(records) == 1536
            assert {t: templates.count(t) for t in set(templates)} == dict.fromkeys(
                ("born_in", "done_in", "lost_in"), 512
            )
            continue
        assert len(records) == meta["params"]["prompts"]  # type: ignore[index]
        third = meta["params"]["prompts"] // 3  # type: ignore[index]
        assert meta["template_counts"] == {"born_in": third, "done_in": third, "lost_in": third}


def test_bundled_tokenizer_accepts_every_built_in_task():
    from seqcirc.models.shapes import BUNDLED_DIR

    if not (BUNDLED_DIR / "tokenizer.json").exists():
        pytest.skip("the bundled model is not built yet")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(BUNDLED_DIR))
    for name in ORDERED_SETS:
        for corruption in ("random_members", "random_tokens"):
            spec = TaskSpec("t", name, params(prompts=90), corruption=corruption)
            task = build_task(spec, tok, prepend_bos=True)
            assert task.seq_len == 24


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_data_export_to_a_full_device_or_a_directory_is_e901(circ_dir):
    cmd = ["data", "export", "h.circ", "--task", "t", "-o"]
    full = seqcirc(*cmd, "/dev/full", cwd=circ_dir)
    assert full.returncode == 2
    assert "error[E901]: cannot write the exported prompts to /dev/full: No space left" in (
        full.stderr
    )
    assert "Traceback" not in full.stderr and "internal failure" not in full.stderr
    folder = seqcirc(*cmd, ".", cwd=circ_dir)
    assert folder.returncode == 2
    assert "cannot write the exported prompts to .: it is a directory" in folder.stderr
