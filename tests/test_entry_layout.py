"""The house's map matches the house: AGENTS.md names every module of the package and
every stage folder, names no module that is gone, and docs/architecture.md names every
stage folder (issue 16: a newcomer reads the pipeline off these two files)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seqcirc"
STAGES = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file())


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


def _section(agents: str, stage: str) -> str:
    """From where AGENTS.md's module map first names `stage/` to the next blank line."""
    start = agents.index(f"`{stage}/`", agents.index("## Module map"))
    end = agents.find("\n\n", start)
    return agents[start : end if end != -1 else len(agents)]


def test_agents_md_names_every_module_in_its_stage() -> None:
    agents = (ROOT / "AGENTS.md").read_text(encoding="utf-8")
    for module in _modules():
        if module.parent == PACKAGE:
            assert f"`seqcirc/{module.name}`" in agents, module
        elif module.name != "__init__.py":  # a stage's __init__ is named by its folder
            assert f"`{module.name}`" in _section(agents, module.parent.name), module


def test_agents_md_names_no_module_that_is_gone() -> None:
    agents = (ROOT / "AGENTS.md").read_text(encoding="utf-8")
    known = {p.name for d in ("seqcirc", "tests", "scripts", "benchmarks")
             for p in (ROOT / d).rglob("*.py")}  # fmt: skip
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", agents))
    assert named - known == set()


def test_architecture_md_names_every_stage() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for stage in STAGES:
        if stage == "bundled":
            continue  # data, not a stage
        assert f"{stage}/" in text, stage
