"""ActivationStore: active/<pid>.json files, history and rollback bookkeeping (real files, real locks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.errors import RunnerError
from runner.routing.activation import HISTORY_LIMIT, ActivationStore
from runner.store.layout import RootLayout


@pytest.fixture
def store(tmp_path: Path) -> ActivationStore:
    layout = RootLayout(tmp_path / "root")
    layout.ensure()
    return ActivationStore(layout)


def test_bind_writes_spec_shaped_active_file(store: ActivationStore) -> None:
    [binding] = store.bind(["P1"], "algo", "1.0.0")
    body = json.loads(store.layout.active_file("P1").read_text())
    assert body == {"name": "algo", "version": "1.0.0", "activated_at": binding.activated_at}
    assert binding.activated_at.endswith("Z")
    assert store.get("P1") == binding
    assert store.get("P2") is None


def test_pids_sharing_a_file_name_are_refused(store: ActivationStore) -> None:
    store.bind(["line 2"], "algo", "1.0.0")
    with pytest.raises(RunnerError) as info:
        store.bind(["line_2"], "algo", "1.0.0")
    assert info.value.code == "2013"
    assert list(store.all()) == ["line 2"]


def test_unsafe_pid_is_refused(store: ActivationStore) -> None:
    with pytest.raises(RunnerError) as info:
        store.bind(["../evil"], "algo", "1.0.0")
    assert info.value.code == "2013"
    assert not any(store.layout.active.glob("*.json"))


def test_pid_with_odd_characters_round_trips(store: ActivationStore) -> None:
    store.bind(["line 2:A"], "algo", "1.0.0")
    assert list(store.all()) == ["line 2:A"]


def test_history_appends_and_refreshes(store: ActivationStore) -> None:
    store.bind(["P1"], "algo", "1.0.0")
    store.bind(["P1"], "algo", "2.0.0")
    store.bind(["P1"], "algo", "2.0.0")  # re-activation refreshes, no duplicate entry
    assert [b.version for b in store.history("P1")] == ["1.0.0", "2.0.0"]
    assert store.ever_bound() == {("algo", "1.0.0"), ("algo", "2.0.0")}
    assert store.last_used("algo", "2.0.0") >= store.last_used("algo", "1.0.0") > ""
    assert store.last_used("algo", "9") == ""


def test_history_is_bounded(store: ActivationStore) -> None:
    for i in range(HISTORY_LIMIT + 5):
        store.bind(["P1"], "algo", f"{i}.0")
    history = store.history("P1")
    assert len(history) == HISTORY_LIMIT
    assert history[-1].version == f"{HISTORY_LIMIT + 4}.0"


def test_unbind_keeps_history(store: ActivationStore) -> None:
    store.bind(["P1", "P2"], "algo", "1")
    assert store.unbind(["P1", "P3"]) == ["P1"]
    assert store.get("P1") is None
    assert list(store.all()) == ["P2"]
    assert [b.version for b in store.history("P1")] == ["1"]


def test_damaged_active_file_reads_as_unbound(store: ActivationStore) -> None:
    store.bind(["P1"], "algo", "1")
    store.layout.active_file("P1").write_text("{not json")
    assert store.get("P1") is None
    assert store.all() == {}
    store.bind(["P1"], "algo", "2")
    assert store.get("P1") is not None


def test_failed_write_restores_previous_bindings(store: ActivationStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.bind(["P1", "P2"], "algo", "1")
    from runner.routing import activation

    real = activation.commit_staged
    calls = {"n": 0}

    def flaky(tmp: Path, path: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # P1 fully written (history + active), then P2's history fails
            raise OSError("rename failed")
        real(tmp, path)

    monkeypatch.setattr(activation, "commit_staged", flaky)
    with pytest.raises(OSError):
        store.bind(["P1", "P2"], "algo", "2")
    monkeypatch.setattr(activation, "commit_staged", real)
    assert {p: b.version for p, b in store.all().items()} == {"P1": "1", "P2": "1"}
    assert [b.version for b in store.history("P1")] == ["1"]
