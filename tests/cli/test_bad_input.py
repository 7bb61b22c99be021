"""Bad input to any command: exit 2, one "error:" line naming the file, line or column, nothing left behind."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

from tests.helpers.cli import Result, run_cli
from tests.helpers.files import write_csv
from tests.helpers.reviews import HEADER, PREDICT_TEXTS, read_csv_rows, review_rows, train_args, tree


# --- 6. bad input: exit 2, one "error:" line naming file/line/column, nothing left behind --------------
@dataclass
class Env:
    tmp: Path  # where outputs go; must look the same after a failed command
    data: Path  # the module's good data files
    model: Path  # a good trained model folder (the module's; copy it before damaging it)
    backbone: str

    def train(self, data=None, *extra: str, output: str = "out") -> list[str]:
        return train_args(data or self.data / "my.csv", self.tmp / output, self.backbone, *extra)

    def predict(self, model: Path, *extra: str) -> list[str]:
        return ["predict", model, *extra, "--output", self.tmp / "pred.csv"]

    def model_copy(self) -> Path:
        return Path(shutil.copytree(self.model, self.tmp / "model"))

    def csv(self, name: str, rows, header=HEADER) -> Path:
        return write_csv(self.tmp / name, rows, header)


@dataclass
class Case:
    args: list
    fragments: list  # every one must appear in the error line
    stdin: Optional[bytes] = None
    extra_check: Optional[Callable] = field(default=None)


def _rows_with(index: int, column: int, value: str, n_per_class: int = 20):
    rows = review_rows(n_per_class)
    rows[index][column] = value
    return rows


def case_missing_column(env):
    return Case(env.train(None, "--text-col", "text"),
                [str(env.data / "my.csv"), "no column 'text'", "'id'", "'review'", "'sentiment'"])


def case_missing_label_column(env):
    args = env.train()
    args[args.index("sentiment")] = "label"
    return Case(args, [str(env.data / "my.csv"), "no column 'label'", "'sentiment'"])


def case_empty_text(env):
    f = env.csv("blank.csv", _rows_with(3, 1, "   "))  # 4th record: line 5 (the header is line 1)
    return Case(env.train(f), [str(f), "line 5", "column 'review'", "empty text"])


def case_missing_label(env):
    f = env.csv("nolabel.csv", _rows_with(5, 2, ""))
    return Case(env.train(f), [str(f), "line 7", "column 'sentiment'", "missing label"])


def case_one_class(env):
    f = env.csv("one.csv", [[i, t, "positive"] for i, t, _ in review_rows()])
    return Case(env.train(f), [str(f), "column 'sentiment'", "only one class", "'positive'"])


def case_too_few_shots(env):
    rows = [r for r in review_rows() if r[2] == "positive"] + [r for r in review_rows(3) if r[2] == "negative"]
    f = env.csv("few.csv", rows)
    return Case(env.train(f), [str(f), "column 'sentiment'", "class 'negative' has 3 examples", "8 shots"])


def latin1_csv(folder: Path) -> Path:
    rows = review_rows()
    rows[2][1] = "café crème, loved it, great"  # 3rd record: line 4
    return write_csv(folder / "latin.csv", rows, header=HEADER, encoding="latin-1")


def case_undecodable(env):
    f = latin1_csv(env.tmp)
    assert b"caf\xe9" in f.read_bytes()
    return Case(env.train(f), [str(f), "line 4", "0xe9", "--encoding"])


def case_bad_encoding_name(env):
    return Case(env.train(None, "--encoding", "klingon-8"), [str(env.data / "my.csv"), "unknown encoding"])


def case_unknown_extension(env):
    f = env.tmp / "my.txt"
    shutil.copy(env.data / "my.csv", f)
    return Case(env.train(f), [str(f), "'.txt'", ".csv", ".jsonl"])


def case_missing_file(env):
    return Case(env.train(env.tmp / "absent.csv"), [str(env.tmp / "absent.csv"), "no such file"])


def case_malformed_jsonl(env):
    f = env.tmp / "my.jsonl"
    lines = [json.dumps({"review": r[1], "sentiment": r[2]}) for r in review_rows()]
    lines[2] = '{"review": "great film", "sentiment": '
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Case(env.train(f), [str(f), "line 3", "not valid JSON"])


def case_data_and_dataset(env):
    return Case(env.train(None, "--dataset", "mr"), ["exactly one of --data", "--dataset"])


def case_neither_data_nor_dataset(env):
    args = env.train()
    i = args.index("--data")
    del args[i: i + 2]
    return Case(args, ["exactly one of --data", "--dataset"])


def case_shots_zero(env):
    args = env.train()
    args[args.index("--shots") + 1] = "0"
    return Case(args, ["--shots", "at least 1"])


def case_param_not_key_value(env):
    return Case(env.train(None, "-p", "steps"), ["--param", "KEY=VALUE", "'steps'"])


def case_output_exists(env):
    (env.tmp / "out").mkdir()
    (env.tmp / "out" / "keep.txt").write_text("mine", encoding="utf-8")
    return Case(env.train(), [str(env.tmp / "out"), "already exists", "--overwrite"],
                extra_check=lambda: (env.tmp / "out" / "keep.txt").read_text(encoding="utf-8") == "mine")


def case_overwrite_non_model_folder(env):
    (env.tmp / "out").mkdir()
    (env.tmp / "out" / "keep.txt").write_text("mine", encoding="utf-8")
    return Case(env.train(None, "-p", "steps=0", "-q", "--overwrite"),
                [str(env.tmp / "out"), "not a fewtune model folder"],
                extra_check=lambda: (env.tmp / "out" / "keep.txt").read_text(encoding="utf-8") == "mine")


def case_test_file_missing_column(env):
    return Case(env.train(None, "--test", env.data / "test.csv"),
                [str(env.data / "test.csv"), "no column 'review'", "'opinion'"])


# Errors found only once training starts: fewtune prints its "training ..." note first, so these are
# also run with --quiet below, where the one-line contract must hold today.
def case_unknown_method(env):
    return Case(env.train(None, "--method", "zzz"), ["unknown method 'zzz'", "setfit"])


def case_unknown_backbone(env):
    return Case(env.train(None, "--backbone", "nosuchmodel"), ["unknown backbone 'nosuchmodel'", "minilm"])


def case_param_unknown_key(env):
    return Case(env.train(None, "-p", "bogus=1"), ["unknown parameter", "bogus", "steps"])


def case_param_wrong_type(env):
    return Case(env.train(None, "-p", "steps=many"), ["parameter 'steps'", "int", "'many'"])


def case_predict_not_a_model(env):
    folder = env.tmp / "notamodel"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello", encoding="utf-8")
    return Case(env.predict(folder, env.data / "texts.csv", "--text-col", "review"),
                [str(folder), "not a fewtune model folder", "fewtune.json"])


def case_predict_no_such_model(env):
    return Case(env.predict(env.tmp / "nowhere", env.data / "texts.csv", "--text-col", "review"),
                [str(env.tmp / "nowhere"), "no such model folder"])


def case_predict_truncated_body(env):
    m = env.model_copy()
    weights = m / "body" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"),
                [str(weights), "checksum mismatch"])


def case_predict_edited_head(env):
    m = env.model_copy()
    head = m / "head.safetensors"
    data = bytearray(head.read_bytes())
    data[-1] ^= 0xFF
    head.write_bytes(bytes(data))
    return Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"), [str(head), "checksum mismatch"])


def case_predict_corrupt_config(env):
    m = env.model_copy()
    (m / "fewtune.json").write_text('{"format": "fewtune-model", ', encoding="utf-8")
    return Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"),
                [str(m / "fewtune.json"), "corrupt"])


def case_predict_pickle_file(env):
    import pickle

    m = env.model_copy()
    (m / "extra.pkl").write_bytes(pickle.dumps({"harmless": True}))
    return Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"),
                [str(m), "pickle", "extra.pkl", "--trust"])


def case_predict_missing_text_column(env):
    return Case(env.predict(env.model, env.data / "texts.csv"),
                [str(env.data / "texts.csv"), "no column 'text'", "'review'"])


def case_predict_empty_text_in_file(env):
    f = env.csv("texts.csv", [["a", "fine"], ["b", ""], ["c", "ok"]], header=["id", "review"])
    return Case(env.predict(env.model, f, "--text-col", "review"),
                [str(f), "line 3", "column 'review'", "empty text"])


def case_predict_bad_format(env):
    return Case(env.predict(env.model, env.data / "texts.csv", "--text-col", "review", "--format", "xml"),
                ["--format", "csv or jsonl", "'xml'"])


def case_stdin_nothing(env):
    return Case(env.predict(env.model), ["stdin", "no texts"], stdin=b"\n\n")


def case_stdin_undecodable(env):
    return Case(env.predict(env.model), ["stdin", "line 2", "--encoding"], stdin=b"great\ncaf\xe9 noir\n")


def case_evaluate_missing_label_column(env):
    return Case(["evaluate", env.model, "--data", env.data / "test.csv", "--text-col", "opinion"],
                [str(env.data / "test.csv"), "no column 'label'", "'verdict'"])


def case_evaluate_neither(env):
    return Case(["evaluate", env.model], ["exactly one of --data", "--dataset"])


BAD_INPUTS = [
    case_missing_column,
    case_missing_label_column,
    case_empty_text,
    case_missing_label,
    case_one_class,
    case_too_few_shots,
    case_undecodable,
    case_bad_encoding_name,
    case_unknown_extension,
    case_missing_file,
    case_malformed_jsonl,
    case_data_and_dataset,
    case_neither_data_nor_dataset,
    case_shots_zero,
    case_param_not_key_value,
    case_output_exists,
    case_overwrite_non_model_folder,
    case_test_file_missing_column,
    case_predict_not_a_model,
    case_predict_no_such_model,
    case_predict_truncated_body,
    case_predict_edited_head,
    case_predict_corrupt_config,
    case_predict_pickle_file,
    case_predict_missing_text_column,
    case_predict_empty_text_in_file,
    case_predict_bad_format,
    case_stdin_nothing,
    case_stdin_undecodable,
    case_evaluate_missing_label_column,
    case_evaluate_neither,
]
LATE_ERRORS = [case_unknown_method, case_unknown_backbone, case_param_unknown_key, case_param_wrong_type]


@pytest.fixture
def env(tmp_path, data_dir, trained, st_folder) -> Env:
    out = tmp_path / "work"
    out.mkdir()
    return Env(tmp=out, data=data_dir, model=trained.model, backbone=str(st_folder))


def check_bad_input(capfd, monkeypatch, env: Env, case: Case) -> Result:
    before = tree(env.tmp)
    data_before = tree(env.data)
    r = run_cli(capfd, *case.args, stdin=case.stdin, monkeypatch=monkeypatch)
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.out + r.err
    assert r.out == ""
    assert len(r.err_lines) == 1, r.err
    line = r.err_lines[0]
    assert line.startswith("error: ")
    for fragment in case.fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    # No output folder, no hidden .out.tmp-* folder, no half-written predictions file.
    assert tree(env.tmp) == before
    assert tree(env.data) == data_before
    if case.extra_check is not None:
        assert case.extra_check()
    return r


@pytest.mark.parametrize("make_case", BAD_INPUTS, ids=lambda f: f.__name__.removeprefix("case_"))
def test_bad_input_is_one_line_error(make_case, env, capfd, monkeypatch):
    check_bad_input(capfd, monkeypatch, env, make_case(env))


@pytest.mark.parametrize("make_case", LATE_ERRORS,
                         ids=lambda f: f.__name__.removeprefix("case_"))
def test_bad_train_setting_is_one_line_error(make_case, env, capfd, monkeypatch):
    check_bad_input(capfd, monkeypatch, env, make_case(env))


@pytest.mark.parametrize("make_case", LATE_ERRORS, ids=lambda f: f.__name__.removeprefix("case_"))
def test_bad_train_setting_is_one_line_error_when_quiet(make_case, env, capfd, monkeypatch):
    case = make_case(env)
    case.args.append("--quiet")
    check_bad_input(capfd, monkeypatch, env, case)


def test_undecodable_file_trains_with_its_encoding(env, capfd):
    f = latin1_csv(env.tmp)
    r = run_cli(capfd, *env.train(f, "--encoding", "latin-1", "-p", "steps=0", "-q"))
    assert r.code == 0, r.err
    assert (env.tmp / "out" / "fewtune.json").is_file()


def test_pickle_file_loads_with_trust(env, capfd, monkeypatch):
    case = case_predict_pickle_file(env)
    args = [a for a in case.args if a not in ("--output", env.tmp / "pred.csv")]
    r = run_cli(capfd, *args, "--trust", "-q")
    assert r.code == 0, r.err
    assert len(read_csv_rows(r.out)) == len(PREDICT_TEXTS) + 1


@pytest.mark.parametrize("name", ["head.safetensors", "body/model.safetensors"])
def test_corrupt_weights_with_matching_checksum(env, capfd, monkeypatch, name):
    m = env.model_copy()
    weights = m / name
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    config = json.loads((m / "fewtune.json").read_text(encoding="utf-8"))
    config["files"][name] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (m / "fewtune.json").write_text(json.dumps(config), encoding="utf-8")
    check_bad_input(capfd, monkeypatch, env, Case(env.predict(m, env.data / "texts.csv", "--text-col", "review"),
                                                  [str(m)]))


@pytest.mark.parametrize(
    "args, named",
    [
        (["train", "--bogus"], "--bogus"),
        (["train", "--data", "x.csv", "--shots", "many"], "--shots"),
        (["predict"], "model"),
        (["nosuchcommand"], "nosuchcommand"),
    ],
    ids=["unknown-option", "not-an-int", "missing-argument", "unknown-command"],
)
def test_usage_errors_exit_2_without_traceback(capfd, args, named):
    r = run_cli(capfd, *args)
    assert r.code == 2
    assert "Traceback" not in r.err
    assert named.lower() in r.err.lower()


def test_stdin_one_row_per_line(env, capfd, monkeypatch):
    texts = ["great film\u2028with a twist", "awful\x0cfilm", "loved it"]
    r = run_cli(capfd, "predict", env.model, "-q", stdin="\n".join(texts).encode("utf-8"), monkeypatch=monkeypatch)
    assert r.code == 0, r.err
    assert [row["text"] for row in read_csv_rows(r.out)] == texts


def test_stdin_byte_order_mark_is_dropped(env, capfd, monkeypatch):
    r = run_cli(capfd, "predict", env.model, "-q", stdin=b"\xef\xbb\xbfgreat film\nawful film\n",
                monkeypatch=monkeypatch)
    assert r.code == 0, r.err
    assert [row["text"] for row in read_csv_rows(r.out)] == ["great film", "awful film"]
