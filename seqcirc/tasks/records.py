"""A prompt as text, before any tokenizer sees it: clean and corrupted twins, the answer
continuations, and the character spans of every named position (S1.., N1..).

Generators and prompt-file loaders produce these; tokenization turns a list of them into
a TokenizedTask. Keeping a text level lets users inspect and export prompts without a
model and lets the tokenizer checks name the offending word.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# (position name, char start, char end) of a word in a prompt; end exclusive.
WordSpan = tuple[str, int, int]


@dataclass(frozen=True)
class PromptRecord:
    """One prompt pair.

    correct/incorrect are continuation texts exactly as they would follow the prompt
    (" 5", with its leading space); the answer token is their single token.
    clean_words/corrupted_words name the same positions in both twins, in text order.
    """

    clean: str
    corrupted: str
    correct: str
    incorrect: str
    clean_words: tuple[WordSpan, ...] = ()
    corrupted_words: tuple[WordSpan, ...] = ()
    template: str = ""
    # Where the prompt came from, for error messages: a user file and its line.
    source: str | None = None
    line: int | None = None
    # Generator bookkeeping (member indices, names) for tests and exports.
    info: dict[str, object] = field(default_factory=dict, compare=False)

    def word(self, name: str, *, corrupted: bool = False) -> str:
        """The text at named position `name` (e.g. "S4") in the clean or corrupted prompt."""
        text = self.corrupted if corrupted else self.clean
        for pos, start, end in self.corrupted_words if corrupted else self.clean_words:
            if pos == name:
                return text[start:end]
        raise KeyError(name)

    @property
    def where(self) -> str:
        """'path:line' for file prompts, '' for generated ones."""
        if self.source is None:
            return ""
        return f"{self.source}:{self.line}" if self.line is not None else self.source
