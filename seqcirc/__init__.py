"""seqcirc: state circuit hypotheses about transformer language models and test them.

Importing seqcirc is cheap: no torch, no model, no parser is built here. The public
API is re-exported lazily so `import seqcirc` stays fast (a test guards this).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "SeqcircError": "seqcirc.errors",
    "Plan": "seqcirc.plan",
    "Node": "seqcirc.plan",
    "Edge": "seqcirc.plan",
    "parse": "seqcirc.language",
    "check_file": "seqcirc.checks.checker",
    "compile_file": "seqcirc.plan.compile",
    "compile_text": "seqcirc.plan.compile",
    "format_text": "seqcirc.language.fmt",
    "evaluate_plan": "seqcirc.claims.evaluate",
    "evaluate": "seqcirc.usecases.session",
    "Session": "seqcirc.usecases.session",
    "EvaluationResult": "seqcirc.results",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'seqcirc' has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return list(__all__)
