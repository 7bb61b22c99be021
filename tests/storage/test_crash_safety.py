"""SIGKILL in the middle of a save or of a benchmark: no half-written model, no torn result line, and
the next run carries on. (Ctrl-C — SIGINT — is covered in-process in test_cli.py and test_bench.py.)"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fewtune import FewShotClassifier
from fewtune.bench.records import load_runs

from tests.helpers import synthetic
from tests.helpers.files import write_csv

# Trains a tiny model, then saves it with a weights writer that stops half-way and waits to be killed.
SAVER = """
import sys, time
from pathlib import Path
from fewtune import FewShotClassifier
from fewtune.methods.setfit import SetFit
from tests.helpers import synthetic

clf = FewShotClassifier(backbone=sys.argv[1], params={"steps": 2, "batch_size": 8}).fit(*synthetic.make())
original = SetFit.save

def stalled_save(self, folder):
    original(self, folder)  # every file written ...
    Path(sys.argv[3]).write_text("saving")  # ... now kill me before the folder is renamed into place
    time.sleep(600)

SetFit.save = stalled_save
clf.save(sys.argv[2], overwrite=True)
"""


def wait_for(predicate, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the child process")
        time.sleep(0.2)


def test_sigkill_during_a_save_leaves_the_old_model_whole(st_folder, tmp_path):
    X, y = synthetic.make()
    test, _ = synthetic.held_out()
    target = tmp_path / "model"
    old = FewShotClassifier(backbone=str(st_folder), params={"steps": 0}).fit(X, y)
    old.save(target)
    expected = old.predict_proba(test)
    marker = tmp_path / "saving"
    repo = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", SAVER, str(st_folder), str(target), str(marker)], cwd=repo,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: marker.exists() or child.poll() is not None)
        assert child.poll() is None, child.stderr.read().decode()
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        child.kill()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".model.tmp-")]
    assert leftovers, "the child should have died inside its temporary folder"
    # The old model is untouched and loads; the orphaned temporary folder is never read.
    assert (FewShotClassifier.load(target).predict_proba(test) == expected).all()
    # And a later save over it still works.
    new = FewShotClassifier(backbone=str(st_folder), params={"steps": 2, "batch_size": 8}, seed=1).fit(X, y)
    new.save(target, overwrite=True)
    assert (FewShotClassifier.load(target).predict_proba(test) == new.predict_proba(test)).all()


def test_sigkill_during_a_benchmark_keeps_whole_lines_and_resumes(st_folder, tmp_path):
    CLASSES = ("negative", "positive", "neutral")
    train = write_csv(tmp_path / "reviews.csv", zip(*synthetic.make(CLASSES, 8)))
    test = write_csv(tmp_path / "reviews_test.csv", zip(*synthetic.held_out(CLASSES, 8)))
    out = tmp_path / "runs.jsonl"
    args = [sys.executable, "-m", "fewtune.cli", "bench", "--dataset", str(train), "--test", str(test),
            "--backbone", str(st_folder), "--methods", "setfit:steps=4,batch_size=8,head_c=1", "--baselines", "majority",
            "--shots", "2", "--seeds", "3", "--out", str(out), "--no-report", "--quiet", "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)  # its worker processes die with it
    try:
        wait_for(lambda: (out.exists() and out.read_text().count("\n") >= 1) or child.poll() is not None)
        assert child.poll() is None, child.stderr.read().decode()
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    lines = out.read_text().splitlines()
    finished = [json.loads(line) for line in lines if line.strip()]  # every line on disk is whole JSON
    assert 1 <= len(finished) < 6
    resumed = json.loads(subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout)
    assert resumed["skipped"] == len(finished) and resumed["done"] == 6 - len(finished)
    assert sorted(r["key"] for r in load_runs(out)) == sorted({r["key"] for r in load_runs(out)})  # no repeats
