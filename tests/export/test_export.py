"""ONNX export (`fewtune export`) and the ONNX Runtime classifier, against the PyTorch model it came from.

Unit tests use conftest's tiny random sentence-transformers backbone; the `integration` tests use the
real MiniLM trained on a few shots of a built-in dataset.
"""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

from fewtune import FewShotClassifier, FewtuneError
from fewtune.cli import main
from fewtune.export import MANIFEST_NAME, OnnxClassifier, export_onnx, is_exported
from tests.helpers.fast import FAST_SETFIT as FAST

POS = ["a great film", "wonderful acting", "loved every minute", "excellent and moving", "truly great", "superb"]
NEG = ["an awful film", "terrible acting", "hated every minute", "boring and dull", "truly awful", "dreadful"]
TEXTS, LABELS = POS + NEG, ["pos"] * len(POS) + ["neg"] * len(NEG)
# Texts a tokenizer can get wrong: accents, punctuation, case, one far past the 512-token limit.
PROBES = ["What a film!", "Café society: naïve, charming — and LONG.", "meh", "x " * 700, "she said \"no\"; 3.5/10"]


@pytest.fixture(scope="module")
def setfit_folder(st_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "setfit"
    FewShotClassifier(str(st_folder), params=FAST, seed=0).fit(TEXTS, LABELS).save(folder)
    return folder


@pytest.fixture(scope="module")
def exported(setfit_folder):
    export_onnx(setfit_folder)
    return setfit_folder.with_name("setfit-onnx")


def max_diff(folder, onnx_folder, texts) -> float:
    torch_p = FewShotClassifier.load(folder).predict_proba(texts)
    onnx_p = OnnxClassifier.load(onnx_folder).predict_proba(texts)
    return float(np.abs(torch_p - onnx_p).max())


# --- fp32: the same probabilities -------------------------------------------------------------------
def test_onnx_probabilities_match_pytorch_in_fp32(setfit_folder, exported):
    assert is_exported(exported) and not is_exported(setfit_folder)
    runtime = OnnxClassifier.load(exported)
    clf = FewShotClassifier.load(setfit_folder)
    texts = TEXTS + PROBES
    assert np.abs(runtime.predict_proba(texts) - clf.predict_proba(texts)).max() <= 1e-4
    assert list(runtime.predict(texts)) == list(clf.predict(texts))
    assert list(runtime.classes_) == list(clf.classes_)
    assert runtime.predict_proba(texts).sum(1) == pytest.approx(np.ones(len(texts)), abs=1e-12)


def test_the_runtime_tokenizes_as_sentence_transformers_does(setfit_folder, exported):
    body = FewShotClassifier.load(setfit_folder).model_.body
    runtime = OnnxClassifier.load(exported)
    want = body.preprocess(PROBES)
    got = runtime.tokenizer_.encode_batch(PROBES)
    assert np.array_equal(np.array([e.ids for e in got]), want["input_ids"].numpy())
    assert np.array_equal(np.array([e.attention_mask for e in got]), want["attention_mask"].numpy())
    assert len(got[3].ids) == runtime.manifest_["tokenizer"]["max_length"]  # truncated as PyTorch truncates


def test_the_folder_carries_tokenizer_labels_and_a_checked_manifest(exported, setfit_folder):
    manifest = json.loads((exported / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["classes"] == ["neg", "pos"] and manifest["activation"] == "softmax"
    assert manifest["model"] == "model.onnx" and manifest["quantization"] is None
    assert manifest["check"]["max_abs_probability_diff"] <= 1e-4
    assert manifest["source"]["method"] == "setfit"
    assert set(manifest["files"]) >= {"model.onnx", "tokenizer/tokenizer.json"}
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


@pytest.mark.parametrize("method,params,kwargs", [
    ("finetune", {"epochs": 1, "batch_size": 8}, {}),
    ("linear-probe", {}, {}),
    ("setfit", FAST, {"calibrate": "temperature", "cv_folds": 2}),
    ("setfit", {**FAST, "class_weight": "balanced"}, {"class_prior": {"pos": 0.9, "neg": 0.1}}),
], ids=["finetune", "linear-probe", "setfit-temperature", "setfit-class-prior"])
def test_every_encoder_method_exports_to_the_same_probabilities(st_folder, tmp_path, method, params, kwargs):
    folder = tmp_path / method
    clf = FewShotClassifier(str(st_folder), method, params=params, seed=0, **kwargs).fit(TEXTS, LABELS)
    clf.save(folder)
    export_onnx(folder, tmp_path / "onnx")
    runtime = OnnxClassifier.load(tmp_path / "onnx")
    if "calibrate" in kwargs:
        assert runtime.temperature_ == pytest.approx(clf.temperature_) and clf.temperature_ != 1.0
    assert np.abs(runtime.predict_proba(PROBES) - clf.predict_proba(PROBES)).max() <= 1e-4
    if "class_prior" in kwargs:  # saved with the model, applied by the runtime, and replaceable in both
        assert runtime.log_prior_ratio_ is not None
        runtime.set_class_prior("neg=0.8,pos=0.2")
        clf.set_class_prior("neg=0.8,pos=0.2")
        assert np.abs(runtime.predict_proba(PROBES) - clf.predict_proba(PROBES)).max() <= 1e-4


def test_multi_label_and_sentence_pair_models_export(st_folder, tmp_path):
    tags = [["plot", "music"] if i % 3 == 0 else ["plot"] if i % 3 == 1 else ["music"] for i in range(len(TEXTS))]
    multi = FewShotClassifier(str(st_folder), params=FAST).fit(TEXTS, tags)
    multi.save(tmp_path / "multi")
    export_onnx(tmp_path / "multi", tmp_path / "multi-onnx")
    runtime = OnnxClassifier.load(tmp_path / "multi-onnx")
    assert runtime.multi_label_ and runtime.manifest_["activation"] == "sigmoid"
    assert np.abs(runtime.predict_proba(PROBES) - multi.predict_proba(PROBES)).max() <= 1e-4
    assert runtime.predict(PROBES).tolist() == multi.predict(PROBES).tolist()

    pairs = [(t, t[::-1]) for t in TEXTS]
    pair = FewShotClassifier(str(st_folder), params=FAST).fit(pairs, LABELS)
    pair.save(tmp_path / "pair")
    export_onnx(tmp_path / "pair", tmp_path / "pair-onnx")
    runtime = OnnxClassifier.load(tmp_path / "pair-onnx")
    probe_pairs = [(t, "and so on") for t in PROBES]
    assert np.abs(runtime.predict_proba(probe_pairs) - pair.predict_proba(probe_pairs)).max() <= 1e-4
    with pytest.raises(FewtuneError, match="pairs"):
        runtime.predict_proba(PROBES)


# --- int8 -------------------------------------------------------------------------------------------
def test_int8_export_is_smaller_and_close(setfit_folder, exported, tmp_path):
    manifest = export_onnx(setfit_folder, tmp_path / "int8", int8=True)
    import onnx

    assert manifest["model"] == "model.int8.onnx" and manifest["quantization"]["weight_type"] == "QInt8"
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8" / "model.int8.onnx")).graph.node]
    assert ops.count("QAttention") == 2 and "MatMulInteger" in ops  # both layers' attention and feed-forward
    assert "Attention" not in ops
    # The first layer's feed-forward output stays in float (its input has outliers).
    assert ops.count("MatMul") == 1 and manifest["quantization"]["kept_in_float"] == [
        "/body/body.0/encoder/layer.0/output/dense/MatMul"]
    assert not (tmp_path / "int8" / "model.onnx").exists()
    runtime = OnnxClassifier.load(tmp_path / "int8")
    assert runtime.runtime == "onnx-int8"
    assert max_diff(setfit_folder, tmp_path / "int8", TEXTS) < 0.05


# --- refusals ---------------------------------------------------------------------------------------
def test_exports_that_cannot_be_faithful_are_refused(st_folder, setfit_folder, exported, tmp_path):
    sampled = FewShotClassifier(str(st_folder), params=FAST, posterior="mc-dropout").fit(TEXTS, LABELS)
    sampled.save(tmp_path / "sampled")
    with pytest.raises(FewtuneError, match="posterior"):
        export_onnx(tmp_path / "sampled", tmp_path / "out")
    with pytest.raises(FewtuneError, match="already an exported folder"):
        export_onnx(exported, tmp_path / "out")
    with pytest.raises(FewtuneError, match="already exists"):
        export_onnx(setfit_folder, exported)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "precious.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FewtuneError, match="not an exported model folder"):
        export_onnx(setfit_folder, tmp_path / "data", overwrite=True)
    assert (tmp_path / "data" / "precious.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "sampled"]


def test_a_damaged_export_is_reported_not_loaded(exported, tmp_path):
    broken = shutil.copytree(exported, tmp_path / "broken")
    with open(broken / "model.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 16)
    with pytest.raises(FewtuneError, match="checksum mismatch"):
        OnnxClassifier.load(broken)
    (broken / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(FewtuneError, match="missing tokenizer/tokenizer.json"):
        OnnxClassifier.load(broken)


# --- the command line -------------------------------------------------------------------------------
def test_cli_exports_and_predicts_with_onnx_runtime(setfit_folder, tmp_path, capfd):
    data = tmp_path / "texts.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["text"], *[[t] for t in TEXTS + PROBES]])
    assert main(["export", str(setfit_folder), "--format", "onnx", "-o", str(tmp_path / "onnx"), "--json"]) == 0
    manifest = json.loads(capfd.readouterr().out)
    assert manifest["output"] == str(tmp_path / "onnx")
    outputs = []
    for model in (setfit_folder, tmp_path / "onnx"):
        assert main(["predict", str(model), str(data), "-q", "--abstain-below", "0.6"]) == 0
        outputs.append(list(csv.DictReader(io.StringIO(capfd.readouterr().out))))
    torch_rows, onnx_rows = outputs
    assert [r["text"] for r in onnx_rows] == TEXTS + PROBES
    for a, b in zip(torch_rows, onnx_rows):
        assert float(a["p_pos"]) == pytest.approx(float(b["p_pos"]), abs=1e-4)
    assert main(["export", str(setfit_folder), "--format", "tflite"]) == 2
    assert "--format must be onnx" in capfd.readouterr().err


def test_predicting_with_an_export_never_imports_torch(exported, tmp_path):
    import subprocess
    import sys

    (tmp_path / "in.csv").write_text("text\nwhat a film\n", encoding="utf-8")
    script = ("import sys; from fewtune.cli import main; code = main(['predict', sys.argv[1], sys.argv[2], '-q']); "
              "print('torch' in sys.modules, file=sys.stderr); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, str(exported), str(tmp_path / "in.csv")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False"
    assert done.stdout.splitlines()[1].startswith("what a film,")


# --- the real backbone ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_bbc(tmp_path_factory):
    """Real setfit on the default encoder (me5-small), 8 BBC articles per topic, texts cut at 128 tokens, exported
    in fp32 and int8. A fixed head (head_c=1): what int8 loses is the encoder's rounding; the default's chosen head
    trains 4 setfits more, and is not held to this bound (README "ONNX export")."""
    from fewtune.data import load_builtin, sample_k_shot

    pool, test = load_builtin("bbc")
    shots = pool.subset(sample_k_shot(pool.labels, 8, seed=0))
    folder = tmp_path_factory.mktemp("minilm") / "bbc"
    FewShotClassifier(params={"max_tokens": 128, "head_c": 1}, seed=0).fit(shots.texts, shots.labels).save(folder)
    export_onnx(folder)
    export_onnx(folder, int8=True)
    return folder, test


@pytest.mark.integration
def test_minilm_setfit_onnx_matches_pytorch_in_fp32(minilm_bbc):
    folder, test = minilm_bbc
    assert max_diff(folder, folder.with_name("bbc-onnx"), test.texts[:100] + PROBES) <= 1e-4


@pytest.mark.integration
def test_minilm_int8_loses_at_most_half_a_point_of_accuracy_on_bbc(minilm_bbc):
    folder, test = minilm_bbc  # 475 held-out articles: one prediction is 0.21 points
    torch_acc = FewShotClassifier.load(folder).score(test.texts, test.labels)
    int8_acc = OnnxClassifier.load(folder.with_name("bbc-onnx-int8")).score(test.texts, test.labels)
    assert torch_acc > 0.8
    assert int8_acc >= torch_acc - 0.005
