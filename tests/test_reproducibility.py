"""The same data, seed and versions give identical predictions — for every registered method, in one
process and across processes — and every saved model records the versions that made it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fewtune import FewShotClassifier
from fewtune.methods import METHODS

from tests.helpers import synthetic
from tests.helpers.fast import FAST_SETFIT

PROMPT = {"template": "{text} overall it was", "label_words": "negative=terrible,positive=great"}
FAST = {
    "setfit": FAST_SETFIT,
    "linear-probe": {},
    "finetune": {"epochs": 2, "learning_rate": 1e-3, "head_learning_rate": 1e-2},
    "majority": {},
    "zero-shot": PROMPT,
    "prompt": {**PROMPT, "epochs": 2},
    "icl": PROMPT,
    "hybrid": PROMPT,  # + the tiny causal LM as its lm, below
    "auto": {"candidates": "linear-probe,setfit", "folds": 2},
}


def test_every_registered_method_is_in_the_matrix():
    assert set(FAST) == set(METHODS)  # a new method must join the reproducibility checks


@pytest.mark.parametrize("method", sorted(FAST))
def test_same_seed_same_predictions_and_a_reload_keeps_them(method, st_folder, llama_folder, tmp_path):
    folder = st_folder if "encoder" in METHODS[method].backbone_kinds else llama_folder
    X, y = synthetic.make()
    test, _ = synthetic.held_out()

    params = {**FAST[method], "lm": str(llama_folder)} if method == "hybrid" else FAST[method]

    def fit(seed):
        return FewShotClassifier(backbone=str(folder), method=method, params=params, seed=seed).fit(X, y)

    first = fit(0)
    a, b = first.predict_proba(test), fit(0).predict_proba(test)
    np.testing.assert_array_equal(a, b)
    first.save(tmp_path / "m")
    np.testing.assert_array_equal(FewShotClassifier.load(tmp_path / "m").predict_proba(test), a)
    saved = json.loads((tmp_path / "m" / "fewtune.json").read_text())
    assert {"python", "fewtune", "torch", "transformers"} <= set(saved["versions"])


def test_two_processes_train_identical_models(st_folder, tmp_path):
    # Separate interpreters with different hash seeds: nothing may depend on set/dict order of
    # strings, the process's random state or thread scheduling.
    X, y = synthetic.make()
    test, _ = synthetic.held_out()
    data = tmp_path / "train.csv"
    data.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in zip(X, y)))
    (tmp_path / "test.csv").write_text("text\n" + "".join(f"{t}\n" for t in test))
    outputs = []
    for run, hash_seed in enumerate(("1", "2")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "HF_HUB_OFFLINE": "1"}
        model = tmp_path / f"m{run}"
        cli = [sys.executable, "-m", "fewtune.cli"]
        subprocess.run([*cli, "train", "--data", str(data), "--backbone", str(st_folder), "-o", str(model),
                        "-p", "steps=4", "-p", "batch_size=8", "--seed", "5", "-q"], env=env, check=True,
                       capture_output=True)
        out = subprocess.run([*cli, "predict", str(model), str(tmp_path / "test.csv"), "--format", "jsonl",
                              "-q"], env=env, check=True, capture_output=True, text=True).stdout
        outputs.append([json.loads(line) for line in out.splitlines()])
    assert len(outputs[0]) == len(test)
    assert outputs[0] == outputs[1]
