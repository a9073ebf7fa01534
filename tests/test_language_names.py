"""Component names (issue 18): every spelling the field uses (seqcirc's 9.1 and mlp9,
L9H1, EAP-IG/MIB's a9.h1 and m9, TransformerLens hook names with a head index) names
the same component wherever a head or MLP stands, and every name seqcirc prints (plan,
results, reports, hints) is one the language accepts back."""

from __future__ import annotations

import json
import re

import pytest
from report_fixtures import full_result

from seqcirc.errors import SeqcircError
from seqcirc.language.fmt import format_text
from seqcirc.language.names import mib_name, parse_component
from seqcirc.models.shapes import KNOWN_SHAPES
from seqcirc.plan import Edge, Node, plan_to_json
from seqcirc.plan.compile import compile_text

TASK = "task t = sequence(months)\n"
SPELLINGS = {
    Node(9, 1): [
        "9.1",
        "L9H1",
        "a9.h1",
        "blocks.9.attn.hook_z[1]",
        "blocks.9.attn.hook_z[:, :, 1]",
        "blocks.9.attn.hook_result[1]",
    ],
    Node(6, 10): ["6.10", "L6H10", "a6.h10", "blocks.6.attn.hook_z[10]"],
    Node(0): ["mlp0", "m0", "blocks.0.hook_mlp_out", "mlp 0"],
    Node(11): ["mlp11", "m11", "blocks.11.hook_mlp_out"],
}


def _circuit(body: str) -> object:
    return compile_text(f"{TASK}circuit t on gpt2-small {{\n{body}\n}}\n", "<t>").circuits[0]


@pytest.mark.parametrize("node", list(SPELLINGS))
def test_every_spelling_names_the_same_component(node: Node) -> None:
    for text in SPELLINGS[node]:
        if text != "mlp 0":
            assert parse_component(text) == (node.layer, node.head), text
            assert Node.parse(text) == node
        c = _circuit(f"  heads {text}")
        assert c.nodes == (node,), text  # type: ignore[attr-defined]
        edge = _circuit(f"  ablate edges\n  edge {text} -> logits")
        assert edge.edges == (Edge(str(node), "logits", "resid"),), text  # type: ignore[attr-defined]


def test_spellings_as_edge_receivers_inputs_and_roles() -> None:
    c = _circuit(
        "  ablate edges\n"
        "  edge a4.h4 -> blocks.9.attn.hook_z[1] (q, k)\n"
        "  edge m0 -> L9H1 (v)\n"
        "  edge embed -> blocks.3.hook_mlp_out\n"
        "  role a9.h1 successor >= 0.2"
    )
    assert set(c.edges) == {  # type: ignore[attr-defined]
        Edge("4.4", "9.1", "q"),
        Edge("4.4", "9.1", "k"),
        Edge("mlp0", "9.1", "v"),
        Edge("embed", "mlp3", "mlp"),
    }
    role = c.claims[0]  # type: ignore[attr-defined]
    assert dict(role.params)["head"] == "9.1"


def test_every_component_of_a_model_prints_a_name_that_parses_back() -> None:
    """str(Node) for all 156 nodes of GPT-2 small, written into a .circ file as printed,
    compiles to the same nodes; so do the EAP-IG names."""
    shape = KNOWN_SHAPES["gpt2"]
    nodes = [Node(layer, h) for layer in range(shape.n_layers) for h in range(shape.n_heads)]
    nodes += [Node(layer) for layer in range(shape.n_layers)]
    for printer in (str, lambda n: mib_name(n.layer, n.head)):
        names = ", ".join(printer(n) for n in nodes)
        assert set(_circuit(f"  heads {names}").nodes) == set(nodes)  # type: ignore[attr-defined]
        for n in nodes:
            assert Node.parse(printer(n)) == n


_NAME = re.compile(r"^(\d+\.\d+|mlp\d+)$")


def _names_in(value: object, out: set[str]) -> set[str]:
    """Every string (and key) in a JSON value that is a component name."""
    if isinstance(value, dict):
        for k, v in value.items():
            _names_in(k, out)
            _names_in(v, out)
    elif isinstance(value, list):
        for v in value:
            _names_in(v, out)
    elif isinstance(value, str):
        for part in re.split(r"->|\[|\]|,\s*", value):
            if _NAME.match(part):
                out.add(part)
    return out


def test_plan_results_and_reports_print_names_the_language_reads_back() -> None:
    """The plan JSON (nodes, groups, edges), the results JSON (nodes, edges, groups,
    per-node details, knocked-out sets): each component name in them, written into a
    `heads` line, compiles to the node it names; the Markdown report prints the same."""
    from seqcirc.report.markdown import markdown

    plan = compile_text(
        f"{TASK}circuit t on gpt2-small {{\n  group g = a4.h4, m2\n  heads L9H1\n  mlp 0..1\n"
        "  edge a4.h4 -> blocks.9.attn.hook_z[1] (q)\n  edge m2 -> logits\n}\n",
        "<t>",
    )
    printed = _names_in(json.loads(plan_to_json(plan)), set())
    assert printed == {"4.4", "9.1", "mlp0", "mlp1", "mlp2"}
    result = full_result()
    printed |= _names_in(json.loads(result.to_json()), set())
    assert {"0.1", "1.0", "mlp0"} <= printed
    report = markdown(result)  # components in the results' spelling, no other
    assert "role 1.0 successor" in report and "1.3 changes nothing" in report
    assert not re.search(r"\b(a\d+\.h\d+|L\d+H\d+|m\d+|mlp \d+)\b", report)
    for name in sorted(printed):
        c = _circuit(f"  heads {name}")
        assert [str(n) for n in c.nodes] == [name]  # type: ignore[attr-defined]


def test_fmt_writes_the_canonical_spelling() -> None:
    text = (
        f"{TASK}circuit t on gpt2-small {{\n  heads a9.h1, blocks.7.attn.hook_z[:, :, 11], m0\n}}\n"
    )
    assert "  heads 9.1, 7.11, mlp 0\n" in format_text(text)


def _error(body: str, head: str = TASK) -> SeqcircError:
    with pytest.raises(SeqcircError) as info:
        compile_text(f"{head}circuit t on gpt2-small {{\n{body}\n}}\n", "<t>")
    return info.value


def test_a_group_may_not_take_a_component_name() -> None:
    err = _error("  heads 1.1", head=f"{TASK}group m0 = 1.5\n")
    assert [d.code for d in err.diagnostics] == ["E211"]
    assert "group name `m0` spells a component (mlp0)" in err.render()
    err = _error("  group L9H1 = 9.1")
    assert [d.code for d in err.diagnostics] == ["E211"]


def test_a_role_on_an_mlp_and_a_hook_without_a_head_say_what_is_wrong() -> None:
    err = _error("  heads 1.1\n  role m3 successor >= 0.2")
    assert "`mlp3` is not a head" in err.render()
    assert "a9.h1 or blocks.9.attn.hook_z[1]" in err.render()
    err = _error("  heads blocks.9.attn.hook_z")
    assert err.code == "E100"
    assert "`blocks.9.attn.hook_z` is not a component: a head is blocks.L.attn.hook_z[H]" in (
        err.render()
    )
    err = _error("  heads blocks.12.attn.hook_z[0]")
    assert err.diagnostics[0].code == "E221"


def test_unknown_names_hint_every_spelling() -> None:
    err = _error("  heads mlpx")
    assert "MLPs mlp9, `mlp 9`, m9 or blocks.9.hook_mlp_out" in err.render()
