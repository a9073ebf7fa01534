"""What the checks resolve a file to: models with their shapes, circuits as concrete
nodes and edges, and the checked Module that seqcirc.plan.compile turns into a Plan."""

from __future__ import annotations

from dataclasses import dataclass, field

from seqcirc.errors import Diagnostic
from seqcirc.language import ast
from seqcirc.models import shapes
from seqcirc.plan import Edge, ModelRef, Node
from seqcirc.source import Span


@dataclass(frozen=True)
class ResolvedModel:
    ref: ModelRef
    shape: shapes.ModelShape | None  # None: not known offline, layer checks skipped


@dataclass(frozen=True)
class Circuit:
    """A circuit section (or a set-algebra result) with its components resolved."""

    name: str
    model: ResolvedModel
    nodes: frozenset[Node]
    groups: tuple[tuple[str, tuple[Node, ...]], ...]
    edges: tuple[Edge, ...]
    task: ast.TaskDef | None
    ablation: ast.AblateStmt | None
    claims: tuple[ast.RoleStmt | ast.ExpectStmt, ...]
    path: str
    span: Span
    derived: bool = False


@dataclass
class Module:
    """One checked file: its own definitions plus what it imported (not re-exported)."""

    path: str
    program: ast.Program
    tasks: dict[str, ast.TaskDef] = field(default_factory=dict)
    task_dirs: dict[str, str] = field(default_factory=dict)  # task -> directory of its file
    groups: dict[str, ast.GroupDef] = field(default_factory=dict)
    # each file-level group's heads and MLP ranges, nested groups replaced by theirs
    flat_groups: dict[str, tuple[ast.Member, ...]] = field(default_factory=dict)
    circuits: dict[str, list[Circuit]] = field(default_factory=dict)
    own: list[Circuit] = field(default_factory=list)  # circuits defined in this file
    expect_on: list[tuple[ast.ExpectOn, Circuit, ast.TaskDef]] = field(default_factory=list)
    seed: int = 0
    warnings: list[Diagnostic] = field(default_factory=list)
    exported: set[str] = field(default_factory=set)
