"""Prompt sets: the paper's generators, corrupted prompts, user prompt files, tokenization."""
