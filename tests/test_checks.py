"""Semantic checks and compilation: shapes, names, imports, edges, claims, the plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqcirc.checks import check_text
from seqcirc.checks.edges import depth
from seqcirc.errors import DiagnosticsError
from seqcirc.plan import Edge, Node, plan_to_json
from seqcirc.plan.compile import compile_text

TASK = "task months = sequence(months)\n"


def _codes(text: str, path: str = "t.circ") -> list[str]:
    with pytest.raises(DiagnosticsError) as info:
        check_text(text, path)
    return [d.code for d in info.value.diagnostics]


def _circuit(body: str, model: str = "gpt2-small", extra: str = "") -> str:
    return f"{TASK}{extra}circuit months on {model} {{\n{body}\n}}\n"


def test_all_problems_are_reported_together_in_source_order() -> None:
    text = _circuit(
        "heads 12.0, 0.12, nope\n  role 9.1 sucessor >= 0.5\n  expect faithfulness >= 80"
    )
    assert _codes(text) == ["E221", "E220", "E200", "E204", "E250"]


def test_did_you_mean_uses_the_names_in_scope() -> None:
    with pytest.raises(DiagnosticsError) as info:
        check_text(_circuit("group successor = 9.1\n  heads sucessor"))
    (diag,) = info.value.diagnostics
    assert diag.hint == "did you mean `successor`?"


@pytest.mark.parametrize(
    ("model", "ok", "bad"),
    [("gpt2-small", "11.11", "12.0"), ("gpt2-medium", "23.15", "23.16"),
     ("pythia-70m", "5.7", "6.0"), ("llama-2-7b", "31.31", "31.32")],
)  # fmt: skip
def test_ranges_follow_the_models_shape(model: str, ok: str, bad: str) -> None:
    check_text(_circuit(f"heads {ok}", model))
    assert len(_codes(_circuit(f"heads {bad}", model))) == 1


def test_local_folder_model_uses_its_config(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"n_layer": 2, "n_head": 4, "n_embd": 16}))
    path = str(tmp_path / "h.circ")
    plan = compile_text(_circuit("heads 1.3\n  mlp 0..1", '"tiny"'), path)
    assert plan.circuits[0].model.source == "local"
    assert _codes(_circuit("heads 2.0", '"tiny"'), path) == ["E221"]
    assert _codes(_circuit("heads 1.1", '"missing"'), path) == ["E202"]


def test_an_org_hub_id_without_a_known_shape_is_a_warning() -> None:
    module = check_text(_circuit("heads 40.40", "someorg/some-model"))
    assert [w.code for w in module.warnings] == ["W300"]
    assert module.warnings[0].severity == "warning"
    assert _codes(_circuit("heads 1000.0", "someorg/some-model")) == ["E221", "W300"]


def test_depth_orders_the_forward_pass() -> None:
    gpt2 = "GPT2LMHeadModel"
    order = ["embed", "0.3", "mlp0", "1.0", "mlp1", "logits"]
    assert [depth(e, gpt2) for e in order] == sorted(depth(e, gpt2) for e in order)
    assert depth("5.1", gpt2) < depth("mlp5", gpt2)
    for parallel in ("GPTNeoXForCausalLM", "GPTJForCausalLM", "PhiForCausalLM"):
        # attention and MLP of one layer run in parallel
        assert depth("5.1", parallel) == depth("mlp5", parallel) < depth("6.0", parallel)
    assert depth("5.1", "Phi3ForCausalLM") < depth("mlp5", "Phi3ForCausalLM")


def test_edges_expand_groups_and_inputs_and_check_direction() -> None:
    plan = compile_text(_circuit("group d = 1.5, 4.4\n  heads 9.1\n  edge d -> 9.1 (q)"))
    assert plan.circuits[0].highlighted_edges == (Edge("1.5", "9.1", "q"), Edge("4.4", "9.1", "q"))
    assert plan.circuits[0].edges == ()  # a node circuit ablates nodes
    assert _codes(_circuit("heads 4.4\n  edge 4.4 -> 4.5")) == ["E230"]
    assert _codes(_circuit("heads 4.4\n  edge mlp 4 -> 4.5")) == ["E230"]
    check_text(_circuit("heads 4.4\n  edge 4.4 -> mlp 4"))  # GPT-2: MLP L reads heads of L
    assert _codes(_circuit("heads 4.4\n  edge 4.4 -> mlp 4", "pythia-70m")) == ["E230"]
    assert _codes(_circuit("heads 4.4\n  edge logits -> 4.4")) == ["E230"]
    assert _codes(_circuit("heads 4.4\n  edge 4.4 -> 5.5 (x)")) == ["E231"]


def test_edge_circuits_keep_the_nodes_their_edges_touch() -> None:
    plan = compile_text(
        _circuit("ablate edges zero\n  edge embed -> 2.2 (v)\n  edge 2.2 -> logits")
    )
    (c,) = plan.circuits
    assert c.ablation.granularity == "edge" and c.ablation.value == "zero"
    assert c.nodes == (Node(2, 2),)
    assert c.edges == (Edge("embed", "2.2", "v"), Edge("2.2", "logits", "resid"))


def test_nodes_sort_in_computation_order() -> None:
    plan = compile_text(_circuit("heads 10.0, 2.11, 2.3\n  mlp 2, 0"))
    assert [str(n) for n in plan.circuits[0].nodes] == ["mlp0", "2.3", "2.11", "mlp2", "10.0"]


def test_claim_bounds_kinds_and_params() -> None:
    plan = compile_text(
        _circuit(
            "heads 9.1\n"
            "  expect faithfulness >= 0.8\n"
            "  expect completeness <= 0.1\n"
            "  expect faithfulness(bound=point, variant=normalized) >= 80%\n"
            "  expect minimality(n=50) at p < 0.05\n"
            "  expect beats random(n=20, layer_matched) at p < 0.01\n"
            "  role L9H1 successor >= 0.5"
        )
    )
    claims = plan.circuits[0].claims
    assert [(c.kind, c.bound, c.op, c.threshold) for c in claims] == [
        ("faithfulness", "lower", ">=", 0.8),
        ("completeness", "point", "<=", 0.1),
        ("normalized_faithfulness", "point", ">=", 0.8),
        ("minimality_test", "point", "<", 0.05),
        ("random_baseline", "point", "<", 0.01),
        ("role", "point", ">=", 0.5),
    ]
    assert claims[0].params_dict() == {"variant": "ratio"}
    assert claims[2].params_dict() == {"variant": "normalized"}
    assert claims[4].params_dict() == {"n": 20, "layer_matched": True}
    assert claims[5].params_dict() == {"head": "9.1", "role": "successor", "top": 5}
    assert claims[5].id == "months:9:role" and claims[5].text == "role L9H1 successor >= 0.5"


def test_positions_follow_the_number_of_members() -> None:
    extra = "task six = sequence(months, members=6)\n"
    body = " task six\n heads 4.4\n role 4.4 attends(from=S6, to=N7) >= 0.1\n"
    text = f"{TASK}{extra}circuit c on gpt2-small {{\n{body}}}\n"
    check_text(text)
    assert _codes(text.replace("S6", "S7")) == ["E208"]
    assert _codes(_circuit("heads 4.4\n  ablate at S4, END, Q1")) == ["E208"]


def test_role_parameters_are_those_the_role_code_reads() -> None:
    body = (
        "heads 9.1\n  role 9.1 successor(top=3, among=set, set=numerals, context=alone, "
        "members=12) >= 0.5\n  role 9.1 attends(from=S2, to=S1, which=corrupted) >= 0.1\n"
        "  role 9.1 induction(n_seqs=4, half_len=10) >= 0.2"
    )
    claims = compile_text(_circuit(body)).circuits[0].claims
    assert claims[0].params_dict() == {
        "head": "9.1", "role": "successor", "top": 3, "among": "set", "set": "numerals",
        "context": "alone", "members": 12,
    }  # fmt: skip
    assert claims[2].params_dict() == {"head": "9.1", "role": "induction", "n_seqs": 4,
                                       "half_len": 10}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code"),
    [("copy(among=all)", "E251"), ("copy(context=nope)", "E251"), ("copy(set=monts)", "E205"),
     ("copy(members=1)", "E251"), ("attends(from=S2, to=S1, which=dirty)", "E251"),
     ("duplicate(half_len=1)", "E251"), ("previous_token(n_seqs=x)", "E251"),
     ("induction(top=5)", "E207"), ("successor(paper, members=12)", "E251"),
     ("successor(set=days, paper)", "E251")],
)  # fmt: skip
def test_role_parameter_values_are_checked(args: str, code: str) -> None:
    assert _codes(_circuit(f"heads 9.1\n  role 9.1 {args} >= 0.5")) == [code]


def test_task_spec_defaults_and_values() -> None:
    plan = compile_text(
        'task t = sequence(letters, template="{N} got {S}.", members=3, interval=2, range=26)\n'
        "  corrupt random_tokens\n  metric accuracy\n  filter correct\n"
        "circuit c on gpt2-small { heads 1.1 }\n"
    )
    spec = plan.circuits[0].task
    assert spec.generator == "letters" and spec.corruption == "random_tokens"
    assert spec.metric == "accuracy" and spec.filter_correct is True
    assert dict(spec.params) == {
        "template": "{N} got {S}.", "members": 3, "interval": 2, "range": 26, "prompts": 1536,
    }  # fmt: skip


@pytest.mark.parametrize(
    "args",
    ["members=1", "range=13", "start=9", "interval=0", "template=sung_in",
     'template="{N} only"', "prompts=0", "members=x", "fillers=objects", "step=10"],
)  # fmt: skip
def test_task_parameter_values_are_checked(args: str) -> None:
    assert _codes(
        f"task months = sequence(months, {args})\ncircuit months on gpt2 {{ heads 1.1 }}"
    ) == ["E251"]


@pytest.mark.parametrize("args", ["step=0", "step=10001", "step=x"])
def test_numeral_steps_are_checked(args: str) -> None:
    assert _codes(f"task t = sequence(numerals, {args})\ncircuit t on gpt2 {{ heads 1.1 }}") == [
        "E251"
    ]
    check_text("task t = sequence(numerals, step=100)\ncircuit t on gpt2 { heads 1.1 }")


def test_imports_bring_groups_tasks_and_circuits_but_not_transitively(tmp_path: Path) -> None:
    (tmp_path / "c.circ").write_text("group deep = 1.1\n")
    (tmp_path / "b.circ").write_text(
        'import "c.circ"\ngroup detect = 4.4\ntask t = file("p.jsonl")\n'
        "circuit bc on gpt2-small { use deep\n heads 2.2 }\n"
    )
    (tmp_path / "p.jsonl").write_text("{}\n")
    (tmp_path / "sub").mkdir()
    main = str(tmp_path / "sub" / "a.circ")
    text = 'import "../b.circ"\ncircuit a on gpt2-small { task t\n use detect\n}\n'
    plan = compile_text(text, main)
    (a,) = plan.circuits  # circuits of imported files are planned where they are written
    assert a.groups == (("detect", (Node(4, 4),)),)
    assert a.task.file == "../p.jsonl"  # relative to the compiled file's folder
    assert _codes(text.replace("use detect", "use deep"), main) == ["E200"]  # not transitive
    # ... but a group of b.circ built from c.circ's group works where b.circ is imported
    (tmp_path / "b.circ").write_text(
        (tmp_path / "b.circ").read_text().replace("group detect = 4.4", "group detect = 4.4, deep")
    )
    plan = compile_text(text, main)
    assert plan.circuits[0].groups == (("detect", (Node(1, 1), Node(4, 4))),)
    assert _codes(text + "task t = sequence(months)\n", main) == ["E210"]
    derived = text + "circuit both on gpt2-small = a | bc\nexpect both on t: faithfulness >= 0.5\n"
    both = compile_text(derived, main).circuits[1]
    assert both.nodes == (Node(1, 1), Node(2, 2), Node(4, 4))


def test_plan_is_frozen_hashable_and_json() -> None:
    plan = compile_text(_circuit("group g = 1.1\n  mlp 0..2\n  expect faithfulness >= 0.5"))
    hash(plan)
    data = json.loads(plan_to_json(plan))
    assert data["circuits"][0]["nodes"] == ["mlp0", "1.1", "mlp1", "mlp2"]
    with pytest.raises(AttributeError):
        plan.seed = 3  # type: ignore[misc]


def test_several_model_sections_of_one_task() -> None:
    text = _circuit("heads 9.1") + "circuit months on pythia-70m { heads 5.1 }\n"
    plan = compile_text(text)
    assert [(c.name, c.model.name) for c in plan.circuits] == [
        ("months", "gpt2-small"), ("months", "pythia-70m"),
    ]  # fmt: skip
    assert _codes(text + "circuit months on gpt2-small { heads 1.1 }\n") == ["E210"]


def test_group_cycles_are_reported_not_recursed() -> None:
    assert _codes("group a = a\n") == ["E200"]
    assert "E200" in _codes("group a = b\ngroup b = a, 1.1\n")
    plan = compile_text(_circuit("use b", extra="group a = 1.1\ngroup b = a, a, 2.2\n"))
    assert plan.circuits[0].groups == (("b", (Node(1, 1), Node(2, 2))),)


def test_a_broken_circuit_is_reported_once_not_at_every_use() -> None:
    text = _circuit("heads 1.1", "gpt2-smal") + "circuit d = months & months\n"
    text += "expect d on months: faithfulness >= 0.5\n"
    assert _codes(text) == ["E202"]
