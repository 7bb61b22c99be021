"""One name per setting across methods (issue 37): a setting's old name still works, with a one-line
warning; giving both names is a one-line error; a model saved under the old names loads silently to the
same predictions."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from fewtune import FewShotClassifier, FewShotGenerator, FewtuneError
from fewtune.generation.generator import GenerationParams
from fewtune.methods import get_method
from fewtune.params import RenamedParamWarning
from fewtune.pretrain.params import AdaptParams, PretrainParams
from fewtune.recommend.methods import get_recommender
from fewtune.selection import parse_grid
from fewtune.storage.integrity import facts_digest
from tests.helpers import synthetic
from tests.helpers.cli import run_cli

RENAMED = [  # (params class, old name, new name, a value, what else the old name says in new names)
    *[(get_method(m).params_class, "max_seq_length", "max_tokens", 64, {})
      for m in ("setfit", "linear-probe", "finetune")],
    # hybrid's and auto's encoder limit, beside which their LM part kept its own 256
    *[(get_method(m).params_class, "max_seq_length", "max_tokens", 64, {"lm_max_tokens": 256})
      for m in ("hybrid", "auto")],
    *[(get_method(m).params_class, "max_text_tokens", "max_tokens", 64, {}) for m in ("zero-shot", "icl", "prompt")],
    *[(get_method(m).params_class, "max_text_tokens", "lm_max_tokens", 64, {}) for m in ("hybrid", "auto")],
    (get_method("setfit").params_class, "body_lr", "learning_rate", 1e-4, {}),
    (get_method("setfit").params_class, "head_lr", "head_learning_rate", 0.5, {}),
    (get_method("finetune").params_class, "lr", "learning_rate", 1e-4, {}),
    (get_method("finetune").params_class, "head_lr", "head_learning_rate", 0.5, {}),
    (get_method("prompt").params_class, "lr", "learning_rate", 1e-4, {}),
    (get_method("zero-shot").params_class, "calibration", "score_calibration", "none", {}),
    (get_method("prompt").params_class, "calibration", "score_calibration", "none", {}),
    (get_method("hybrid").params_class, "calibration", "score_calibration", "none", {}),
    (get_method("icl").params_class, "calibration", "score_calibration", "none", {}),
    (get_method("icl").params_class, "calibrate", "contextual_calibration", False, {}),
    (GenerationParams, "lr", "learning_rate", 1e-4, {}),
    (GenerationParams, "max_length", "max_tokens", 64, {}),
    (get_recommender("mf").params_class, "lr", "learning_rate", 0.1, {}),
    (get_recommender("tallrec").params_class, "lr", "learning_rate", 1e-4, {}),
    (PretrainParams, "lr", "learning_rate", 1e-4, {}),
    (AdaptParams, "lr", "learning_rate", 1e-4, {}),
]


@pytest.mark.parametrize("cls, old, new, value, also", RENAMED, ids=lambda x: getattr(x, "__name__", str(x)))
def test_an_old_name_gives_the_same_value_with_a_one_line_warning(cls, old, new, value, also):
    with pytest.warns(RenamedParamWarning) as caught:
        params = cls.from_dict({old: str(value) if not isinstance(value, str) else value})  # as -p gives it
    assert [str(w.message) for w in caught] == [f"{old} is now {new}; the old name will be removed"]
    assert getattr(params, new) == value
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenamedParamWarning)
        assert params == cls.from_dict({new: value, **also})  # the new name: no warning
    with pytest.raises(FewtuneError, match=f"^give {new} only: {old} is its old name"):
        cls.from_dict({old: value, new: value})


def test_finetune_has_one_learning_rate_whose_default_follows_lora():
    p = get_method("finetune").params_class
    assert p().trained_learning_rate() == 2e-5 and p(lora=True).trained_learning_rate() == 5e-4  # as lr, lora_lr were
    assert p(lora=True, learning_rate=1e-3).trained_learning_rate() == 1e-3
    with pytest.warns(RenamedParamWarning, match="^lr and lora_lr are now learning_rate"):
        # Saved by an older fewtune, both rates are there; lora said which one trained.
        assert p.from_dict({"lr": 2e-5, "lora_lr": 1e-2, "lora": "true"}).learning_rate == 1e-2
        assert p.from_dict({"lr": 1e-4, "lora_lr": 5e-4, "lora": False}).learning_rate == 1e-4
    with pytest.warns(RenamedParamWarning):
        ignored = p.from_dict({"lr": 1e-4, "lora": True})  # lr never reached LoRA adapters: the default stays
    assert ignored.learning_rate == 0 and ignored.trained_learning_rate() == 5e-4


@pytest.mark.parametrize("method", ["hybrid", "auto"])
def test_the_encoder_and_lm_limits_of_hybrid_and_auto_keep_what_each_part_read(method):
    p = get_method(method).params_class
    assert (p().max_tokens, p().lm_max_tokens) == (0, 0)  # each part's own: the encoder's limit, 256 for the LM

    def load(values):
        loaded = p.from_dict(values, method=method, warn_renamed=False)
        return loaded.max_tokens, loaded.lm_max_tokens

    assert load({"max_seq_length": 0, "max_text_tokens": 256}) == (0, 0)  # the old defaults, as a saved model has them
    assert load({"max_seq_length": 128, "max_text_tokens": 128}) == (128, 0)  # as bench's --max-seq-length set them
    assert load({"max_seq_length": 0, "max_text_tokens": 64}) == (0, 64)
    assert load({"max_seq_length": 128, "max_text_tokens": 256}) == (128, 256)  # the LM kept its 256
    assert load({"max_seq_length": 128, "max_text_tokens": 64}) == (128, 64)
    assert load({"max_seq_length": "128"}) == (128, 256)  # as -p gives it; the LM kept its 256
    with pytest.raises(FewtuneError, match="^give lm_max_tokens only: max_text_tokens is its old name"):
        load({"max_text_tokens": 64, "lm_max_tokens": 32})


def test_hybrid_lm_part_reads_256_tokens_unless_a_limit_says_otherwise():
    from fewtune.methods.hybrid import HybridParams, _zero_shot_params

    assert _zero_shot_params(HybridParams()).max_tokens == 256
    assert _zero_shot_params(HybridParams(max_tokens=32)).max_tokens == 32
    assert _zero_shot_params(HybridParams(max_tokens=32, lm_max_tokens=256)).max_tokens == 256


def test_auto_hands_each_candidate_its_part_of_the_limits():
    from fewtune.methods.auto import AutoParams, _candidate_params

    p = AutoParams(max_tokens=32, lm_max_tokens=200)
    assert _candidate_params("setfit", p, None)["max_tokens"] == 32
    assert _candidate_params("zero-shot", p, None)["max_tokens"] == 200
    assert {k: _candidate_params("hybrid", p, None)[k] for k in ("max_tokens", "lm_max_tokens")} == {
        "max_tokens": 32, "lm_max_tokens": 200}
    assert _candidate_params("zero-shot", AutoParams(max_tokens=32), None)["max_tokens"] == 32


def test_set_params_and_grids_take_either_name():
    clf = FewShotClassifier(method="setfit", params={"max_seq_length": 64, "steps": 2})
    clf.set_params(params__max_tokens=32)
    assert clf.params == {"max_tokens": 32, "steps": 2}
    with pytest.warns(RenamedParamWarning):
        clf.set_params(params__body_lr=1e-4)
    assert clf.params == {"max_tokens": 32, "steps": 2, "learning_rate": 1e-4}
    setfit = get_method("setfit").params_class
    with pytest.warns(RenamedParamWarning, match="^body_lr is now learning_rate"):
        assert parse_grid(["body_lr=1e-4,2e-5"], setfit, "setfit", base={"max_seq_length": 64}) == {
            "learning_rate": [1e-4, 2e-5]}


# --- the command line ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    from tests.helpers.files import write_csv

    return write_csv(tmp_path_factory.mktemp("shots") / "shots.csv", zip(*synthetic.make(per_class=8)))


def test_the_cli_says_an_old_name_in_one_line_and_refuses_both(shots, st_folder, capfd):
    r = run_cli(capfd, "train", "--data", shots, "--backbone", st_folder, "-p", "max_seq_length=16", "-p", "nope=1")
    assert r.code == 2 and "Traceback" not in r.err
    assert r.err_lines[0] == "warning: max_seq_length is now max_tokens; the old name will be removed", r.err
    assert r.err_lines[1].startswith("error: unknown parameter(s) nope") and len(r.err_lines) == 2, r.err
    r = run_cli(capfd, "train", "--data", shots, "--backbone", st_folder, "-p", "max_seq_length=16",
                "-p", "max_tokens=8")
    assert r.code == 2 and r.err_lines == ["error: give max_tokens only: max_seq_length is its old name "
                                           "(method 'setfit')"], r.err


def test_bench_reads_its_old_flag_with_a_warning(capfd):
    r = run_cli(capfd, "bench", "--max-seq-length", "16", "--print-config")
    assert r.code == 0 and "max_tokens: 16" in r.out and "max_seq_length" not in r.out
    assert r.err_lines == ["warning: --max-seq-length is now --max-tokens; the old name will be removed"]


# --- models saved under the old names -----------------------------------------------------------
def with_old_names(saved, renames: dict[str, str], gone: dict | None = None):
    """A copy of the model folder `saved` whose fewtune.json has the params as a fewtune of before the renames
    wrote them (new name -> old; `gone`: old settings that have no new name of their own), its facts
    checksum consistent again."""
    folder = saved.with_name(saved.name + "-old-names")
    shutil.copytree(saved, folder)
    config = json.loads((folder / "fewtune.json").read_text())
    params = config["params"]
    for new, old in renames.items():
        params[old] = params.pop(new)
    params.update(gone or {})
    config["facts_sha256"] = facts_digest(config)
    (folder / "fewtune.json").write_text(json.dumps(config, indent=2))
    return folder


def load_both(load, saved, old):
    """The model folder as saved and its old-names copy, loaded; the old names without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenamedParamWarning)
        return load(saved), load(old)


