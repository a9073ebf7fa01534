"""The .circ syntax tree: frozen dataclasses, each carrying the Span it was read from.

The tree records what was written (e.g. a head written `L9H1` keeps that text); meaning
is given later by seqcirc.checks.checker and seqcirc.plan.compile.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqcirc.source import Span

ArgValue = int | float | str | bool


@dataclass(frozen=True)
class Arg:
    """`name=value` or a bare flag `name` (value True). `quoted` marks "string" values."""

    name: str
    value: ArgValue
    span: Span
    quoted: bool = False


@dataclass(frozen=True)
class NameRef:
    name: str
    span: Span


@dataclass(frozen=True)
class HeadRef:
    """An attention head, written `9.1`, `L9H1`, `a9.h1` or `blocks.9.attn.hook_z[1]`
    (seqcirc.language.names); `text` keeps the spelling."""

    layer: int
    head: int
    text: str
    span: Span


@dataclass(frozen=True)
class MlpRange:
    """`mlp 3` (hi None) or `mlp 0..4` (inclusive); one MLP also as `mlp3`, `m3` or
    `blocks.3.hook_mlp_out`."""

    lo: int
    hi: int | None
    span: Span


Member = HeadRef | MlpRange | NameRef


@dataclass(frozen=True)
class Threshold:
    value: float
    percent: bool  # written as `80%` (value holds 80; the fraction is value / 100)
    span: Span

    @property
    def fraction(self) -> float:
        return self.value / 100 if self.percent else self.value


@dataclass(frozen=True)
class ClaimExpr:
    """`NAME(args) OP t` (form "value"), `beats NAME(args) at STAT OP t` ("beats"),
    `NAME(args) at STAT OP t` ("test"); a value claim may read a measure of a target,
    `NAME(args) MEASURE(TARGET) OP t` (`lens(layer=9) rank(correct) <= 1`)."""

    form: str
    name: NameRef
    args: tuple[Arg, ...]
    stat: NameRef | None
    op: str
    threshold: Threshold
    span: Span
    measure: NameRef | None = None
    target: NameRef | None = None


# ---- file level ---------------------------------------------------------------------


@dataclass(frozen=True)
class SeedStmt:
    value: int
    span: Span


@dataclass(frozen=True)
class ImportStmt:
    path: str
    span: Span


@dataclass(frozen=True)
class SeqSource:
    set_name: NameRef
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True)
class FileSource:
    path: str
    span: Span


@dataclass(frozen=True)
class TaskClause:
    """`corrupt NAME(args)`, `metric NAME(args)`, `filter NAME` or `bos NAME` (kind says which)."""

    kind: str
    name: NameRef
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True)
class TaskDef:
    name: NameRef
    source: SeqSource | FileSource
    clauses: tuple[TaskClause, ...]
    span: Span


@dataclass(frozen=True)
class GroupDef:
    name: NameRef
    members: tuple[Member, ...]
    span: Span


@dataclass(frozen=True)
class ModelName:
    name: str
    quoted: bool  # a quoted name is a local checkpoint folder
    span: Span


# ---- circuit body -------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRef:
    name: NameRef
    span: Span


@dataclass(frozen=True)
class AblateOpt:
    """One option of `ablate`: kind granularity|value|per_position|pooled|positions|direction."""

    kind: str
    value: str
    span: Span
    arg: str | None = None  # `mean(corrupted)`
    positions: tuple[NameRef, ...] = ()


@dataclass(frozen=True)
class AblateStmt:
    options: tuple[AblateOpt, ...]
    span: Span


@dataclass(frozen=True)
class UseStmt:
    names: tuple[NameRef, ...]
    span: Span


@dataclass(frozen=True)
class MlpStmt:
    ranges: tuple[MlpRange, ...]
    span: Span


@dataclass(frozen=True)
class HeadsStmt:
    members: tuple[Member, ...]
    span: Span


@dataclass(frozen=True)
class EdgeStmt:
    sender: Member
    receiver: Member
    inputs: tuple[NameRef, ...]  # () = all inputs of the receiver
    span: Span


@dataclass(frozen=True)
class RoleStmt:
    head: Member  # the checks accept only a head here
    role: NameRef
    args: tuple[Arg, ...]
    op: str
    threshold: Threshold
    span: Span


@dataclass(frozen=True)
class ExpectStmt:
    claim: ClaimExpr
    span: Span


Stmt = (
    TaskRef
    | AblateStmt
    | GroupDef
    | UseStmt
    | MlpStmt
    | HeadsStmt
    | EdgeStmt
    | RoleStmt
    | ExpectStmt
)


@dataclass(frozen=True)
class CircuitDef:
    name: NameRef
    model: ModelName
    body: tuple[Stmt, ...]
    span: Span


# ---- set algebra --------------------------------------------------------------------


@dataclass(frozen=True)
class SetRef:
    name: NameRef
    span: Span


@dataclass(frozen=True)
class SetOp:
    op: str  # "|", "&", "-"
    left: SetExpr
    right: SetExpr
    span: Span


SetExpr = SetRef | SetOp


@dataclass(frozen=True)
class DerivedDef:
    name: NameRef
    model: ModelName | None
    expr: SetExpr
    span: Span


@dataclass(frozen=True)
class ExpectOn:
    """`expect CIRCUIT on TASK: claim` (a claim about a derived or imported circuit)."""

    circuit: NameRef
    task: NameRef
    claim: ClaimExpr
    span: Span


Item = SeedStmt | ImportStmt | TaskDef | GroupDef | CircuitDef | DerivedDef | ExpectOn


@dataclass(frozen=True)
class Program:
    path: str
    text: str
    items: tuple[Item, ...]
    comments: tuple[tuple[int, str], ...] = ()  # (line, "# text"), for the formatter

    def of_type(self, kind: type) -> list:
        return [item for item in self.items if isinstance(item, kind)]
