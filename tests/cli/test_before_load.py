"""Everything a command can check about its inputs, outputs and options is checked before a model loads:
a bad one is one "error:" line and exit 2 in well under the seconds a load costs. Also: messages that say
what to do (a static student given to export, --trust against trust=True, Ctrl-C), and the "next:" lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.files import write_csv
from tests.helpers.reviews import tree

WORDS = ("great", "awful", "moving", "dull", "superb")
POOL = [f"the {w} film was {v} ({i})" for i, (w, v) in enumerate((w, v) for w in WORDS for v in reversed(WORDS))]


def _fake_folder(path: Path, config: dict) -> Path:
    """A sealed model folder holding `config` and one weights file: what the checks before a load read."""
    from fewtune.storage.model_folder import write_model_folder

    def payload(folder: Path) -> None:
        (folder / "head.safetensors").write_bytes(b"not loaded by these tests")

    return write_model_folder(path, config, payload, lambda config: "# test\n", overwrite=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("before_load")
    f = type("Files", (), {})()
    f.root = root
    f.classifier = _fake_folder(root / "clf", {"method": "linear-probe", "classes": ["neg", "pos"],
                                               "multi_label": False, "text_pairs": False})
    f.multi = _fake_folder(root / "multi", {"method": "linear-probe", "classes": ["a", "b"], "multi_label": True,
                                            "text_pairs": False})
    f.generator = _fake_folder(root / "gen", {"task": "generate", "params": {}})
    f.lm = _fake_folder(root / "lm", {"task": "lm", "params": {}})
    f.recommender = _fake_folder(root / "rec", {"kind": "recommender", "method": "popularity"})
    f.static = root / "static"
    f.static.mkdir()
    (f.static / "fewtune-static.json").write_text("{}", encoding="utf-8")  # what marks a static student
    f.texts = write_csv(root / "texts.csv", [[t] for t in POOL], header=["text"])
    f.small_pool = write_csv(root / "small.csv", [[t] for t in POOL[:5]], header=["text"])
    f.unknown_labels = write_csv(root / "labels.csv", [[t, "0" if i % 2 else "1"] for i, t in enumerate(POOL)],
                                 header=["text", "label"])  # 0/1 against a model of neg/pos
    f.ratings = write_csv(root / "ratings.csv", [["u1", "m1", 5], ["u2", "m1", 1]], header=["user", "item", "rating"])
    f.corpus = root / "corpus.txt"
    f.corpus.write_text("\n".join(POOL) + "\n", encoding="utf-8")
    f.afile = root / "afile"
    f.afile.write_text("x")  # a file where a folder should be
    f.existing = root / "existing"
    f.existing.mkdir()
    return f


@pytest.fixture
def no_model_loads(monkeypatch):
    """Every way a command loads a model (or starts training) fails the test."""
    import fewtune.backbones
    import fewtune.backbones.loading
    import fewtune.distill.api
    import fewtune.pretrain.loop
    import fewtune.saved_models
    from fewtune import FewShotClassifier, FewShotGenerator
    from fewtune.recommend.api import FewShotRecommender

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the bad input was reported")

    import fewtune.recommend.embeddings  # noqa: F401  (binds load_encoder by name: patched below with the rest)

    originals = {fewtune.saved_models.load_classifier, fewtune.distill.api.load_teacher,
                 fewtune.pretrain.loop.make_accelerator, fewtune.backbones.loading.load_causal_lm,
                 fewtune.backbones.loading.load_encoder}
    # Every module that bound one of them by name (`from ..backbones import load_encoder`), not a list kept by
    # hand that misses the next one.
    for module in [m for name, m in list(sys.modules.items()) if name.split(".")[0] == "fewtune"]:
        for name, value in list(vars(module).items()):
            if callable(value) and any(value is original for original in originals):
                monkeypatch.setattr(module, name, loaded)
    for cls, name in [(FewShotClassifier, "load"), (FewShotGenerator, "load"), (FewShotRecommender, "load"),
                      (FewShotRecommender, "fit")]:
        monkeypatch.setattr(cls, name, loaded)


# (args, what the one error line must say); "{x}" names a path of the `files` fixture.
CASES = {
    "predict-missing-input": (["predict", "{classifier}", "{root}/missing.csv"], ["missing.csv", "no such file"]),
    "predict-missing-column": (["predict", "{classifier}", "{texts}", "--text-col", "review"], ["no column 'review'"]),
    "predict-output-under-a-file": (["predict", "{classifier}", "{texts}", "-o", "{afile}/x.csv"],
                                    ["{afile}/x.csv", "is a file, not a folder"]),
    "predict-output-is-a-folder": (["predict", "{classifier}", "{texts}", "-o", "{existing}"], ["is a folder"]),
    "predict-not-a-model": (["predict", "{existing}", "{texts}"], ["not a fewtune model folder", "fewtune.json", "fewtune train"]),
    "predict-bad-class-prior": (["predict", "{classifier}", "{texts}", "--class-prior", "neg=-1,pos=1"],
                                ["must be positive"]),
    "predict-class-prior-unknown-class": (["predict", "{classifier}", "{texts}", "--class-prior", "refund=1"],
                                          ["'refund' is not one of the model's classes"]),
    "predict-abstain-on-multi-label": (["predict", "{multi}", "{texts}", "--abstain-below", "0.6"],
                                       ["--abstain-below applies to single-label models"]),
    "evaluate-missing-data": (["evaluate", "{classifier}", "--data", "{root}/missing.csv"], ["no such file"]),
    "evaluate-no-label-column": (["evaluate", "{classifier}", "--data", "{texts}"], ["no column 'label'"]),
    "evaluate-unknown-labels": (["evaluate", "{classifier}", "--data", "{unknown_labels}"],
                                ["labels the model does not know", "--allow-unknown-labels"]),
    "evaluate-generator": (["evaluate", "{generator}", "--data", "{texts}"], ["gives no class probabilities"]),
    "suggest-missing-pool": (["suggest", "{classifier}", "--pool", "{root}/missing.csv", "--strategy", "entropy"],
                             ["no such file"]),
    "suggest-bald-without-posterior": (["suggest", "{classifier}", "--pool", "{texts}"],
                                       ["no posterior", "--strategy entropy"]),
    "suggest-n-zero": (["suggest", "{classifier}", "--pool", "{texts}", "-n", "0", "--strategy", "margin"],
                       ["-n must be at least 1"]),
    "export-static-student": (["export", "{static}"], ["static student", "nothing to export"]),
    "export-output-exists": (["export", "{classifier}", "-o", "{existing}"], ["already exists", "--overwrite"]),
    "export-output-under-a-file": (["export", "{classifier}", "-o", "{afile}/onnx"], ["is a file, not a folder"]),
    "export-bad-vocabulary": (["export", "{classifier}", "--vocabulary", "some"], ["--vocabulary must be one of"]),
    "distill-missing-pool": (["distill", "{classifier}", "--unlabeled", "{root}/missing.csv", "-o", "{root}/s", "-q"],
                             ["--unlabeled", "no such file"]),
    "distill-small-pool": (["distill", "{classifier}", "--unlabeled", "{small_pool}", "-o", "{root}/s", "-q"],
                           ["needs at least 20"]),
    "distill-pool-column": (["distill", "{classifier}", "--unlabeled", "{texts}", "--text-col", "review", "-o",
                             "{root}/s", "-q"], ["no column 'review'"]),
    "distill-multi-label-teacher": (["distill", "{multi}", "--unlabeled", "{texts}", "-o", "{root}/s", "-q"],
                                    ["the teacher is multi-label"]),
    "distill-output-under-a-file": (["distill", "{classifier}", "--unlabeled", "{texts}", "-o", "{afile}/s", "-q"],
                                    ["is a file, not a folder"]),
    "generate-max-new-tokens": (["generate", "{generator}", "--prompt", "hi", "--max-new-tokens", "0"],
                                ["--max-new-tokens must be at least 1"]),
    "generate-top-p": (["generate", "{generator}", "--prompt", "hi", "--top-p", "0"], ["--top-p"]),
    "generate-a-classifier": (["generate", "{classifier}", "--prompt", "hi"], ["not a generation model",
                                                                               "fewtune predict"]),
    "generate-missing-model": (["generate", "{root}/nowhere", "--prompt", "hi"], ["no such model folder"]),
    "chat-temperature": (["chat", "{generator}", "--temperature", "-1"], ["--temperature"]),
    "chat-an-lm": (["chat", "{lm}"], ["not a dialogue model", "fewtune generate"]),
    "pretrain-output-under-a-file": (["pretrain", "--corpus", "{corpus}", "-o", "{afile}/lm", "-q"],
                                     ["is a file, not a folder"]),
    "pretrain-missing-corpus": (["pretrain", "--corpus", "{root}/missing.txt", "-o", "{root}/new-lm", "-q"],
                                ["no such file"]),
    "adapt-output-under-a-file": (["adapt", "--backbone", "{st_folder}", "--corpus", "{corpus}", "-o", "{afile}/a",
                                   "-q"], ["is a file, not a folder"]),
    "recommend-missing-history": (["recommend", "{recommender}", "--history", "{root}/missing.csv"],
                                  ["--history", "no such file"]),
    "recommend-not-a-recommender": (["recommend", "{classifier}"], ["not a recommender"]),
    "recommend-train-output-under-a-file": (["recommend", "train", "--ratings", "{ratings}", "-o", "{afile}/r"],
                                            ["is a file, not a folder"]),
    "recommend-train-missing-items": (["recommend", "train", "--ratings", "{ratings}", "--items",
                                       "{root}/missing.csv"], ["--items", "no such file"]),
}


def _fill(text: str, files, st_folder) -> str:
    names = {k: str(v) for k, v in vars(files).items()}
    return text.format(st_folder=st_folder, **names)


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_input_output_or_option_is_one_line_before_any_model_loads(case, files, st_folder, capfd,
                                                                        no_model_loads):
    args, fragments = CASES[case]
    before = tree(files.root)
    r = run_cli(capfd, *(_fill(a, files, st_folder) for a in args), stdin=b"")
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.err and len(r.err_lines) == 1 and r.err_lines[0].startswith("error: "), r.err
    for fragment in fragments:
        assert _fill(fragment, files, st_folder) in r.err_lines[0], r.err_lines[0]
    assert tree(files.root) == before  # nothing written, not even a hidden temporary


def test_predict_from_empty_stdin_is_refused_before_the_model_loads(files, capfd, no_model_loads):
    r = run_cli(capfd, "predict", files.classifier, stdin=b"\n\n")
    assert r.code == 2 and r.err_lines == ["error: stdin: no texts given (one text per line)"], r.err


def test_an_output_folder_without_write_permission_is_named_by_the_output_path(files, tmp_path, capfd, monkeypatch,
                                                                             no_model_loads):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw))
    r = run_cli(capfd, "predict", files.classifier, files.texts, "-o", locked / "x.csv")
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert f"--output {locked / 'x.csv'}: no permission to write in {locked}" in r.err_lines[0]
    assert ".tmp-" not in r.err


def test_a_refused_write_names_the_output_not_its_hidden_temporary(tmp_path, monkeypatch):
    import fewtune.batch
    from fewtune.errors import FewtuneError

    def refused(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(fewtune.batch, "open", refused, raising=False)
    with pytest.raises(FewtuneError) as caught:
        fewtune.batch.write_rows([{"label": "pos"}], output=tmp_path / "out.csv")
    message = str(caught.value)
    assert f"--output {tmp_path / 'out.csv'}: Permission denied" in message and ".tmp-" not in message
    assert tree(tmp_path) == set()


# --- messages that say what to do -------------------------------------------------------------------
def test_export_of_a_static_student_says_it_needs_none(files, capfd):
    r = run_cli(capfd, "export", files.static)
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    line = r.err_lines[0]
    assert "static student" in line and "without torch" in line and "nothing to export" in line
    assert "predict" in line and "serve" in line and "not a fewtune model folder" not in line


def test_the_pickle_refusal_names_trust_in_each_audiences_words(files, tmp_path, capfd, pickle_bert_folder):
    import shutil

    from fewtune import FewShotClassifier
    from fewtune.backbones import load_encoder, resolve_backbone
    from fewtune.errors import ModelFolderError

    folder = Path(shutil.copytree(files.classifier, tmp_path / "m"))
    (folder / "extra.pkl").write_bytes(b"never unpickled")
    with pytest.raises(ModelFolderError) as caught:
        FewShotClassifier.load(folder)
    assert "trust=True" in str(caught.value) and "--trust" not in str(caught.value)
    with pytest.raises(ModelFolderError) as caught:
        load_encoder(resolve_backbone(str(pickle_bert_folder)), device="cpu")
    assert "trust=True" in str(caught.value) and "--trust" not in str(caught.value)

    r = run_cli(capfd, "predict", folder, files.texts)
    assert r.code == 2 and len(r.err_lines) == 1, r.err
    assert "extra.pkl" in r.err and "--trust" in r.err and "trust=True" not in r.err


def test_ctrl_c_says_in_one_line_that_nothing_was_saved(files, tmp_path, capfd, monkeypatch):
    import fewtune.saved_models

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fewtune.saved_models, "load_classifier", interrupted)
    r = run_cli(capfd, "predict", files.classifier, files.texts, "-o", tmp_path / "out.csv")
    assert r.code == 130
    assert r.err_lines == ["interrupted; nothing was saved (outputs are written whole at the end, or not at all)"]
    assert tree(tmp_path) == set()


def test_ctrl_c_in_pretrain_points_at_resume(files, tmp_path, capfd, monkeypatch):
    import fewtune.pretrain.loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fewtune.pretrain.loop, "make_accelerator", interrupted)
    r = run_cli(capfd, "pretrain", "--corpus", files.corpus, "-o", tmp_path / "lm", "-q")
    assert r.code == 130 and len(r.err_lines) == 1 and "--resume" in r.err_lines[0], r.err


# --- distill with the default (encoder) student, from a fresh process; export; the next: lines ---------
def test_distill_cli_default_student_end_to_end_then_export(st_folder, tmp_path, capfd):
    from fewtune import FewShotClassifier

    shots = (["a great film", "wonderful acting", "loved it", "truly superb"],
             ["pos", "pos", "pos", "pos"])
    shots = (shots[0] + ["an awful film", "terrible acting", "hated it", "truly dreadful"], shots[1] + ["neg"] * 4)
    teacher = FewShotClassifier(str(st_folder), "linear-probe", seed=0).fit(*shots).save(tmp_path / "teacher")
    pool = write_csv(tmp_path / "pool.csv", [[t] for t in POOL], header=["text"])
    data = write_csv(tmp_path / "shots.csv", list(zip(*shots)))
    student = tmp_path / "student"
    # A fresh interpreter: the method registry is filled by what the command itself imports (row 1's bug
    # only showed there: "unknown method 'finetune'; available: ").
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "fewtune.cli", "distill", str(teacher), "--unlabeled", str(pool),
                           "--data", str(data), "-o", str(student), "--backbone", str(st_folder), "-p", "epochs=1",
                           "-p", "batch_size=16"], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads((student / "fewtune.json").read_text(encoding="utf-8"))["method"] == "finetune"
    assert f"next: fewtune predict {student} new.csv" in done.stdout
    assert f"fewtune export {student} --format onnx" in done.stdout

    r = run_cli(capfd, "export", student, "-o", tmp_path / "onnx")
    assert r.code == 0, r.err
    assert f"next: fewtune predict {tmp_path / 'onnx'} new.csv" in r.out and f"fewtune serve {tmp_path / 'onnx'}" in r.out
    r = run_cli(capfd, "predict", tmp_path / "onnx", pool, "-q")
    assert r.code == 0 and len(r.out.splitlines()) == len(POOL) + 1, r.err
