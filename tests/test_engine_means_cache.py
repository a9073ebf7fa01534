"""The on-disk means cache (seqcirc.engine.means_cache): a hit equals a miss bit for bit and skips
the corrupted pass; anything that changes the means changes the key; a damaged file is
recomputed, never used."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from seqcirc.engine import prepare as preparing
from seqcirc.engine.means_cache import ENV_VAR, MeansCache, MeansCacheWarning, weights_digest
from seqcirc.engine.prepare import prepare
from seqcirc.engine.runner import empty_metric, run_circuits
from seqcirc.errors import InputError
from seqcirc.plan import AblationSpec
from tests.planted import bridge_of, planted_hf, planted_task

N = 8  # prompts of the planted task
MASKS = np.array([[1, 0, 1, 0, 1], [0, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=bool)


@pytest.fixture(scope="module")
def hf():  # type: ignore[no-untyped-def]
    return planted_hf()


@pytest.fixture(scope="module")
def bridge(hf):  # type: ignore[no-untyped-def]
    return bridge_of(hf)


@pytest.fixture(scope="module")
def task():  # type: ignore[no-untyped-def]
    return planted_task()


def _captured_sweeps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count captured forwards (the clean and corrupted sweeps) by rows."""
    calls: list[int] = []
    real = preparing.forward_nodes

    def counting(w, tokens, answer_pos, **kw):  # type: ignore[no-untyped-def]
        if kw.get("capture"):
            calls.append(int(tokens.shape[0]))
        return real(w, tokens, answer_pos, **kw)

    monkeypatch.setattr(preparing, "forward_nodes", counting)
    return calls


def test_a_hit_equals_a_miss_bit_for_bit_and_skips_the_corrupted_pass(
    bridge, task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    sweeps = _captured_sweeps(monkeypatch)
    miss = prepare(bridge, task, AblationSpec(), means_cache=MeansCache(tmp_path))
    assert miss.means_cache == "stored" and len(list(tmp_path.glob("*.safetensors"))) == 1
    assert sweeps == [N, N] and miss.forward_rows == 2 * N + 2  # corrupted, clean, check
    sweeps.clear()
    hit = prepare(bridge, task, AblationSpec(), means_cache=MeansCache(tmp_path))
    assert hit.means_cache == "hit"
    assert sweeps == [N] and hit.forward_rows == N + 2  # the clean sweep only
    for a, b in zip(miss.values.z + miss.values.mlp, hit.values.z + hit.values.mlp, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert torch.equal(miss.embed_values, hit.embed_values)
    assert np.array_equal(run_circuits(miss, MASKS), run_circuits(hit, MASKS))
    assert np.array_equal(empty_metric(miss), empty_metric(hit))
    assert np.array_equal(miss.output_change, hit.output_change)
    # the cached values are the mean over the corrupted prompts, computed here by hand
    none = prepare(bridge, task, AblationSpec(value="resample"))
    for layer in range(len(hit.values.z)):
        torch.testing.assert_close(hit.values.z[layer], none.values.z[layer].mean(0))


def _changed_weight(hf):  # type: ignore[no-untyped-def]
    other = copy.deepcopy(hf)
    with torch.no_grad():  # one element of the dead MLP: the means do not even change
        other.transformer.h[0].mlp.c_proj.weight[0, 0] += 1e-3
    return bridge_of(other)


def test_what_changes_the_means_changes_the_key(bridge, hf, task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = MeansCache(tmp_path)
    assert prepare(bridge, task, means_cache=cache).means_cache == "stored"
    assert prepare(bridge, task, means_cache=cache).means_cache == "hit"
    one_token = copy.deepcopy(task)
    one_token.corrupted[3, 4] = (one_token.corrupted[3, 4] + 1) % 10
    variants = {
        "one weight": (_changed_weight(hf), task, AblationSpec()),
        "one corrupted token": (bridge, one_token, AblationSpec()),
        "named positions": (bridge, task, AblationSpec(positions=("S4",))),
        "edge granularity": (bridge, task, AblationSpec(granularity="edge")),
    }
    for what, (b, t, spec) in variants.items():
        st = prepare(b, t, spec, means_cache=cache)
        assert st.means_cache == "stored", what  # a miss, written under its own key
    assert len(list(tmp_path.glob("*.safetensors"))) == 1 + len(variants)
    # resample and zero values are never cached: nothing read, nothing written
    for value in ("resample", "zero"):
        st = prepare(bridge, task, AblationSpec(value=value), means_cache=cache)
        assert st.means_cache == "" and len(list(tmp_path.glob("*.safetensors"))) == 5
    # other chunking sums in another order: its own key too
    assert prepare(bridge, task, batch_rows=3, means_cache=cache).means_cache == "stored"


def test_weights_digest_is_remembered_until_a_weight_changes(hf) -> None:  # type: ignore[no-untyped-def]
    model = copy.deepcopy(hf)
    first = weights_digest(model)
    assert weights_digest(model) == first
    assert weights_digest(copy.deepcopy(model)) == first  # the same bytes, another object
    with torch.no_grad():
        model.transformer.wpe.weight[2, 5] *= -1.0  # in place: the version counter moves
    assert weights_digest(model) != first
    with torch.no_grad():
        model.transformer.wpe.weight[2, 5] *= -1.0
    assert weights_digest(model) == first


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) - 10])
    elif how == "flipped byte":  # inside the tensor data: the header still parses
        flipped = bytearray(data)
        flipped[-5] ^= 0x40
        path.write_bytes(bytes(flipped))
    else:
        path.write_bytes(b"not a safetensors file")


