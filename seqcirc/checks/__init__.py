"""The checks: a parsed program against its models' shapes -> a checked Module."""

from seqcirc.checks.checker import check_file, check_text
from seqcirc.checks.diagnostics import CheckError
from seqcirc.checks.resolved import Module

__all__ = ["CheckError", "Module", "check_file", "check_text"]
