"""Session values and the adapter's SessionStore (LRU bound, explicit end, reset hook)."""

from __future__ import annotations

import pytest

from procvision_algorithm_sdk import Session
from procvision_algorithm_sdk.adapter.sessions import SessionStore


def test_session_get_set_delete_exists() -> None:
    s = Session("s1", {"trace_id": "t"})
    assert s.id == "s1"
    assert s.get("missing") is None and s.get("missing", 3) == 3
    s.set("rects", [{"x": 1, "y": 2}])
    assert s.exists("rects") and s.get("rects") == [{"x": 1, "y": 2}]
    assert s.delete("rects") is True
    assert s.delete("rects") is False
    assert not s.exists("rects")


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", float("nan")])
def test_session_rejects_non_json_values(value: object) -> None:
    s = Session("s1")
    with pytest.raises(TypeError, match="JSON"):
        s.set("k", value)
    assert not s.exists("k")


def test_session_context_is_a_read_only_copy() -> None:
    ctx: dict = {"trace_id": "t", "nested": {"a": 1}}
    s = Session("s1", ctx)
    ctx["nested"]["a"] = 2  # the caller's dict changing later does not leak in
    view = s.context
    view["nested"]["a"] = 99
    view["new"] = True
    assert s.context == {"trace_id": "t", "nested": {"a": 1}}


def test_store_keeps_state_between_lookups_and_updates_context() -> None:
    ended: list[str] = []
    store = SessionStore(lambda s: ended.append(s.id), capacity=4)
    first = store.get("a", {"trace_id": "1"})
    first.set("k", 1)
    again = store.get("a", {"trace_id": "2"})
    assert again is first and again.get("k") == 1
    assert again.context == {"trace_id": "2"}
    assert store.get("a", {}).context == {"trace_id": "2"}  # empty context keeps the last one
    assert ended == []


def test_store_evicts_least_recently_used_and_resets_it() -> None:
    ended: list[str] = []
    store = SessionStore(lambda s: ended.append(s.id), capacity=2)
    store.get("a").set("k", "a")
    store.get("b")
    store.get("a")  # touch: b is now the oldest
    store.get("c")
    assert ended == ["b"]
    assert "a" in store and "c" in store and "b" not in store
    assert len(store) == 2
    assert store.get("b").get("k") is None  # a new session, state gone
    assert ended == ["b", "a"]


def test_store_end_and_clear_call_the_hook_once_per_session() -> None:
    ended: list[str] = []
    store = SessionStore(lambda s: ended.append(s.id), capacity=8)
    for sid in ("a", "b", "c"):
        store.get(sid)
    assert store.end("b") is True
    assert store.end("b") is False
    store.clear()
    assert sorted(ended) == ["a", "b", "c"] and ended[0] == "b"
    assert len(store) == 0


def test_store_rejects_zero_capacity() -> None:
    with pytest.raises(ValueError):
        SessionStore(lambda s: None, capacity=0)
