"""Prompt sets: the paper's generators, corrupted prompts, user prompt files, tokenization.

Imports numpy only; tokenizers are passed in by the caller.
"""

from seqcirc.tasks.build import build_task, prompt_records
from seqcirc.tasks.export import export_lines, write_export
from seqcirc.tasks.filtering import FilterReport, filter_correct
from seqcirc.tasks.generate import generate_prompts
from seqcirc.tasks.prompt_files import load_prompt_file
from seqcirc.tasks.records import PromptRecord
from seqcirc.tasks.tokenization import tokenize_records
from seqcirc.tasks.types import TokenizedTask

__all__ = [
    "FilterReport",
    "PromptRecord",
    "TokenizedTask",
    "build_task",
    "export_lines",
    "filter_correct",
    "generate_prompts",
    "load_prompt_file",
    "prompt_records",
    "tokenize_records",
    "write_export",
]
