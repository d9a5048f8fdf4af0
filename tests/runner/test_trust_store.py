"""The trust store on disk: what it accepts, how entries are found and removed, which files it ignores,
and the mode ``auto`` resolves to."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from runner.config import Settings
from runner.errors import RunnerError
from runner.trust.gate import TrustGate
from runner.trust.modes import resolve_mode
from runner.trust.store import TrustStore
from tests.support.signing import issue_signing_cert, make_ca, make_key


@pytest.fixture
def store(tmp_path: Path) -> TrustStore:
    return TrustStore(Settings(root=tmp_path / "root").layout)


def test_add_is_private_idempotent_and_names_by_fingerprint(store: TrustStore, tmp_path: Path) -> None:
    key = make_key(tmp_path)
    entry = store.add(key.public.read_bytes())
    assert (entry.kind, entry.fingerprint, entry.name) == ("key", key.fingerprint, f"key-{key.fingerprint[:16]}")
    assert stat.S_IMODE(Path(entry.path).stat().st_mode) == 0o640
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o750
    assert store.add(key.public.read_bytes(), "another-name") == entry
    assert store.keys() == {key.fingerprint: Path(entry.path)}


def test_ca_certificates_are_trusted_but_not_leaf_certificates(store: TrustStore, tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    entry = store.add(ca.cert_path.read_bytes(), "factory")
    assert entry.kind == "ca" and "Factory Root CA" in str(entry.subject) and entry.not_after
    _key, leaf = issue_signing_cert(ca, tmp_path / "ca")
    with pytest.raises(RunnerError) as info:
        store.add(leaf.read_bytes())
    assert info.value.code == "2013" and "not a CA certificate" in info.value.message
    assert store.cas() == [Path(entry.path)]


@pytest.mark.parametrize("content, words", [
    (None, "private key"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM public key"),
    (b"hello", "not a PEM public key"),
])
def test_refuses_what_is_not_a_public_key(store: TrustStore, tmp_path: Path, content: bytes | None,
                                          words: str) -> None:
    data = content if content is not None else make_key(tmp_path).private.read_bytes()
    with pytest.raises(RunnerError) as info:
        store.add(data)
    assert info.value.code == "2013" and words in info.value.message
    assert store.entries() == []


def test_find_and_remove_by_name_or_fingerprint_prefix(store: TrustStore, tmp_path: Path) -> None:
    first, second = make_key(tmp_path, "a"), make_key(tmp_path, "b")
    store.add(first.public.read_bytes(), "first")
    store.add(second.public.read_bytes(), "second")
    assert store.find(f"sha256:{second.fingerprint[:10]}").name == "second"
    with pytest.raises(RunnerError) as info:
        store.find(first.fingerprint[:4])  # too short to be a fingerprint, and no such name
    assert info.value.code == "2009"
    assert store.remove("first").fingerprint == first.fingerprint
    assert [e.name for e in store.entries()] == ["second"]


def test_files_others_may_write_are_ignored(store: TrustStore, tmp_path: Path) -> None:
    key = make_key(tmp_path)
    entry = store.add(key.public.read_bytes(), "line3")
    Path(entry.path).chmod(0o664)
    (listed,) = store.entries()
    assert not listed.usable and "writable by group or others" in str(listed.problem)
    assert store.keys() == {} and not store.has_any()


def test_auto_resolves_to_require_once_a_key_is_trusted(store: TrustStore, tmp_path: Path) -> None:
    assert resolve_mode("auto", store).name == "warn"
    store.add(make_key(tmp_path).public.read_bytes())
    assert resolve_mode("auto", store).name == "require"
    assert [resolve_mode(m, store).name for m in ("require", "warn", "off")] == ["require", "warn", "off"]


def test_warm_up_loads_the_verifier_unless_trust_is_off(tmp_path: Path) -> None:
    assert TrustGate(Settings(root=tmp_path / "r1", trust_mode="off")).warm_up() is None
    # A fresh interpreter: this one may have imported model-signing already.
    code = ("import sys; from pathlib import Path; from runner.config import Settings; "
            "from runner.trust.gate import TrustGate; "
            "assert 'model_signing' not in sys.modules; "
            f"thread = TrustGate(Settings(root=Path({str(tmp_path / 'r2')!r}))).warm_up(); thread.join(120); "
            "print('model_signing.verifying' in sys.modules, thread.is_alive())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]