@pytest.mark.parametrize("how", ["truncated", "flipped byte", "garbage"])
def test_a_damaged_file_is_recomputed_never_used(bridge, task, tmp_path: Path, how: str) -> None:  # type: ignore[no-untyped-def]
    fresh = prepare(bridge, task, means_cache=MeansCache(tmp_path))
    (path,) = tmp_path.glob("*.safetensors")
    _damage(path, how)
    with pytest.warns(MeansCacheWarning, match="unusable"):
        again = prepare(bridge, task, means_cache=MeansCache(tmp_path))
    assert again.means_cache.startswith("recomputed")
    assert again.forward_rows == 2 * N + 2  # the corrupted pass ran again
    for a, b in zip(fresh.values.z, again.values.z, strict=True):
        assert torch.equal(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten whole: the next run is a clean hit
        assert prepare(bridge, task, means_cache=MeansCache(tmp_path)).means_cache == "hit"


def test_a_file_under_another_key_is_refused(bridge, task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    prepare(bridge, task, means_cache=MeansCache(tmp_path))
    (path,) = tmp_path.glob("*.safetensors")
    other = planted_task(corrupted_s4=(9, 9, 9, 9, 1, 1, 1, 1))
    cache = MeansCache(tmp_path)
    st_other = prepare(bridge, other, means_cache=cache)
    (other_path,) = set(tmp_path.glob("*.safetensors")) - {path}
    other_path.replace(path)  # the other task's means under this task's name
    with pytest.warns(MeansCacheWarning, match="stored key differs"):
        st = prepare(bridge, task, means_cache=MeansCache(tmp_path))
    assert not torch.equal(st.values.z[0], st_other.values.z[0])


def test_unwritable_folder_is_a_clear_error(bridge, task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(InputError) as err:
        prepare(bridge, task, means_cache=MeansCache(blocker / "cache"))
    assert err.value.code == "E903" and "--cache-dir" in (err.value.hint or "")


def test_the_folder_comes_from_the_option_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert MeansCache.from_option(None) is None
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    got = MeansCache.from_option(None)
    assert got is not None and got.folder == tmp_path / "env"
    chosen = MeansCache.from_option(str(tmp_path / "opt"))
    assert chosen is not None and chosen.folder == tmp_path / "opt"
