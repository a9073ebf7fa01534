"""GPT-2's real tokenizer (tests/data/gpt2-tokenizer, no weights, no hub): every task the
hypotheses state on gpt2-small tokenizes as the checks require, and tasks GPT-2 cannot
tokenize fail with the right code before any model would run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from seqcirc.errors import DiagnosticsError
from seqcirc.plan import TaskSpec, params
from seqcirc.plan.compile import compile_file
from seqcirc.tasks import build_task

ROOT = Path(__file__).resolve().parent.parent
GPT2_TOKENIZER = ROOT / "tests" / "data" / "gpt2-tokenizer"
HYPOTHESES = sorted((ROOT / "hypotheses").glob("*.circ"))


@pytest.fixture(scope="module")
def gpt2() -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(GPT2_TOKENIZER))


def test_it_is_gpt2s_tokenizer(gpt2: Any) -> None:
    # the README's checks: 50,257 tokens, BOS <|endoftext|>, known ids
    assert len(gpt2) == 50257 and gpt2.bos_token_id == 50256
    assert gpt2.tokenize(" September") == ["ĠSeptember"]
    assert gpt2(" Van done in January.")["input_ids"] == [6656, 1760, 287, 3269, 13]


def _gpt2_tasks() -> list[tuple[Path, TaskSpec]]:
    """Every task a gpt2-small circuit or `expect ... on` pair of hypotheses/ uses."""
    found: dict[tuple[Path, TaskSpec], None] = {}
    for path in HYPOTHESES:
        for circuit in compile_file(path).circuits:
            if circuit.model.name == "gpt2-small":
                found[(path, circuit.task)] = None
    return list(found)


def test_the_hypotheses_state_gpt2_small_tasks() -> None:
    names = {spec.name for _path, spec in _gpt2_tasks()}
    assert {"numerals", "number_words", "months"} <= names


@pytest.mark.parametrize(("path", "spec"), _gpt2_tasks(), ids=lambda x: getattr(x, "name", ""))
def test_every_gpt2_small_task_tokenizes(gpt2: Any, path: Path, spec: TaskSpec) -> None:
    """One-token members, names and answers; one length for all prompts (else T3xx)."""
    task = build_task(spec, gpt2, prepend_bos=True, base_dir=path.parent)  # GPT-2's loader
    n_bos = int(task.meta["bos"] == "on")
    assert task.clean.shape == task.corrupted.shape
    assert (task.answer_pos == task.seq_len - 1).all()
    assert (task.clean[:, 0] == gpt2.bos_token_id).all() == bool(n_bos)
    # every answer token decodes to the answer text written for it
    corr = task.meta["correct_text"]
    assert [gpt2.decode([int(t)]) for t in task.correct[:20]] == list(corr[:20])  # type: ignore[index]


def test_spanish_months_on_gpt2_fail_with_t310(gpt2: Any) -> None:
    """Spanish month names are several GPT-2 tokens (" enero" 2, " septiembre" 4): the
    task stops at tokenization with T310 (answers, under a one-token metric) and T312
    (shown members)."""
    spec = TaskSpec(
        "spanish",
        generator="spanish_months",
        params=params(prompts=48, seed=0, start=8),
        metric="prob",
    )
    with pytest.raises(DiagnosticsError) as err:
        build_task(spec, gpt2, prepend_bos=True)
    codes = {d.code for d in err.value.diagnostics}
    assert {"T310", "T312"} <= codes
    text = "\n".join(d.message for d in err.value.diagnostics)
    assert "answer ' abril' is 2 tokens: 'Ġab' + 'ril'" in text
    from seqcirc.tasks.sets import ORDERED_SETS

    assert any(f"'{m}' is not one token" in text for m in ORDERED_SETS["spanish_months"])


@pytest.mark.parametrize("generator", ["numerals", "number_words", "months"])
def test_the_authors_fillers_tokenize_on_gpt2_with_and_without_bos(
    gpt2: Any, generator: str
) -> None:
    """fillers=paper: the authors' nouns (done/lost) and first names (born) are one GPT-2
    token where they stand, at the start too, so a generated task runs on GPT-2 without
    BOS as the authors ran theirs (seqcirc's own names include "Emma", 2 tokens there)."""
    from seqcirc.tasks.sets import PAPER_NAMES, PAPER_OBJECTS

    for word in PAPER_NAMES + PAPER_OBJECTS:  # independent of the generator's code
        assert len(gpt2.tokenize(word)) == len(gpt2.tokenize(" " + word)) == 1, word
    spec = TaskSpec(
        generator, generator=generator, params=params(prompts=300, seed=1, fillers="paper")
    )
    for bos in ("on", "off"):
        task = build_task(TaskSpec(**{**spec.__dict__, "bos": bos}), gpt2, prepend_bos=True)
        assert task.clean.shape == (300, 23 + (bos == "on"))
    templates = task.meta["templates"]
    words = [gpt2.decode([int(t)]).strip() for t in task.clean[:, 0]]  # N1, without BOS
    for template, word in zip(templates, words, strict=True):  # type: ignore[call-overload]
        assert word in (PAPER_NAMES if template == "born_in" else PAPER_OBJECTS)
    # seqcirc's default names do not: "Emma" at the start is 2 GPT-2 tokens
    assert len(gpt2.tokenize("Emma")) == 2


@pytest.mark.parametrize(("step", "members", "range_", "longest"),
                         [(10, 4, 59, ["Ġ5", "90"]), (100, 3, 22, ["Ġ2", "200"])])  # fmt: skip
def test_intervaled_numerals_have_several_token_answers_on_gpt2(
    gpt2: Any, step: int, members: int, range_: int, longest: list[str]
) -> None:
    """hypotheses/intervals.circ's remark: numerals stepping by 10 up to " 590" (by 100 up
    to " 2200") keep every shown member one GPT-2 token, but the last answer is two; the
    metrics that read every answer token take them, a one-token metric stops (T310)."""
    spec = TaskSpec(
        "tens", generator="numerals", corruption="shuffled_members",
        params=params(prompts=300, seed=0, step=step, members=members, range=range_,
                      fillers="paper"),
    )  # fmt: skip
    task = build_task(spec, gpt2, prepend_bos=True)
    ids, lengths = task.answer_ids("correct")
    assert task.multi_token and set(lengths.tolist()) == {1, 2}
    two = [i for i in range(task.n_prompts) if lengths[i] == 2]
    assert {tuple(gpt2.convert_ids_to_tokens(ids[i, :2].tolist())) for i in two} == {tuple(longest)}
    assert [task.meta["correct_text"][i] for i in two] == [  # type: ignore[index]
        " " + str(step * range_)
    ] * len(two)
    with pytest.raises(DiagnosticsError) as err:
        build_task(replace(spec, metric="prob"), gpt2, prepend_bos=True)
    assert {d.code for d in err.value.diagnostics} == {"T310"}


def test_the_arithmetic_and_word_problem_examples_tokenize_for_generation(gpt2: Any) -> None:
    """docs/examples/arithmetic.circ: the shipped example prompt files build on GPT-2's
    tokenizer as generating tasks (twins of one length, S1 named in the word problems)."""
    path = ROOT / "docs" / "examples" / "arithmetic.circ"
    specs = {c.task.name: c.task for c in compile_file(path).circuits}
    assert set(specs) == {"arithmetic", "months_pass"}
    for name, spec in specs.items():
        task = build_task(spec, gpt2, prepend_bos=True, base_dir=path.parent)
        assert task.n_prompts == 16 and task.decode is not None
        assert task.meta["generation"]["max_new_tokens"] == (2 if name == "arithmetic" else 1)
        for i, answer in enumerate(task.meta["correct_text"]):  # its first token
            assert str(answer).startswith(gpt2.decode([int(task.correct[i])]))
    from seqcirc.tasks.sets import ORDERED_SETS

    months = build_task(specs["months_pass"], gpt2, prepend_bos=True, base_dir=path.parent)
    s1 = gpt2.convert_ids_to_tokens([int(months.clean[i, p]) for i, p in
                                     enumerate(months.positions["S1"])])  # fmt: skip
    assert all(t.startswith("Ġ") and t[1:] in ORDERED_SETS["months"] for t in s1)
