"""What the checksums catch (corruption, a hand edit) and what a signature adds (deliberate tampering)."""

from __future__ import annotations

import json

import pytest

from fewtune import FewShotClassifier, ModelFolderError
from fewtune.storage.integrity import SIGN_KEY_ENV, facts_digest


@pytest.fixture
def saved(tmp_path):
    def save(name: str = "m"):
        return FewShotClassifier(method="majority").fit(["a", "b", "c", "d"], ["neg", "pos", "neg", "pos"]).save(
            tmp_path / name)
    return save


def edit(folder, change, *, rehash: bool = False) -> None:
    config = json.loads((folder / "fewtune.json").read_text())
    change(config)
    if rehash:  # what someone who knows the format does: recompute the checksum of the facts too
        config["facts_sha256"] = facts_digest(config)
    (folder / "fewtune.json").write_text(json.dumps(config))


def rename_class(config) -> None:
    config["classes"] = ["neg", "POSITIVE"]


def test_a_class_renamed_by_hand_is_refused(saved):
    folder = saved()
    edit(folder, rename_class)
    with pytest.raises(ModelFolderError, match="edited since it was saved"):
        FewShotClassifier.load(folder)


def test_without_a_key_a_rehashed_edit_loads_which_is_why_signing_exists(saved):
    folder = saved()
    edit(folder, rename_class, rehash=True)
    assert list(FewShotClassifier.load(folder).classes_) == ["neg", "POSITIVE"]  # the README says so


def test_a_signed_folder_refuses_any_edit_and_unsigned_folders_are_refused_under_a_key(saved, tmp_path, monkeypatch):
    key = tmp_path / "key"
    key.write_text("a secret of more than sixteen bytes")
    unsigned = saved("unsigned")
    monkeypatch.setenv(SIGN_KEY_ENV, str(key))
    signed, intact = saved("signed"), saved("intact")
    assert json.loads((signed / "fewtune.json").read_text())["signature"]["alg"] == "hmac-sha256"
    assert list(FewShotClassifier.load(signed).classes_) == ["neg", "pos"]
    edit(signed, rename_class, rehash=True)
    with pytest.raises(ModelFolderError, match="signature does not match"):
        FewShotClassifier.load(signed)
    with pytest.raises(ModelFolderError, match="not signed"):
        FewShotClassifier.load(unsigned)
    other = tmp_path / "other-key"
    other.write_text("another secret, also long enough")
    monkeypatch.setenv(SIGN_KEY_ENV, str(other))
    with pytest.raises(ModelFolderError, match="signed with another key"):
        FewShotClassifier.load(intact)
    monkeypatch.delenv(SIGN_KEY_ENV)
    assert list(FewShotClassifier.load(intact).classes_) == ["neg", "pos"]  # no key: checksums only
    monkeypatch.setenv(SIGN_KEY_ENV, str(tmp_path / "missing"))
    with pytest.raises(ModelFolderError, match="cannot read the signing key"):
        saved("never")