def same_predictions(new, old, clf, X) -> None:
    """Identical to the folder as saved, bit for bit; as the trained model, up to the save's rounding."""
    assert old.model_.params == new.model_.params == clf.model_.params
    np.testing.assert_array_equal(old.predict_proba(X), new.predict_proba(X))
    np.testing.assert_allclose(old.predict_proba(X), clf.predict_proba(X), atol=1e-6)


def test_a_setfit_model_saved_with_old_names_loads_to_the_same_predictions(st_folder, tmp_path):
    X, y = synthetic.make(per_class=8)
    Xt, _ = synthetic.held_out()
    params = {"steps": 4, "batch_size": 8, "learning_rate": 1e-3, "max_tokens": 6, "head": "differentiable",
              "head_epochs": 1, "head_learning_rate": 0.5}
    clf = FewShotClassifier(backbone=str(st_folder), params=params, seed=0).fit(X, y)
    folder = clf.save(tmp_path / "m")
    old = with_old_names(folder, {"learning_rate": "body_lr", "max_tokens": "max_seq_length",
                                  "head_learning_rate": "head_lr"})
    new, loaded = load_both(FewShotClassifier.load, folder, old)
    assert loaded.params["max_tokens"] == 6 and "max_seq_length" not in loaded.params
    same_predictions(new, loaded, clf, Xt)


