"""The Session's own job: per process, a model is loaded once, a task is built (and
filtered) once per model, a prepared state is shared by every file with the same model,
task and ablation set-up; the user's overrides apply to every plan. Counted by wrapping
the functions the caches stand in front of, so a cache that missed would show."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqcirc.errors import InputError
from seqcirc.usecases.session import Options, Session
from tests.mini_circuits import TASK, heads_but_last, last_head, needs_bundled

pytestmark = needs_bundled

FAST: dict[str, Any] = {"prompts": 24, "n_boot": 100}


def _circ(name: str, heads: str, ablation: str = "", task: str = TASK) -> str:
    return (
        task
        + f"""
circuit {name} on seqcirc-mini {{
  {ablation}
  heads {heads}
  expect faithfulness(bound=point) >= -1
}}
"""
    )


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Two files with one task and ablation set-up, and a third that zero-ablates."""
    texts = {
        "a.circ": _circ("a", heads_but_last()),
        "b.circ": _circ("b", last_head()),
        "z.circ": _circ("z", heads_but_last(), "ablate nodes zero"),
    }
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
    return tmp_path / "a.circ", tmp_path / "b.circ", tmp_path / "z.circ"


def _count(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    """Wrap module.name; returns the list of first arguments it was called with."""
    calls: list[Any] = []
    real: Callable[..., Any] = getattr(module, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counting)
    return calls


def test_a_model_is_loaded_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import seqcirc.models.load as load

    monkeypatch.setattr(load, "_CACHE", {})  # a fresh process's cache, restored afterwards
    loads = _count(monkeypatch, load, "_load_folder")
    a, b, _z = _files(tmp_path)
    first = Session(Options(**FAST))
    first.evaluate_file(a)
    first.evaluate_file(b)
    Session(Options(**FAST)).evaluate_file(a)  # a second session in the same process
    assert loads == ["seqcirc-mini"]


def test_tasks_and_prepared_states_are_shared_across_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import seqcirc.claims.evaluate as evaluate
    import seqcirc.tasks.for_model as for_model

    builds = _count(monkeypatch, for_model, "build_task")
    prepares = _count(monkeypatch, evaluate, "prepare")
    a, b, z = _files(tmp_path)
    session = Session(Options(**FAST))
    ra, rb = session.evaluate_file(a), session.evaluate_file(b)
    assert len(builds) == 1 and len(prepares) == 1
    # one prepared state: the full model's per-prompt metric is the same object's values
    assert ra.circuits[0].per_prompt["model"] == rb.circuits[0].per_prompt["model"]
    assert ra.circuits[0].f_circuit != rb.circuits[0].f_circuit
    session.evaluate_file(z)  # same task, another ablation: a state of its own
    assert len(builds) == 1 and len(prepares) == 2
    Session(Options(**FAST)).evaluate_file(a)  # caches belong to a session
    assert len(builds) == 2 and len(prepares) == 3


def test_overrides_apply_to_the_plan(tmp_path: Path) -> None:
    a, _b, _z = _files(tmp_path)
    result = Session(Options(seed=5, **FAST)).evaluate_file(a)
    task = result.circuits[0].task
    assert result.seed == 5 and task["n_prompts"] == 24
    assert task["meta"]["seed"] == 5 and task["meta"]["params"]["prompts"] == 24
    assert len(result.circuits[0].per_prompt["model"]) == 24
    with pytest.raises(InputError) as err:
        Session(Options(only_model="gpt2-small")).evaluate_file(a)
    assert err.value.code == "E404" and "has no circuit on gpt2-small" in err.value.message
    with pytest.raises(InputError) as err:
        Session(Options(prompts=0)).evaluate_file(a)
    assert err.value.code == "E402"


def test_a_filter_that_keeps_nothing_is_the_sessions_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import seqcirc.tasks.for_model as for_model
    from seqcirc.tasks.filtering import FilterReport

    def keeps_none(task: Any, bridge: Any) -> Any:
        kept = np.empty(0, dtype=np.int64)
        return task.subset(kept), FilterReport(kept, task.n_prompts, task.n_prompts, 0, 2.0)

    monkeypatch.setattr(for_model, "model_filter", keeps_none)
    path = tmp_path / "f.circ"
    path.write_text(_circ("f", heads_but_last(), task=TASK + "  filter correct\n"))
    with pytest.raises(InputError) as err:
        Session(Options(**FAST)).evaluate_file(path)
    assert err.value.code == "E403"
    assert err.value.message.startswith("task 'months': the model gets no prompt right")


def test_the_default_session_is_kept_while_the_options_are(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import seqcirc.usecases.session as session_module

    monkeypatch.setattr(session_module, "_DEFAULT_SESSION", None)
    a, b, _z = _files(tmp_path)
    session_module.evaluate(a, **FAST)
    kept = session_module._DEFAULT_SESSION
    session_module.evaluate(b, **FAST)
    assert session_module._DEFAULT_SESSION is kept
    session_module.evaluate(a, seed=4, **FAST)
    assert session_module._DEFAULT_SESSION is not kept
