"""`seqcirc export`, `seqcirc import`, `seqcirc draw`: circuits to and from the EAP-IG/MIB
graph JSON, and the circuit diagram (seqcirc.usecases.interop, .import_graph)."""

from __future__ import annotations

import sys

import typer

from seqcirc.cli import options


def export(
    file: str = typer.Argument(..., help="a .circ file", metavar="FILE"),
    fmt: str = typer.Option(
        "mib", "--format", metavar="mib", help="mib: the EAP-IG/MIB graph JSON"
    ),
    output: str | None = options.output("the graph JSON"),
    circuit: str | None = typer.Option(
        None, "--circuit", metavar="NAME", help="the circuit section to export"
    ),
    model: str | None = typer.Option(
        None, "--model", metavar="MODEL", help="its model, if the name has several"
    ),
    scores: str | None = typer.Option(
        None,
        "--scores",
        metavar="FILE",
        help="a graph or attribution JSON whose edge scores to write",
    ),
) -> None:
    """Write a circuit as the EAP-IG/MIB graph JSON (EAP-IG's Graph.from_json reads it).

    Every node and edge of the model is listed with `in_graph`; a node circuit keeps every
    edge among its nodes, from the input and to the logits. Scores come from --scores, else
    from `# score X` comments on edge lines (as `seqcirc import` writes them), else 0.

    Example:  seqcirc export hypotheses/months.circ --circuit months -o months.json
    """
    from seqcirc.usecases.interop import export_circuit, write_json

    done = export_circuit(file, fmt=fmt, circuit=circuit, model=model, scores=scores)
    if output is None or output == "-":
        import json

        typer.echo(json.dumps(done.data))
        typer.echo(done.summary, err=True)
    else:
        write_json(done.data, output)
        typer.echo(f"{done.summary}; wrote {output}")


def import_cmd(
    graph: str = typer.Argument(..., help="an EAP-IG/MIB graph JSON", metavar="GRAPH.json"),
    model: str = typer.Option(..., "--model", metavar="MODEL", help="the model the graph is of"),
    task: str = typer.Option(
        ...,
        "--task",
        metavar="TASK",
        help="an ordered set (months), a prompt file, or FILE.circ:TASK",
    ),
    output: str | None = options.output("the .circ file"),
    top: int | None = typer.Option(
        None, "--top", metavar="N", help="keep the N edges of largest |score|"
    ),
    in_graph: bool = typer.Option(
        False, "--in-graph", help="keep the edges marked in_graph (the default when marked)"
    ),
    signed: bool = typer.Option(False, "--signed", help="--top by score, not |score|"),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="circuit name (default: the graph file's name)"
    ),
    ablation: str = typer.Option(
        "resample",
        "--ablation",
        metavar="ABLATION",
        help="resample (EAP-IG's patching), mean, 'mean pooled', zero",
    ),
    edges: bool = typer.Option(
        False, "--edges", help="write edge lines even when the edges form a node circuit"
    ),
) -> None:
    """Turn an EAP-IG/MIB graph JSON (or seqcirc's attribution JSON) into a .circ circuit.

    The circuit is the file's in_graph edges or the top N by |score|, pruned as EAP-IG's
    evaluate_graph prunes; it is written as edge lines with their scores as comments, or
    as heads and MLPs when the edges are exactly a node circuit's.

    Example:  seqcirc import ioi.json --model gpt2-small --task months --top 200 -o c.circ
    """
    from seqcirc.report.files import check_writable, write_text
    from seqcirc.usecases.import_graph import import_graph

    if output is not None:
        check_writable(output, ".circ file")
    command = "seqcirc import " + " ".join(sys.argv[2:])
    done = import_graph(
        graph,
        model=model,
        task=task,
        top=top,
        in_graph=in_graph,
        signed=signed,
        name=name,
        ablation=ablation,
        as_edges=edges,
        output=None if output == "-" else output,
        command=command,
    )
    if output is None or output == "-":
        typer.echo(done.text, nl=False)
        typer.echo(done.summary, err=True)
    else:
        write_text(output, done.text, ".circ file")
        typer.echo(f"{done.summary}; wrote {output}")


def draw(
    file: str = typer.Argument(..., help="a .circ file", metavar="FILE"),
    output: str = typer.Option(
        ..., "--output", "-o", metavar="PATH", help="the drawing: .svg, .png or .pdf"
    ),
    circuit: str | None = typer.Option(
        None, "--circuit", metavar="NAME", help="the circuit section to draw"
    ),
    model: str | None = typer.Option(
        None, "--model", metavar="MODEL", help="its model, if the name has several"
    ),
) -> None:
    """Draw a circuit: embeddings -> heads and MLPs by layer -> logits.

    Edges are coloured and dashed by the input they enter (q, k, v, an MLP, the logits)
    and wider the larger |score| when their lines carry `# score` comments. A node
    circuit is drawn as its nodes and the edges its `edge` lines highlight.

    Example:  seqcirc draw hypotheses/months.circ --circuit months -o months.svg
    """
    from seqcirc.report.files import check_writable
    from seqcirc.usecases.interop import draw_circuit, write_bytes

    check_writable(output, "drawing")
    done = draw_circuit(file, output, circuit=circuit, model=model)
    write_bytes(done.data, output, "drawing")
    typer.echo(f"{done.summary}; wrote {output}")
