"""Probe: can the class mix of the tweets test set be re-estimated from its texts at K=8? (issue 6)

The K-shot training set is balanced; tweets' test set is 39 % negative, 41 % neutral, 19 % positive,
which no temperature fixes (calibration section of benchmarks/README.md). Saerens et al. (2002)
re-estimate a batch's class prior by EM on the classifier's probabilities; c > 0 adds a Dirichlet
prior of c pseudo-texts at the training prior (MAP-EM). setfit + temperature scaling (the
calibrated input the method needs), seeds 0-2, a fixed random subset of 500 test texts.

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/label_shift_probe.py > benchmarks/results/label_shift_probe.txt
"""
import numpy as np
from fewtune.classifier import FewShotClassifier
from fewtune.data.builtin import load_builtin
from fewtune.data.sampling import sample_k_shot
from fewtune.metrics import calibration_report
train, test = load_builtin("tweets")
rng = np.random.default_rng(0); ti = np.sort(rng.choice(len(test.texts), 500, replace=False))
tx = [test.texts[i] for i in ti]; ty = [test.labels[i] for i in ti]
def em_dir(proba, pi0, c):
    prior = pi0.copy()
    for _ in range(2000):
        w = proba * prior / pi0; a = w / w.sum(1, keepdims=True)
        new = (a.sum(0) + c * pi0) / (len(proba) + c)
        if np.abs(new - prior).max() < 1e-9: break
        prior = new
    w = proba * prior / pi0; return w / w.sum(1, keepdims=True), prior
for seed in (0, 1, 2):
    idx = sample_k_shot(train.labels, 8, seed)
    clf = FewShotClassifier("minilm", "setfit", seed=seed, params={"max_tokens": 128}, calibrate="temperature").fit(
        [train.texts[i] for i in idx], [train.labels[i] for i in idx])
    p = clf.predict_proba(tx); cls = list(clf.classes_)
    truth = np.array([cls.index(y) for y in ty]); pi0 = np.full(3, 1/3)
    def show(name, q, prior=None):
        cal = calibration_report(ty, q, cls)
        print(seed, name, "acc %.3f ece %.3f nll %.3f" % ((q.argmax(1) == truth).mean(), cal["ece"], cal["nll"]), None if prior is None else np.round(prior, 3), flush=True)
    show("temp", p)
    print(seed, "true prior", np.round(np.bincount(truth, minlength=3) / len(truth), 3), "mean p", np.round(p.mean(0), 3))
    for c in (0, 50, 500):
        q, prior = em_dir(p, pi0, c); show(f"em c={c}", q, prior)
