"""`seqcirc roles` through the real console script, on the planted model saved as a
Hugging Face folder (the successor head is 1.0, the copy head 1.1, the previous-token
head 0.0; see tests/roles_planted.py)."""

from __future__ import annotations

import json
import subprocess

import pytest
from roles_planted import planted_hf, planted_tokenizer

from tests.cli_in_process import seqcirc


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted")
    planted_hf().save_pretrained(out)
    planted_tokenizer().save_pretrained(out)
    return out


def _seqcirc(*args: str) -> subprocess.CompletedProcess[str]:
    return seqcirc(*args)  # in process: the imports and the model load once


def test_roles_scan_table_attends_and_heatmap(folder, tmp_path):
    png = tmp_path / "roles.png"
    proc = _seqcirc(
        "roles", str(folder), "--task", "months", "--repeat-len", "10", "--attends", "S2:S1",
        "--prompts", "6", "--plot", str(png),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    table = out.split("best heads per role:")[0]
    first_row = next(ln for ln in table.splitlines() if ln[:1].isdigit())
    assert first_row.split()[:3] == ["1.0", "1.000", "1.000"]  # sorted by successor
    assert "  successor          1.0 1.00" in out
    assert "  copy               1.1 1.00" in out
    assert "  previous_token     0.0 1.00" in out
    # "<bos> N born in S1 . N born in S2": S1 at 4, S2 at 9. The previous-token head
    # (0.0) looks one back, so 0; the uniform heads (layer 1, 0.2, 0.3) put 1/10 on S1.
    header = next(ln for ln in table.splitlines() if ln.startswith("head ")).split()
    col = header.index("attends(S2->S1)")
    rows = {ln.split()[0]: ln.split() for ln in table.splitlines() if ln[:1].isdigit()}
    assert rows["0.0"][col] == "0.000" and rows["0.2"][col] == "0.100"
    assert rows["1.3"][col] == "0.100"
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "with 12 members, a head that favours the whole set evenly scores about 0.42" in out
    assert "and 0.08 on *_first" in out


def test_attends_with_the_default_prompts_runs(folder):
    # The default --prompts must split into the three templates of template=all (it
    # was 64, and the --help example failed with T106).
    proc = _seqcirc(
        "roles", str(folder), "--task", "months", "--repeat-len", "10", "--attends", "S2:S1"
    )
    assert proc.returncode == 0, proc.stderr
    assert "attends(S2->S1)" in proc.stdout


def test_roles_json_to_stdout_or_a_file_and_the_table_to_a_file(folder, tmp_path):
    from typer.testing import CliRunner

    from seqcirc.cli import app

    def run(*extra: str):  # in process: the model loads once for the three runs
        args = ["roles", str(folder), "--task", "months", "--repeat-len", "10", "--limit", "4"]
        return CliRunner().invoke(app, [*args, *extra])

    proc = run("--json", "-", "--device", "cpu")
    assert proc.exit_code == 0, proc.output
    data = json.loads(proc.stdout)  # stdout holds the JSON alone; the table went to stderr
    rows = {r["head"]: r for r in data["rows"]}
    assert len(rows) == 8
    assert rows["1.0"]["successor"] == 1.0 and rows["1.1"]["copy"] == 1.0
    assert data["meta"]["set"] == "months" and data["meta"]["seed"] == 0
    # the header counts the rows shown (--limit 4 of the model's 8 heads), not the OV top-k
    assert f"roles of {folder} on months: top 4 of 8 heads, by successor" in proc.stderr
    assert "(OV scores: top 5 of the vocabulary over 32 member positions; seed 0)" in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln[:1].isdigit()]) == 4
    table = tmp_path / "roles.txt"
    proc = run("--json", str(tmp_path / "r.json"), "-o", str(table))
    assert proc.exit_code == 0 and proc.stdout == ""
    assert json.loads((tmp_path / "r.json").read_text()) == data
    assert table.read_text().startswith(f"roles of {folder} on months: top 4 of 8 heads")
    # --json takes a PATH now: an option after it is not taken for one
    proc = run("--json", "--plot")
    assert proc.exit_code == 2 and "takes a PATH, not '--plot'" in proc.output


def test_roles_bad_input_exits_2_before_loading(folder):
    proc = _seqcirc("roles", str(folder), "--task", "monts")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error[E801]: unknown ordered set 'monts'" in proc.stderr
    assert "did you mean 'months'" in proc.stderr
    assert "Loading weights" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("task", "attends", "sort", "text"),
    [
        ("months", ["S2"], "successor", "FROM:TO"),
        ("months", ["S2:"], "successor", "FROM:TO"),
        ("months", [], "succ", "not a scanned role"),
        ("months", ["S3:S2"], "attends(S2->S3)", "not a scanned role"),
        ("month", [], "successor", "did you mean 'months'"),
    ],
    ids=["no-colon", "no-target", "bad-sort", "sort-unscanned-pair", "unknown-set"],
)
def test_options_checked_before_loading(task, attends, sort, text):
    from seqcirc.errors import InputError
    from seqcirc.usecases.roles_scan import check_options, parse_attends

    with pytest.raises(InputError) as err:
        check_options(task, parse_attends(attends), sort)
    assert text in err.value.message + (err.value.hint or "")
    check_options("months", parse_attends(["S3:S2"]), "attends(S3->S2)")  # fine


def test_repeat_too_long_for_the_context(folder):
    from seqcirc.errors import InputError
    from seqcirc.models.load import load_model
    from seqcirc.roles import pattern_scores

    lm = load_model(str(folder))
    with pytest.raises(InputError) as err:
        pattern_scores(lm.bridge, lm.tokenizer, half_len=20, bos=0)  # 41 tokens > 32
    assert err.value.code == "E807" and "<= 15" in (err.value.hint or "")


def test_scores_survive_compatibility_mode(folder):
    """Folded layer norms and centred weights leave the planted heads' ranks intact."""
    from seqcirc.models.load import load_model
    from seqcirc.roles import ov_scores

    lm = load_model(str(folder), compatibility_mode=True)
    nxt = ov_scores(lm.bridge, lm.tokenizer, "months", target="next", top_k=1)
    cpy = ov_scores(lm.bridge, lm.tokenizer, "months", target="self", top_k=1)
    assert nxt.topk[1].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert cpy.topk[1].tolist() == [0.0, 1.0, 0.0, 0.0]


def test_scan_on_the_bundled_model():
    """seqcirc-mini: the scan runs on every head, and its best successor head beats the
    chance level among the set's members (1/12 for months)."""
    from seqcirc.models.shapes import BUNDLED_DIR

    if not (BUNDLED_DIR / "model.safetensors").is_file():
        pytest.skip(f"the bundled model is not built yet ({BUNDLED_DIR})")
    from seqcirc.models.load import load_model
    from seqcirc.roles import scan_roles

    lm = load_model("seqcirc-mini")
    table = scan_roles(lm.bridge, lm.tokenizer, set_name="months", n_seqs=2)
    assert table.values.shape == (7, lm.bridge.cfg.n_layers, lm.bridge.cfg.n_heads)
    assert table.top("successor_first", 1)[0][1] > 2 / 12
