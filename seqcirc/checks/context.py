"""What the checks of one file share: where problems go and the file's tables.

The helper modules (components, scope, body, edges, algebra) receive a CheckContext
instead of the file's checker, so they never call back into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seqcirc.checks.resolved import Circuit, Module
from seqcirc.errors import Diagnostic
from seqcirc.language import ast
from seqcirc.source import Span


@dataclass
class CheckContext:
    """The diagnostics sink and the file-level tables (shared with the Module)."""

    path: str  # the checked file, as its spans name it
    base: Path  # its folder: imports, prompt files and model folders are relative to it
    tasks: dict[str, ast.TaskDef]
    groups: dict[str, ast.GroupDef]
    circuits: dict[str, list[Circuit]]
    warnings: list[Diagnostic]
    flat: dict[str, tuple[ast.Member, ...]] = field(default_factory=dict)  # scope.flat_members
    diags: list[Diagnostic] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)  # circuits reported; uses add no noise
    resolving: set[str] = field(default_factory=set)  # file-level groups being expanded
    # the group names of the circuit section being checked, offered as suggestions
    local_names: tuple[str, ...] = ()

    @classmethod
    def of(cls, mod: Module, base: Path) -> CheckContext:
        """A context whose tables are `mod`'s own dicts, so definitions land in both."""
        return cls(
            mod.path, base, mod.tasks, mod.groups, mod.circuits, mod.warnings, mod.flat_groups
        )

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.diags.append(Diagnostic(code, message, span, hint))

    def warn(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.warnings.append(Diagnostic(code, message, span, hint, "warning"))