def test_a_lora_finetune_model_saved_with_old_names_keeps_its_rate(st_folder, tmp_path):
    X, y = synthetic.make(per_class=8)
    Xt, _ = synthetic.held_out()
    clf = FewShotClassifier(backbone=str(st_folder), method="finetune", seed=0, params={
        "epochs": 2, "lora": True, "learning_rate": 1e-2, "head_learning_rate": 1e-2, "max_tokens": 6}).fit(X, y)
    folder = clf.save(tmp_path / "m")
    old = with_old_names(folder, {"learning_rate": "lora_lr", "head_learning_rate": "head_lr",
                                  "max_tokens": "max_seq_length"}, gone={"lr": 2e-5})
    same_predictions(*load_both(FewShotClassifier.load, folder, old), clf, Xt)


@pytest.mark.parametrize("method, params, renames", [
    # A short limit, so that losing it on load would change what the LM reads.
    ("zero-shot", {"max_tokens": 2, "score_calibration": "none"},
     {"max_tokens": "max_text_tokens", "score_calibration": "calibration"}),
    ("icl", {"max_tokens": 2, "contextual_calibration": False, "separator": " . "},
     {"max_tokens": "max_text_tokens", "contextual_calibration": "calibrate", "score_calibration": "calibration"}),
])
def test_a_label_word_model_saved_with_old_names_loads_to_the_same_predictions(llama_folder, tmp_path, method, params,
                                                                              renames):
    X = ["this movie was great and fun", "great movie , loved it", "it was great", "a great film",
         "this movie was terrible", "awful", "it was terrible", "a terrible film"]
    y = ["pos"] * 4 + ["neg"] * 4
    clf = FewShotClassifier(backbone=str(llama_folder), method=method, seed=0, params={
        "template": "{text} overall it was", "label_words": "neg=terrible,pos=great", **params}).fit(X, y)
    folder = clf.save(tmp_path / "m")
    old = with_old_names(folder, renames)
    same_predictions(*load_both(FewShotClassifier.load, folder, old), clf, X)


