"""Lark parse tree -> AST (seqcirc.language.ast). Every node gets the span it came from.

The transform is iterative (Lark's Transformer_NonRecursive): a set-algebra chain of
thousands of operands is a parse tree thousands of levels deep. Set algebra nested
inside right operands (`a & (b & (c & ...))`) is bounded here (E103), so every later
stage may recurse on right operands and loop over left ones.
"""

from __future__ import annotations

from typing import Any

from lark import Token, v_args
from lark.tree import Meta
from lark.visitors import Transformer_NonRecursive

from seqcirc.errors import InputError
from seqcirc.language import ast
from seqcirc.language.names import parse_component
from seqcirc.language.vocab import LIMITS
from seqcirc.source import Span


def _num(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    """Builds AST nodes bottom-up; `path` labels every span."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        # id(SetOp) -> its nesting: 1 + the deepest right operand, left operands as deep
        self._depth: dict[int, int] = {}

    # ---- spans ---------------------------------------------------------------------
    def _span(self, meta: Meta | Token) -> Span:
        if getattr(meta, "empty", False):
            return Span(self.path, 1, 1)
        end_col = meta.end_column - 1 if meta.end_column is not None else None
        return Span(self.path, meta.line or 1, meta.column or 1, meta.end_line, end_col)

    def _name(self, tok: Token) -> ast.NameRef:
        return ast.NameRef(str(tok), self._span(tok))

    def _head(self, tok: Token) -> ast.HeadRef | ast.MlpRange | ast.NameRef:
        """A component in any spelling (seqcirc.language.names), else a name (a group)."""
        text = str(tok)
        found = parse_component(text)
        if found is None:
            return self._name(tok)
        layer, head = found
        if head is None:
            return ast.MlpRange(layer, None, self._span(tok))
        return ast.HeadRef(layer, head, text, self._span(tok))

    # ---- file level ----------------------------------------------------------------
    def start(self, meta: Meta, items: list) -> tuple:
        return tuple(items)

    def seed_stmt(self, meta: Meta, c: list) -> ast.SeedStmt:
        return ast.SeedStmt(int(c[0]), self._span(meta))

    def import_stmt(self, meta: Meta, c: list) -> ast.ImportStmt:
        return ast.ImportStmt(str(c[0])[1:-1], self._span(meta))

    def task_def(self, meta: Meta, c: list) -> ast.TaskDef:
        return ast.TaskDef(self._name(c[0]), c[1], tuple(c[2:]), self._span(meta))

    def seq_source(self, meta: Meta, c: list) -> ast.SeqSource:
        return ast.SeqSource(self._name(c[0]), tuple(c[1:]), self._span(meta))

    def file_source(self, meta: Meta, c: list) -> ast.FileSource:
        return ast.FileSource(str(c[0])[1:-1], self._span(meta))

    def _clause(self, kind: str, meta: Meta, c: list) -> ast.TaskClause:
        args = c[1] if len(c) > 1 and c[1] is not None else ()
        return ast.TaskClause(kind, self._name(c[0]), args, self._span(meta))

    def corrupt_clause(self, meta: Meta, c: list) -> ast.TaskClause:
        return self._clause("corrupt", meta, c)

    def metric_clause(self, meta: Meta, c: list) -> ast.TaskClause:
        return self._clause("metric", meta, c)

    def filter_clause(self, meta: Meta, c: list) -> ast.TaskClause:
        return self._clause("filter", meta, c)

    def bos_clause(self, meta: Meta, c: list) -> ast.TaskClause:
        return self._clause("bos", meta, c)

    def args(self, meta: Meta, c: list) -> tuple[ast.Arg, ...]:
        return tuple(a for a in c if a is not None)

    def kwarg(self, meta: Meta, c: list) -> ast.Arg:
        value, quoted = c[1]
        return ast.Arg(str(c[0]), value, self._span(meta), quoted)

    def flag(self, meta: Meta, c: list) -> ast.Arg:
        return ast.Arg(str(c[0]), True, self._span(meta))

    def number(self, meta: Meta, c: list) -> tuple[int | float, bool]:
        return _num(str(c[0])), False

    def name_value(self, meta: Meta, c: list) -> tuple[str, bool]:
        return str(c[0]), False

    def string_value(self, meta: Meta, c: list) -> tuple[str, bool]:
        return str(c[0])[1:-1], True

    def group_def(self, meta: Meta, c: list) -> ast.GroupDef:
        return ast.GroupDef(self._name(c[0]), c[1], self._span(meta))

    def circuit_def(self, meta: Meta, c: list) -> ast.CircuitDef:
        return ast.CircuitDef(self._name(c[0]), c[1], tuple(c[2:]), self._span(meta))

    def model(self, meta: Meta, c: list) -> ast.ModelName:
        text = str(c[0])
        quoted = c[0].type == "STRING"
        return ast.ModelName(text[1:-1] if quoted else text, quoted, self._span(meta))

    # ---- members -------------------------------------------------------------------
    def members(self, meta: Meta, c: list) -> tuple[ast.Member, ...]:
        return tuple(c)

    def head(self, meta: Meta, c: list) -> ast.Member:
        return self._head(c[0])

    def name_member(self, meta: Meta, c: list) -> ast.Member:
        return self._head(c[0])

    def mlp_member(self, meta: Meta, c: list) -> ast.MlpRange:
        rng: ast.MlpRange = c[0]
        return ast.MlpRange(rng.lo, rng.hi, self._span(meta))

    def layer_range(self, meta: Meta, c: list) -> ast.MlpRange:
        hi = int(c[1]) if c[1] is not None else None
        return ast.MlpRange(int(c[0]), hi, self._span(meta))

    def mlp_endpoint(self, meta: Meta, c: list) -> ast.MlpRange:
        return ast.MlpRange(int(c[0]), None, self._span(meta))

    # ---- circuit body --------------------------------------------------------------
    def task_ref(self, meta: Meta, c: list) -> ast.TaskRef:
        return ast.TaskRef(self._name(c[0]), self._span(meta))

    def use_stmt(self, meta: Meta, c: list) -> ast.UseStmt:
        return ast.UseStmt(tuple(self._name(t) for t in c), self._span(meta))

    def mlp_stmt(self, meta: Meta, c: list) -> ast.MlpStmt:
        return ast.MlpStmt(tuple(c), self._span(meta))

    def head_stmt(self, meta: Meta, c: list) -> ast.HeadsStmt:
        return ast.HeadsStmt(c[0], self._span(meta))

    def ablate_stmt(self, meta: Meta, c: list) -> ast.AblateStmt:
        return ast.AblateStmt(tuple(c), self._span(meta))

    def granularity(self, meta: Meta, c: list) -> ast.AblateOpt:
        return ast.AblateOpt("granularity", str(c[0]), self._span(meta))

    def ablation_value(self, meta: Meta, c: list) -> ast.AblateOpt:
        arg = str(c[1]) if c[1] is not None else None
        return ast.AblateOpt("value", str(c[0]), self._span(meta), arg=arg)

    def per_position(self, meta: Meta, c: list) -> ast.AblateOpt:
        return ast.AblateOpt("per_position", "per position", self._span(meta))

    def pooled(self, meta: Meta, c: list) -> ast.AblateOpt:
        return ast.AblateOpt("pooled", "pooled", self._span(meta))

    def at_positions(self, meta: Meta, c: list) -> ast.AblateOpt:
        names = tuple(self._name(t) for t in c)
        return ast.AblateOpt("positions", "at", self._span(meta), positions=names)

    def direction(self, meta: Meta, c: list) -> ast.AblateOpt:
        return ast.AblateOpt("direction", str(c[0]), self._span(meta))

    def edge_stmt(self, meta: Meta, c: list) -> ast.EdgeStmt:
        inputs = c[2] if c[2] is not None else ()
        return ast.EdgeStmt(c[0], c[1], inputs, self._span(meta))

    def inputs(self, meta: Meta, c: list) -> tuple[ast.NameRef, ...]:
        return tuple(self._name(t) for t in c)

    def head_ref(self, meta: Meta, c: list) -> ast.Member:
        return self._head(c[0])

    def role_stmt(self, meta: Meta, c: list) -> ast.RoleStmt:
        head, role, args, op, threshold = c
        return ast.RoleStmt(
            head, self._name(role), args or (), str(op), threshold, self._span(meta)
        )

    def expect_stmt(self, meta: Meta, c: list) -> ast.ExpectStmt:
        return ast.ExpectStmt(c[0], self._span(meta))

    def threshold(self, meta: Meta, c: list) -> ast.Threshold:
        value, _ = c[0]
        return ast.Threshold(float(value), c[1] is not None, self._span(meta))

    def value_claim(self, meta: Meta, c: list) -> ast.ClaimExpr:
        name, args, op, threshold = c
        return ast.ClaimExpr(
            "value", self._name(name), args or (), None, str(op), threshold, self._span(meta)
        )

    def measure_claim(self, meta: Meta, c: list) -> ast.ClaimExpr:
        name, args, measure, target, op, threshold = c
        return ast.ClaimExpr(
            "value", self._name(name), args or (), None, str(op), threshold,
            self._span(meta), self._name(measure), self._name(target),
        )  # fmt: skip

    def beats_claim(self, meta: Meta, c: list) -> ast.ClaimExpr:
        return self._test("beats", meta, c)

    def test_claim(self, meta: Meta, c: list) -> ast.ClaimExpr:
        return self._test("test", meta, c)

    def _test(self, form: str, meta: Meta, c: list) -> ast.ClaimExpr:
        name, args, stat, op, threshold = c
        return ast.ClaimExpr(
            form,
            self._name(name),
            args or (),
            self._name(stat),
            str(op),
            threshold,
            self._span(meta),
        )

    # ---- set algebra ---------------------------------------------------------------
    def derived_def(self, meta: Meta, c: list) -> ast.DerivedDef:
        return ast.DerivedDef(self._name(c[0]), c[1], c[2], self._span(meta))

    def circuit_ref(self, meta: Meta, c: list) -> ast.SetRef:
        return ast.SetRef(self._name(c[0]), self._span(meta))

    def _setop(self, op: str, meta: Meta, c: list) -> ast.SetOp:
        node = ast.SetOp(op, c[0], c[1], self._span(meta))
        depth = max(self._depth.get(id(c[0]), 0), self._depth.get(id(c[1]), 0) + 1)
        if depth > LIMITS["set_depth"]:
            raise InputError(
                f"set algebra nested more than {LIMITS['set_depth']} levels deep",
                code="E103",
                span=Span(self.path, node.span.line, node.span.col),
                hint="write a chain flat (`a & b & c` is one level) or name a part: "
                "`circuit ab on gpt2-small = a & b`",
            )
        self._depth[id(node)] = depth
        return node

    def union(self, meta: Meta, c: list) -> ast.SetOp:
        return self._setop("|", meta, c)

    def intersection(self, meta: Meta, c: list) -> ast.SetOp:
        return self._setop("&", meta, c)

    def difference(self, meta: Meta, c: list) -> ast.SetOp:
        return self._setop("-", meta, c)

    def expect_on(self, meta: Meta, c: list) -> ast.ExpectOn:
        return ast.ExpectOn(self._name(c[0]), self._name(c[1]), c[2], self._span(meta))

    def __default__(self, data: Any, children: Any, meta: Any) -> Any:  # pragma: no cover
        raise AssertionError(f"grammar rule without a transformer method: {data}")
