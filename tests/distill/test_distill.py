"""`fewtune distill`: a saved teacher labels a pool, an encoder or static student learns it.

Unit tests use conftest's tiny random encoder for teacher and students (and its static table, which
model2vec distills in seconds); the `integration` test distills a real MiniLM teacher on mr.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from fewtune import FewShotClassifier, FewtuneError
from fewtune.cli import main
from fewtune.data import DataWarning
from fewtune.distill import distill
from fewtune.distill.pool import warn_if_foreign, warn_if_one_sided
from fewtune.distill.students import fit_static_head
from fewtune.export.static import StaticClassifier, is_static
from fewtune.saved_models import load_classifier

POS = ["a great film", "wonderful acting", "loved every minute", "excellent and moving", "truly great", "superb"]
NEG = ["an awful film", "terrible acting", "hated every minute", "boring and dull", "truly awful", "dreadful"]
SHOTS = (POS + NEG, ["pos"] * len(POS) + ["neg"] * len(NEG))
FAST = {"epochs": 1, "batch_size": 16}


def pool_texts(n: int) -> list[str]:
    words = ["great", "awful", "moving", "dull", "superb", "dreadful", "fine", "boring", "lovely", "bad"]
    rng = np.random.default_rng(0)
    return [f"the {rng.choice(words)} film was {rng.choice(words)} and {rng.choice(words)} ({i})" for i in range(n)]


def write_pool(path, texts, column="text"):
    import csv

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([column])
        writer.writerows([t] for t in texts)
    return path


@pytest.fixture(scope="module")
def teacher(st_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("distill") / "teacher"
    FewShotClassifier(str(st_folder), "linear-probe", seed=0).fit(*SHOTS).save(folder)
    return folder


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return write_pool(tmp_path_factory.mktemp("pool") / "pool.csv", pool_texts(220))


@pytest.fixture(scope="module")
def encoder_student(teacher, pool, st_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("students") / "encoder"
    result = distill(teacher, pool, out, backbone=str(st_folder), shots=SHOTS, params=FAST)
    return out, result


@pytest.fixture(scope="module")
def static_student(teacher, pool, st_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("students") / "static"
    result = distill(teacher, pool, out, student="static", backbone=str(st_folder), shots=SHOTS)
    return out, result


# --- the encoder student ----------------------------------------------------------------------------
def test_the_encoder_student_is_a_finetune_model_whose_card_names_its_teacher_and_pool(encoder_student, teacher):
    out, result = encoder_student
    student = FewShotClassifier.load(out)
    assert student.method == "finetune" and list(student.classes_) == ["neg", "pos"]
    texts = pool_texts(20)
    proba = student.predict_proba(texts)
    assert list(student.predict(texts)) == list(student.classes_[proba.argmax(1)])
    np.testing.assert_array_equal(FewShotClassifier.load(out).predict_proba(texts), proba)
    info = json.loads((out / "fewtune.json").read_text())["training"]["distillation"]
    assert info["teacher"]["folder"] == "teacher" and info["teacher"]["method"] == "linear-probe"
    assert info["pool"]["n_texts"] == 220 and info["pool"]["n_heldout"] == 22 and info["pool"]["n_train"] == 198
    assert info["n_shots"] == 12 and info["shot_repeats"] == 2 and info["heldout"]["n"] == 22
    assert 0.0 <= info["heldout"]["agreement"] <= 1.0 and result["pool"]["sha256"] == info["pool"]["sha256"]
    card = (out / "README.md").read_text()
    assert "Distilled from a teacher" in card and info["pool"]["sha256"][:16] in card and "held-out pool texts" in card


def test_the_encoder_student_exports_to_onnx(encoder_student, tmp_path):
    from fewtune.export import OnnxClassifier, export_onnx

    out, _ = encoder_student
    export_onnx(out, tmp_path / "onnx")
    texts = pool_texts(10)
    np.testing.assert_allclose(OnnxClassifier.load(tmp_path / "onnx").predict_proba(texts),
                               FewShotClassifier.load(out).predict_proba(texts), atol=1e-4)


def test_a_second_student_reuses_the_teachers_labels(teacher, pool, st_folder, encoder_student, tmp_path):
    result = distill(teacher, pool, tmp_path / "again", backbone=str(st_folder), shots=SHOTS, params=FAST)
    assert result["seconds"]["teacher_labels_cached"] is True
    assert encoder_student[1]["seconds"]["teacher_labels_cached"] is False
    # The same labels, the same seed: the same student.
    texts = pool_texts(8)
    np.testing.assert_allclose(FewShotClassifier.load(tmp_path / "again").predict_proba(texts),
                               FewShotClassifier.load(encoder_student[0]).predict_proba(texts), atol=1e-6)


def test_self_training_runs_a_round_per_student(teacher, pool, st_folder, tmp_path):
    result = distill(teacher, pool, tmp_path / "st", student="static", backbone=str(st_folder), rounds=2)
    assert result["rounds"] == 2 and [h["round"] for h in result["history"]] == [1, 2]
    assert "self-training" in (tmp_path / "st" / "README.md").read_text()


# --- the static student -----------------------------------------------------------------------------
def test_the_static_student_is_safetensors_and_json_and_predicts_consistently(static_student):
    out, result = static_student
    assert is_static(out) and {p.suffix for p in out.rglob("*") if p.is_file()} == {".json", ".safetensors", ".md"}
    model = load_classifier(out)
    assert isinstance(model, StaticClassifier) and list(model.classes_) == ["neg", "pos"]
    texts = pool_texts(30)
    proba = model.predict_proba(texts)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-12)
    assert list(model.predict(texts)) == list(model.classes_[proba.argmax(1)])
    manifest = json.loads((out / "fewtune-static.json").read_text())
    assert manifest["training"]["distillation"]["pool"]["n_texts"] == 220 and manifest["backbone"]["kind"] == "static"
    assert "Distilled from a teacher" in (out / "README.md").read_text()


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_static_head_reproduces_a_teachers_probabilities(n_classes):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 8))
    w0, b0 = rng.standard_normal((n_classes, 8)), rng.standard_normal(n_classes)
    z = x @ w0.T + b0
    soft = np.exp(z - z.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    weight, bias, info = fit_static_head(x[:500], soft[:500], x[500:], soft[500:], seed=0)
    z = x[500:] @ weight.T + bias
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert 0.5 * np.abs(p - soft[500:]).sum(1).mean() < 0.03  # mean total variation to the teacher
    assert info["C"] >= 10  # noise-free soft labels: the weakest L2 penalties fit best


def test_predicting_with_a_static_student_never_imports_torch(static_student, tmp_path):
    out, _ = static_student
    (tmp_path / "in.csv").write_text("text\nwhat a great film\n", encoding="utf-8")
    script = ("import sys; from fewtune.cli import main; code = main(['predict', sys.argv[1], sys.argv[2], '-q']); "
              "print('torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, str(out), str(tmp_path / "in.csv")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False False"
    row = done.stdout.splitlines()[1].split(",")
    assert row[0] == "what a great film" and row[1] in ("neg", "pos")


def test_serve_takes_a_static_student(static_student):
    from fastapi.testclient import TestClient

    from fewtune.serve import create_app

    out, _ = static_student
    texts = ["what a great film", "so boring"]
    want = load_classifier(out).predict_proba(texts)
    with TestClient(create_app({"fast": out}, teach=False)) as client:
        assert client.get("/info/fast").json()["runtime"] == "static"
        body = client.post("/predict", json={"model": "fast", "texts": texts}).json()
    assert body["runtime"] == "static"
    for row, p in zip(body["predictions"], want):
        assert row["probabilities"]["pos"] == pytest.approx(p[1], abs=1e-6)


def test_a_tampered_static_student_is_refused(static_student, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(static_student[0], copy)
    with open(copy / "head.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\0\0\0\1")
    with pytest.raises(FewtuneError, match="checksum mismatch"):
        load_classifier(copy)


# --- bad input: one line, exit 2, nothing written ---------------------------------------------------
def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(["distill", *map(str, args), "-q"])
    return code, capsys.readouterr().err


def nothing_written(out) -> bool:
    return not out.exists() and not list(out.parent.glob(f".{out.name}.tmp-*"))


@pytest.mark.parametrize("rows, column, expected", [
    ([], "text", "no examples"),
    (pool_texts(5), "text", "needs at least 20"),
    (pool_texts(50), "sentence", "'text'"),
])
def test_a_bad_pool_gets_one_line(capsys, teacher, tmp_path, rows, column, expected):
    pool = write_pool(tmp_path / "p.csv", rows, column)
    code, err = run_cli(capsys, teacher, "--unlabeled", pool, "-o", tmp_path / "out")
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert nothing_written(tmp_path / "out")


def test_a_small_pool_is_warned_about(teacher, st_folder, tmp_path):
    pool = write_pool(tmp_path / "p.csv", pool_texts(40))
    with pytest.warns(DataWarning, match="only 40 unlabeled texts"):
        distill(teacher, pool, tmp_path / "out", student="static", backbone=str(st_folder))


def test_a_pool_the_teacher_gives_nearly_one_class_is_warned_about():
    classes = ["business", "sport", "tech"]
    one_sided = np.eye(3)[[0] * 90 + [1] * 6 + [2] * 24]  # fair share 40: 'sport' has under a fifth of it
    with pytest.warns(DataWarning, match=r"labels 90 of 120 pool texts 'business' and few as 'sport' 6"):
        warn_if_one_sided(one_sided, classes, "pool.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_one_sided(np.eye(3)[[0] * 50 + [1] * 30 + [2] * 40], classes, "pool.csv")  # uneven, not one-sided


def test_a_multi_label_teacher_is_refused(capsys, st_folder, pool, tmp_path):
    folder = tmp_path / "ml"
    FewShotClassifier(str(st_folder), "linear-probe").fit(POS + NEG, [["pos", "film"]] * 6 + [["neg"]] * 6).save(folder)
    code, err = run_cli(capsys, folder, "--unlabeled", pool, "-o", tmp_path / "out")
    assert code == 2 and "multi-label" in err and nothing_written(tmp_path / "out")


def test_a_sentence_pair_teacher_is_refused(capsys, st_folder, pool, tmp_path):
    folder = tmp_path / "pairs"
    FewShotClassifier(str(st_folder), "linear-probe").fit([(t, "a film") for t in POS + NEG], SHOTS[1]).save(folder)
    code, err = run_cli(capsys, folder, "--unlabeled", pool, "-o", tmp_path / "out")
    assert code == 2 and "(text, text_pair) pairs" in err and nothing_written(tmp_path / "out")


def test_max_pool_labels_a_seeded_sample_in_file_order(pool):
    from fewtune.distill.pool import read_pool

    everything = read_pool(pool)
    sample = read_pool(pool, max_texts=50, seed=3)
    assert len(sample.texts) == 50 and sample.n_texts == everything.n_texts == 220
    assert sample.sha256 == everything.sha256  # the hash names the file's pool, whatever was sampled
    positions = [everything.texts.index(t) for t in sample.texts]
    assert positions == sorted(positions) and sample.texts == read_pool(pool, max_texts=50, seed=3).texts


def test_a_teacher_without_probabilities_is_refused(capsys, pool, tmp_path):
    folder = tmp_path / "gen"
    folder.mkdir()
    (folder / "fewtune.json").write_text(json.dumps({"format": "fewtune-model", "format_version": 1,
                                                     "task": "generate", "files": {}}))
    code, err = run_cli(capsys, folder, "--unlabeled", pool, "-o", tmp_path / "out")
    assert code == 2 and "gives no class probabilities" in err and nothing_written(tmp_path / "out")
    code, err = run_cli(capsys, tmp_path / "nowhere", "--unlabeled", pool, "-o", tmp_path / "out")
    assert code == 2 and "nowhere" in err


def test_shots_with_a_label_the_teacher_lacks_are_refused(capsys, teacher, pool, tmp_path):
    (tmp_path / "shots.csv").write_text("text,label\ngood,pos\nbad,neg\nso-so,meh\n", encoding="utf-8")
    code, err = run_cli(capsys, teacher, "--unlabeled", pool, "--data", tmp_path / "shots.csv", "-o", tmp_path / "out")
    assert code == 2 and "['meh'] are not classes of the teacher" in err


def test_a_refusal_after_a_small_pool_is_the_error_alone(capsys, teacher, tmp_path):
    # The pool is read (and found small) before the shots are checked against the teacher: its warning is
    # for a run that goes on, so a refusal is still one line.
    small = write_pool(tmp_path / "small.csv", pool_texts(40))
    (tmp_path / "shots.csv").write_text("text,label\ngood,pos\nbad,neg\nso-so,meh\n", encoding="utf-8")
    code, err = run_cli(capsys, teacher, "--unlabeled", small, "--data", tmp_path / "shots.csv", "-o", tmp_path / "out")
    assert code == 2 and err.strip().splitlines() == [err.strip()] and "are not classes of the teacher" in err
    assert nothing_written(tmp_path / "out")


def test_options_are_checked_before_the_teacher_runs(capsys, teacher, pool, tmp_path):
    (tmp_path / "exists").mkdir()
    for args, expected in [(["-o", tmp_path / "exists"], "already exists"),
                           (["-o", tmp_path / "o", "--student", "tiny"], "--student must be one of"),
                           (["-o", tmp_path / "o", "--self-train", "0"], "rounds must be at least 1"),
                           (["-o", tmp_path / "o", "--param", "epochs=0"], "epochs must be at least 1"),
                           (["-o", tmp_path / "o", "--student", "static", "--param", "epochs=2"], "static student")]:
        code, err = run_cli(capsys, teacher, "--unlabeled", pool, *args)
        assert code == 2 and expected in err, err
    assert nothing_written(tmp_path / "o")


def test_a_pool_in_a_language_the_backbone_cannot_read_is_warned_about():
    chinese = ["这部电影非常精彩，演员的表演很动人"] * 30
    with pytest.warns(DataWarning, match="English-only"):
        warn_if_foreign(chinese, "minilm", "teacher", "pool.csv")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_foreign(chinese, "gemma3-270m", "teacher", "pool.csv")  # multilingual: no warning
        warn_if_foreign(pool_texts(30), "minilm", "teacher", "pool.csv")  # English: no warning


def test_soft_targets_need_a_method_that_learns_them(st_folder):
    soft = np.full((12, 2), 0.5)
    with pytest.raises(FewtuneError, match="hard labels only"):
        FewShotClassifier(str(st_folder), "setfit").fit(*SHOTS, soft_targets=soft, classes=["neg", "pos"])
    with pytest.raises(FewtuneError, match="shape"):
        FewShotClassifier(str(st_folder), "finetune").fit(*SHOTS, soft_targets=soft[:5], classes=["neg", "pos"])


# --- the real backbone ------------------------------------------------------------------------------
@pytest.mark.integration
def test_a_static_student_of_a_minilm_teacher_keeps_its_accuracy_on_bbc(tmp_path):
    # bbc, not mr: a linear probe on 8 mr shots is barely above chance (~57%) with near-flat
    # probabilities, and a student of a coin flip measures nothing. On bbc the teacher is ~88%.
    from fewtune.data import load_builtin, sample_k_shot

    train, test = load_builtin("bbc")
    chosen = sample_k_shot(train.labels, 8, seed=0)
    shots = train.subset(chosen)
    rest = np.setdiff1d(np.arange(len(train)), chosen)
    pool = write_pool(tmp_path / "pool.csv", [train.texts[i] for i in np.random.default_rng(0).choice(rest, 400, False)])
    teacher = FewShotClassifier("minilm", "linear-probe", seed=0).fit(shots.texts, shots.labels)
    teacher.save(tmp_path / "teacher")
    result = distill(tmp_path / "teacher", pool, tmp_path / "static", student="static", shots=shots)
    held = test.subset(np.sort(np.random.default_rng(0).choice(len(test), 300, replace=False)))
    student = load_classifier(tmp_path / "static")
    teacher_accuracy = teacher.score(held.texts, held.labels)
    assert teacher_accuracy > 0.75  # five classes: chance is 0.2
    assert student.score(held.texts, held.labels) >= teacher_accuracy - 0.08
    assert result["heldout"]["agreement"] >= 0.8


@pytest.mark.parametrize("show", [True, False])
def test_the_static_tables_distillation_draws_fewtunes_bar_not_tqdms(st_folder, tmp_path, monkeypatch, capfd, show):
    from fewtune.distill.static_table import static_table

    monkeypatch.setenv("FEWTUNE_HOME", str(tmp_path / "home"))  # not cached: distilled now
    folder = static_table(str(st_folder), pca_dims=8, show_progress=show)
    assert (folder / "model.safetensors").is_file()
    err = capfd.readouterr().err
    assert " tokens/s" not in err and "Encoding tokens" not in err  # tqdm's bar, a line per update off a terminal
    assert ("static table: encoding tokens" in err) == show


def test_a_small_pool_gets_enough_passes_for_the_student_to_learn():
    from fewtune.distill.students import MIN_STEPS, student_epochs

    assert student_epochs(5000, {}) == 3  # thousands of texts: the default three passes
    assert student_epochs(128, {}) == 15 and 15 * 4 >= MIN_STEPS  # 4 batches of 32 a pass
    assert student_epochs(128, {"batch_size": 8}) == 4
