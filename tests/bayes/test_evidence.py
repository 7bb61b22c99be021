"""The prior's strength from the marginal likelihood: the curvature, the evidence, and select="evidence"."""

import math

import numpy as np
import pytest
import torch

from fewtune import FewShotClassifier, FewtuneError
from fewtune.bayes.evidence import _groups, ggn_eigenvalues, log_evidence

from tests.helpers import synthetic


@pytest.mark.parametrize("memory_bytes", [1e9, 1])  # one group of parameters, or one tensor per group
def test_ggn_eigenvalues_are_those_of_the_full_gauss_newton_matrix(memory_bytes):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    x = torch.randn(6, 4)
    params = list(model.parameters())
    eigenvalues = ggn_eigenvalues(lambda i: model(x[i:i + 1])[0], len(x), params, memory_bytes=memory_bytes)
    assert len(eigenvalues) == len(x) * 2  # n·(C−1): softmax logits are shift-invariant

    flat = torch.cat([t.reshape(-1) for t in params]).detach().double()
    names = [(n, t.shape) for n, t in model.named_parameters()]

    def logits(theta, xi):
        values, start = {}, 0
        for name, shape in names:
            size = math.prod(shape)
            values[name] = theta[start:start + size].reshape(shape)
            start += size
        return torch.func.functional_call(model.double(), values, (xi.double(),))[0]

    ggn = torch.zeros(len(flat), len(flat), dtype=torch.float64)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda th: logits(th, x[i:i + 1]), flat)  # C × P
        p = torch.softmax(logits(flat, x[i:i + 1]), 0)
        ggn += jac.T @ (torch.diag(p) - torch.outer(p, p)) @ jac
    model.float()
    expected = np.sort(np.clip(np.linalg.eigvalsh(ggn.numpy()), 0, None))[-len(eigenvalues):]
    np.testing.assert_allclose(np.sort(eigenvalues), expected, rtol=1e-4, atol=1e-6)
    # The rest of the spectrum is empty: H has rank at most n·(C−1).
    assert np.abs(np.linalg.eigvalsh(ggn.numpy())[:-len(eigenvalues)]).max() < 1e-8


def test_parameter_groups_keep_order_and_respect_the_budget():
    assert _groups([3, 3, 3, 10, 1], 6) == [[0, 1], [2], [3], [4]]
    assert _groups([3, 3], 100) == [[0, 1]]


def test_laplace_evidence_matches_the_integral_for_a_one_weight_logistic_model():
    # p(y=1 | w) = σ(w·x): the marginal likelihood ∫ p(y|w) N(w; w₀, 1/τ) dw by quadrature, against the
    # Laplace approximation at the MAP. With 300 examples the posterior is close to Gaussian.
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    y = (rng.random(300) < 1 / (1 + np.exp(-1.5 * x))).astype(float)
    w0, tau = 0.5, 4.0

    def log_lik(w):
        z = np.outer(w, x)
        return (y * z - np.logaddexp(0, z)).sum(axis=1)

    grid = np.linspace(-5, 8, 200001)
    log_joint = log_lik(grid) - 0.5 * tau * (grid - w0) ** 2 + 0.5 * math.log(tau / (2 * math.pi))
    exact = float(np.log(np.trapezoid(np.exp(log_joint - log_joint.max()), grid)) + log_joint.max())

    w_map = float(grid[np.argmax(log_joint)])
    p = 1 / (1 + np.exp(-w_map * x))
    h = float((p * (1 - p) * x ** 2).sum())  # the one eigenvalue of the Gauss-Newton matrix
    laplace = log_evidence(float(log_lik(np.array([w_map]))[0]), (w_map - w0) ** 2, [h], tau)
    assert laplace["log_evidence"] == pytest.approx(exact, abs=0.02)
    # MacKay's effective number of parameters: the share of the one weight the data determines.
    assert laplace["effective_parameters"] == pytest.approx(h / (h + tau), abs=0.01)


def test_evidence_needs_a_proper_prior():
    with pytest.raises(ValueError, match="precision must be positive"):
        log_evidence(-1.0, 0.0, [1.0, 2.0], 0.0)


TINY = {"epochs": 3, "learning_rate": 1e-3, "head_learning_rate": 1e-2}


def test_select_evidence_keeps_the_best_trained_model_and_saves_the_curve(st_folder, tmp_path):
    X, y = synthetic.make(per_class=8)
    clf = FewShotClassifier(str(st_folder), "finetune", params=TINY, select="evidence",
                            grid={"l2sp": [1.0, 30.0, 1000.0]}).fit(X, y)
    selection = clf.train_info_["selection"]
    assert selection["method"] == "evidence" and len(selection["results"]) == 3
    best = max(selection["results"], key=lambda r: r["log_evidence"])
    assert selection["chosen"] == best["params"] and clf.model_.params.l2sp == best["params"]["l2sp"]
    # A stronger pull keeps the encoder nearer the pretrained weights; the parts add up.
    distances = [r["distance_from_pretrained"] for r in selection["results"]]
    assert distances[0] > distances[1] > distances[2]
    for r in selection["results"]:
        assert r["prior_precision"] == pytest.approx(r["params"]["l2sp"] * len(X))
        assert r["log_evidence"] == pytest.approx(r["log_likelihood"] - r["prior_penalty"] - r["occam"], abs=1e-3)

    # The kept model is the one a plain fit with the chosen strength trains, and it saves and reloads.
    X_test, _ = synthetic.held_out()
    direct = FewShotClassifier(str(st_folder), "finetune", params={**TINY, **best["params"]}).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(X_test), direct.predict_proba(X_test), atol=1e-6)
    clf.save(tmp_path / "m")
    again = FewShotClassifier.load(tmp_path / "m")
    np.testing.assert_array_equal(again.predict_proba(X_test), clf.predict_proba(X_test))
    assert again.train_info_["selection"]["chosen"] == best["params"]


@pytest.mark.parametrize("method, options, match", [
    ("linear-probe", {}, "needs a method trained as a MAP estimate"),
    ("finetune", {"grid": {"l2sp": [0.0, 1.0]}}, "every l2sp in the grid must be positive"),
    ("finetune", {"grid": {"learning_rate": [1e-3]}}, "the grid may only hold l2sp"),
    ("finetune", {"params": {**TINY, "lora": True}}, "covers full fine-tuning"),
    ("finetune", {"params": {**TINY, "early_stopping": True}}, "turn early_stopping off"),
])
def test_select_evidence_refuses_what_it_cannot_do(st_folder, method, options, match):
    X, y = synthetic.make(per_class=4)
    options = {"params": TINY if method == "finetune" else None, **options}
    with pytest.raises(FewtuneError, match=match):
        FewShotClassifier(str(st_folder), method, select="evidence", **options).fit(X, y)


def test_select_evidence_refuses_multi_label(st_folder):
    X, _ = synthetic.make(per_class=4)
    y = [["a", "b"] if i % 2 else ["b"] if i % 3 else ["a"] for i in range(len(X))]
    with pytest.raises(FewtuneError, match="single-label"):
        FewShotClassifier(str(st_folder), "finetune", params=TINY, select="evidence").fit(X, y)
