"""Add named positions (N1..N5 fillers, S1..S4 members) to the shipped paper prompts.

The authors' rows carry no positions; their templates are fixed ("{N1} done in {S1}.
... {N5} done in"), so every position follows from the clean text. A word that occurs
once in its prompt is written as the word, otherwise as [start, end] offsets
(seqcirc.tasks.prompt_files documents both forms). Run once; idempotent.

    python scripts/paper_positions.py hypotheses/data/paper-prompts/*.jsonl
"""

from __future__ import annotations

import json
import re
import sys

_TEMPLATE = re.compile(
    r"(?P<N1>\S+) (\w+) in (?P<S1>\S+)\. (?P<N2>\S+) \2 in (?P<S2>\S+)\. "
    r"(?P<N3>\S+) \2 in (?P<S3>\S+)\. (?P<N4>\S+) \2 in (?P<S4>\S+)\. (?P<N5>\S+) \2 in"
)
_ORDER = ("N1", "S1", "N2", "S2", "N3", "S3", "N4", "S4", "N5")


def positions(clean: str) -> dict[str, object]:
    m = _TEMPLATE.fullmatch(clean)
    if m is None:
        raise SystemExit(f"not the paper's template: {clean!r}")
    out: dict[str, object] = {}
    for name in _ORDER:
        word = m.group(name)
        once = len(re.findall(rf"(?<!\w){re.escape(word)}(?!\w)", clean)) == 1
        out[name] = word if once else [m.start(name), m.end(name)]
    return out


def main(paths: list[str]) -> None:
    for path in paths:
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        for row in rows:
            row["positions"] = positions(row["clean"])
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


if __name__ == "__main__":
    main(sys.argv[1:])
