"""seqcirc.models.load: loading by folder, bundled name and hub name; safety refusals; and
the bundled seqcirc-mini's quality (held-out accuracy, heads that matter)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch

from seqcirc.errors import EXIT_RUNTIME, ModelUnavailableError
from seqcirc.models.load import DEFAULT_COMPATIBILITY_MODE, LoadedModel, load_model
from seqcirc.models.shapes import BUNDLED_DIR, BUNDLED_NAME, shape_of
from seqcirc.tasks.sets import DEFAULT_RANGE, NAMES, ORDERED_SETS, TEMPLATES

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
TASKS = tuple(ORDERED_SETS)  # numerals, number words, months, days, letters, Spanish x2
HELD_OUT_SEED = 7  # the training script uses 7001 (train) and 7002 (its own eval)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    """A random 2-layer GPT-2 saved in Hugging Face format, with the bundled tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    vocab = json.loads((BUNDLED_DIR / "config.json").read_text())["vocab_size"]
    config = GPT2Config(vocab_size=vocab, n_positions=32, n_embd=32, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("models") / "tiny"
    model.save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(BUNDLED_DIR / name, folder / name)
    return folder, model


def test_local_folder_loads_with_hf_numerics_and_identity(tiny_folder):
    folder, hf_model = tiny_folder
    loaded = load_model(str(folder))
    assert isinstance(loaded, LoadedModel)
    tokens = loaded.bridge.to_tokens(["John born in 4. Mary born in"])
    assert tokens[0, 0].item() == loaded.tokenizer.bos_token_id  # BOS prepended once
    assert tokens.shape[1] == 9  # word-level: BOS + 8 words and stops
    with torch.no_grad():
        want = hf_model(tokens).logits
        got = loaded.bridge(tokens)
    # Compatibility mode off by default: the bridge's logits are the HF model's.
    assert DEFAULT_COMPATIBILITY_MODE is False
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

    ident = loaded.to_dict()
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert ident["weights_sha256"] == digest
    assert ident["source"] == "local" and ident["resolved"] == str(folder.resolve())
    assert ident["compatibility_mode"] is False and ident["prepend_bos"] is True
    assert ident["shape"]["n_layers"] == 2 and ident["shape"]["d_model"] == 32
    assert ident["transformer_lens_version"] == version("transformer-lens") == "4.3.0"
    json.dumps(ident)  # results embed it as JSON

    # Loaded once per process: same arguments (also spelled relative to base_dir) reuse it.
    assert load_model(str(folder)) is loaded
    assert load_model("tiny", base_dir=folder.parent) is loaded


def test_bundled_model_by_name():
    loaded = load_model(BUNDLED_NAME)
    assert loaded.identity.source == "bundled"
    assert loaded.shape == shape_of(BUNDLED_NAME)
    digest = hashlib.sha256((BUNDLED_DIR / "model.safetensors").read_bytes()).hexdigest()
    assert loaded.identity.weights_sha256 == digest
    # results say where the model ran ("auto" resolved: this machine has no GPU)
    assert loaded.identity.device == str(next(loaded.bridge.parameters()).device) == "cpu"
    assert (BUNDLED_DIR / "model.safetensors").stat().st_size < 8_000_000
    # Every member of every ordered set is one token, with or without a leading space.
    for members in ORDERED_SETS.values():
        for m in members:
            assert loaded.bridge.to_single_token(" " + m) == loaded.bridge.to_single_token(m)


@pytest.fixture
def empty_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """An empty Hugging Face cache and an endpoint that refuses connections at once."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return constants


@pytest.mark.parametrize("offline", [False, True], ids=["unreachable", "offline"])
def test_unavailable_hub_name_is_one_clear_error(empty_hub, monkeypatch, offline):
    monkeypatch.setattr(empty_hub, "HF_HUB_OFFLINE", offline)
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        load_model("gpt2-small")
    assert time.monotonic() - start < 30  # no hang without network
    err = info.value
    assert err.code == "E502" and err.exit_code == EXIT_RUNTIME
    assert "'gpt2-small'" in err.message and "'gpt2'" in err.message  # name tried, hub id
    assert "cache" in err.message  # what was looked for
    assert err.hint is not None
    assert "local folder" in err.hint and BUNDLED_NAME in err.hint  # what to do


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path):
    """Its ids past the vocabulary would fail in the first forward (an IndexError)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "small-vocab"
    GPT2LMHeadModel(GPT2Config(vocab_size=100, n_positions=16, n_embd=8, n_layer=1,
                               n_head=2)).save_pretrained(folder)  # fmt: skip
    for name in TOKENIZER_FILES:
        shutil.copy(BUNDLED_DIR / name, folder / name)  # 226 tokens
    with pytest.raises(ModelUnavailableError) as info:
        load_model(str(folder))
    assert info.value.code == "E503" and "226 tokens" in info.value.message
    assert "vocabulary is 100" in info.value.message and info.value.hint


def test_missing_local_folder(tmp_path):
    with pytest.raises(ModelUnavailableError) as info:
        load_model("./no-such-model", base_dir=tmp_path)
    assert info.value.code == "E501" and "no-such-model" in info.value.message


def test_pickle_weights_are_refused(tmp_path, tiny_folder):
    folder, hf_model = tiny_folder
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    shutil.copy(folder / "config.json", unsafe / "config.json")
    torch.save(hf_model.state_dict(), unsafe / "pytorch_model.bin")
    with pytest.raises(ModelUnavailableError) as info:
        load_model(str(unsafe))
    assert info.value.code == "E504"
    assert "pytorch_model.bin" in info.value.message and "pickle" in info.value.message
    assert "safetensors" in (info.value.hint or "")


def test_remote_code_needs_the_flag(tmp_path, tiny_folder):
    folder, _ = tiny_folder
    remote = tmp_path / "remote"
    shutil.copytree(folder, remote)
    config = json.loads((remote / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (remote / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelUnavailableError) as info:
        load_model(str(remote))
    assert info.value.code == "E505" and "trust_remote_code" in (info.value.hint or "")


# ---- seqcirc-mini's quality, on prompts built here (not by the training script) ----


def _paper_prompts(
    set_name: str, n: int, rng: np.random.Generator
) -> tuple[list[str], list[str], list[str], list[str]]:
    """The paper's format at interval 1: (clean, corrupted, correct, last member S4).

    Corrupted: same names and template, the four members replaced by random members of
    the same set with no consecutive ending (S4 != S3 + 1)."""
    members = ORDERED_SETS[set_name][: DEFAULT_RANGE[set_name]]
    clean, corrupted, correct, last = [], [], [], []
    for _ in range(n):
        start = int(rng.integers(0, len(members) - 4))
        names = [NAMES[i] for i in rng.choice(len(NAMES), size=5, replace=False)]
        template = list(TEMPLATES.values())[int(rng.integers(len(TEMPLATES)))]
        while True:
            idx = rng.integers(0, len(members), size=4)
            if idx[3] != idx[2] + 1:
                break

        def render(seq: list[str], names=names, template=template) -> str:
            parts = [f"{nm} {template} {m}." for nm, m in zip(names, seq, strict=False)]
            return " ".join(parts) + f" {names[4]} {template}"

        clean.append(render(list(members[start : start + 4])))
        corrupted.append(render([members[i] for i in idx]))
        correct.append(members[start + 4])
        last.append(members[start + 3])
    return clean, corrupted, correct, last


@pytest.fixture(scope="module")
def mini() -> LoadedModel:
    return load_model(BUNDLED_NAME)


@pytest.fixture(scope="module")
def held_out(mini):
    rng = np.random.default_rng(HELD_OUT_SEED)
    out = {}
    for task in TASKS:
        clean, corrupted, correct, last = _paper_prompts(task, 200, rng)
        out[task] = (
            mini.bridge.to_tokens(clean),
            mini.bridge.to_tokens(corrupted),
            torch.tensor([mini.bridge.to_single_token(" " + a) for a in correct]),
            torch.tensor([mini.bridge.to_single_token(" " + a) for a in last]),
        )
    return out


@pytest.mark.parametrize("task", TASKS)
def test_mini_top1_accuracy_on_held_out_prompts(mini, held_out, task):
    clean, _, correct, _ = held_out[task]
    with torch.no_grad():
        top = mini.bridge(clean)[:, -1].argmax(-1)
    accuracy = (top == correct).float().mean().item()
    assert accuracy >= 0.95, f"{task}: top-1 {accuracy:.3f}"


def _score(logits: torch.Tensor, correct: torch.Tensor, last: torch.Tensor) -> float:
    """The paper's score: mean logit(correct) - logit(S4) at the final position."""
    final = logits[:, -1]
    rows = torch.arange(final.shape[0])
    return (final[rows, correct] - final[rows, last]).mean().item()


def single_head_ablation(
    mini: LoadedModel, clean, corrupted, correct, last, heads=None
) -> np.ndarray:
    """% of the full model's score left when one head's hook_z is replaced by its mean
    over the corrupted prompts (per position); [n_layers, n_heads] (NaN where not in
    `heads`, a list of (layer, head); default all)."""
    bridge = mini.bridge
    n_layers, n_heads = mini.shape.n_layers, mini.shape.n_heads
    with torch.no_grad():
        full = _score(bridge(clean), correct, last)
        _, cache = bridge.run_with_cache(corrupted, names_filter=lambda n: n.endswith("hook_z"))
        kept = np.full((n_layers, n_heads), np.nan)
        for layer in range(n_layers):
            name = f"blocks.{layer}.attn.hook_z"
            mean_z = cache[name].mean(0)  # [pos, head, d_head]
            for head in range(n_heads):
                if heads is not None and (layer, head) not in heads:
                    continue

                def ablate(z, hook, head=head, mean_z=mean_z):
                    z[:, :, head, :] = mean_z[:, head, :]
                    return z

                logits = bridge.run_with_hooks(clean, fwd_hooks=[(name, ablate)])
                kept[layer, head] = 100 * _score(logits, correct, last) / full
    return kept


@pytest.mark.parametrize("task", TASKS)
def test_mini_needs_attention_single_head_mean_ablation(mini, held_out, task):
    clean, corrupted, correct, last = held_out[task]
    with torch.no_grad():
        assert _score(mini.bridge(clean), correct, last) > 2.0  # the answer clearly wins
    kept = single_head_ablation(mini, clean[:100], corrupted[:100], correct[:100], last[:100])
    assert kept.min() < 80, f"{task}: no head drops the score by >20% ({kept.round(1)})"
    assert (kept < 99).sum() >= 2  # more than one head matters


def test_compatibility_mode_changes_logits_by_a_row_constant_only(mini, held_out):
    """Why compatibility mode can default to off: the paper's score and mean ablation of
    hook_z come out the same with it on; only raw logits shift (by a constant per row)."""
    compat = load_model(BUNDLED_NAME, compatibility_mode=True)
    assert compat is not mini and compat.identity.compatibility_mode is True
    clean, corrupted, correct, last = (x[:20] for x in held_out["months"])
    with torch.no_grad():
        raw_logits, compat_logits = mini.bridge(clean), compat.bridge(clean)
    shift = raw_logits - compat_logits
    assert shift.abs().max() > 0.1  # the modes really differ
    torch.testing.assert_close(
        shift, shift.mean(-1, keepdim=True).expand_as(shift), atol=1e-3, rtol=0
    )
    assert _score(compat_logits, correct, last) == pytest.approx(
        _score(raw_logits, correct, last), rel=1e-4
    )
    heads = [(0, 0), (0, 1)]  # the heads that matter (compat-mode forwards are slow)
    got = single_head_ablation(compat, clean, corrupted, correct, last, heads)
    want = single_head_ablation(mini, clean, corrupted, correct, last, heads)
    assert np.nanmin(want) < 90  # a real effect is compared
    np.testing.assert_allclose(got[0], want[0], atol=0.05)