@pytest.mark.parametrize("limits", [{"max_tokens": 0, "lm_max_tokens": 0}, {"max_tokens": 3, "lm_max_tokens": 256}])
def test_a_hybrid_model_saved_with_both_old_limits_loads_to_the_same_predictions(st_folder, chat_llama_folder,
                                                                                  tmp_path, limits):
    X, y = synthetic.make(per_class=8)
    Xt, _ = synthetic.held_out()
    clf = FewShotClassifier(backbone=str(st_folder), method="hybrid", params={
        "lm": str(chat_llama_folder), "choose_by_cv": False, **limits}).fit(X, y)
    folder = clf.save(tmp_path / "m")
    assert {k: json.loads((folder / "fewtune.json").read_text())["params"][k] for k in limits} == limits
    # As saved before the rename: the encoder's max_seq_length beside the LM's max_text_tokens (256 by default).
    old = with_old_names(folder, {"max_tokens": "max_seq_length", "lm_max_tokens": "max_text_tokens"},
                         gone={"max_text_tokens": limits["lm_max_tokens"] or 256})
    new, loaded = load_both(FewShotClassifier.load, folder, old)
    assert loaded.model_.lm.params.max_tokens == (limits["lm_max_tokens"] or 256)  # what the LM part read in training
    same_predictions(new, loaded, clf, Xt)


def test_a_generator_saved_with_old_names_loads_unchanged(chat_llama_folder, tmp_path):
    pairs = [("hello how are you", "i am fine thanks"), ("what did you do today", "i went to the park")]
    gen = FewShotGenerator(str(chat_llama_folder), params={"learning_rate": 1e-2, "epochs": 2, "max_tokens": 24},
                           show_progress=False).fit(pairs)
    folder = gen.save(tmp_path / "m")
    new, again = load_both(FewShotGenerator.load, folder, with_old_names(folder, {"learning_rate": "lr",
                                                                                   "max_tokens": "max_length"}))
    assert again.params == new.params == gen.params and again.format.max_length == 24
    assert again.perplexity(pairs) == new.perplexity(pairs) == pytest.approx(gen.perplexity(pairs), rel=1e-6)
