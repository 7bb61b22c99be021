"""SetFit-style few-shot classification: contrastive fine-tuning of a sentence encoder, then a head.

SetFit (Tunstall et al. 2022) trains the encoder so that same-class pairs have cosine similarity 1
and different-class pairs 0, then fits logistic regression on the embeddings. The SetFit library
materialises pairs and runs the encoder twice per pair, so its cost multiplies with the number of
pairs. Here each step encodes a class-balanced batch of texts once and scores *every* pair inside
it — the same loss on O(B²) pairs for B encoder passes — so training cost grows linearly in
K × classes.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ..bayes import L2SPPrior
from ..data.sampling import cv_folds
from .base import MethodParams, register_method
from ..params import param
from ..text_windows import LONG_TEXTS, LONG_TEXTS_HELP
from ..training.encoder_method import LinearHeadEncoderMethod
from ..training.heads import (
    CLASS_WEIGHT_HELP,
    CLASS_WEIGHTS,
    LinearHead,
    batch_keys,
    class_weights,
    classification_loss,
    cross_validated_nll,
)
from ..training.memory import fold_models
from ..training.optim import (
    ATTENTION_DROPOUT_HELP, dropout_problem, encoder_dropout, make_optimizer, trainable_parameters, update,
)
from ..training.tracking import record_losses


# head_c=0: the grid (×2 steps) and folds of the choice. The body trained on every shot makes any head
# on its embeddings of them look right, so only bodies that never saw a shot can say how confident a
# head may be (benchmarks/README.md "setfit_crossfit").
HEAD_C_GRID = tuple(float(c) for c in np.geomspace(0.25, 1024, 13))
HEAD_C_FOLDS = 4
FALLBACK_HEAD_C = 1.0  # where the shots cannot choose: scikit-learn's default


@dataclasses.dataclass
class SetFitParams(MethodParams):
    # 0: no contrastive stage.
    epochs: float = param(4.0, "contrastive passes over the training texts: steps = ceil(epochs × texts / "
                               "batch_size), each step scoring every pair in its batch (not the SetFit library's "
                               "num_epochs, which counts passes over generated pairs)", minimum=0)
    steps: int = param(-1, "a fixed number of contrastive steps instead (0 = train the head only, -1 = use epochs)")
    batch_size: int = param(16, "texts per contrastive step; all pairs in it are scored", minimum=2)
    loss: str = param("pairs", "'pairs': SetFit's cosine loss on every pair in the batch; "
                               "'supcon': supervised-contrastive (InfoNCE) loss over the batch, as FastFit")
    temperature: float = param(0.1, "temperature of the 'supcon' loss", above=0)
    learning_rate: float = param(2e-4, "learning rate of the encoder (peak, then linear decay)", above=0,
                                 renamed_from=("body_lr",))
    weight_decay: float = param(0.0, "AdamW weight decay of the encoder (a prior centred on 0)", minimum=0)
    l2sp: float = param(0.0, "L2-SP strength λ: penalty λ/2·‖θ−θ₀‖² toward the pretrained encoder (0 = off)",
                        minimum=0)
    # 0.7, not 1: on BBC topics the trained encoder alone lost to the SetFit library by 0.6-0.8 points
    # and 0.7 gains 0.9-1.0 there, at a cost of 0.4-0.6 on tweets K=16 and mr K=16 (benchmarks/README.md).
    wise: float = param(0.7, "weight-space ensemble (WiSE-FT): the encoder kept is θ₀ + wise·(θ−θ₀), between the "
                             "pretrained (0) and the contrastively trained (1) weights", minimum=0, maximum=1)
    dropout: float = param(-1.0, "dropout rate inside the encoder while it trains (-1 = the backbone's own)")
    # 0, not the backbone's 0.1: on CPU attention dropout rules out the fused attention kernel (a step 2.3× slower in
    # 2.5× the memory at 512 tokens), for no measured gain (benchmarks/README.md "attention_dropout").
    attention_dropout: float = param(0.0, ATTENTION_DROPOUT_HELP)
    warmup_ratio: float = param(0.1, "fraction of steps with linear learning-rate warm-up", minimum=0, maximum=1)
    max_tokens: int = param(0, "truncate texts to this many tokens (0 = the backbone's own)", minimum=0,
                            renamed_from=("max_seq_length",))
    head: str = param("logistic", "'logistic': logistic regression on the embeddings; 'differentiable': the same "
                                  "linear head then trained with cross-entropy end to end with the encoder",
                      choices=("logistic", "differentiable"))
    # 0, not scikit-learn's 1 (the SetFit library's head): C=1 is calibrated only where it happens to fit (the
    # 2-3-class review sets from K=16); at K=8 on the built-ins as user files its ECE is 0.12-0.39, on topics
    # 0.20-0.39 at every K. The chosen C: 0.03-0.14 at K=8, for 5 trainings instead of 1 (benchmarks/README.md
    # "setfit_crossfit": "head_c=0 with the full body's steps, and the default").
    head_c: float = param(0.0, "inverse L2 strength of the logistic-regression head (0 = chosen on "
                               f"the shots: setfit is trained again, for as many steps, without each of "
                               f"{HEAD_C_FOLDS} folds of them, and C is the geometric mean of the grid "
                               f"{HEAD_C_GRID[0]:g}..{HEAD_C_GRID[-1]:g} weighted by the likelihood those bodies' "
                               f"heads give the shots they never saw, times the share of the shots a fold head saw; "
                               f"costs {HEAD_C_FOLDS} trainings more. A fixed "
                               "C such as 1, the SetFit library's, trains once)", minimum=0)
    head_epochs: int = param(2, "differentiable head: passes of end-to-end training", minimum=0)
    head_learning_rate: float = param(1e-2, "differentiable head: learning rate of the head", above=0,
                                      renamed_from=("head_lr",))
    class_weight: str = param("none", CLASS_WEIGHT_HELP, choices=CLASS_WEIGHTS)
    encode_batch_size: int = param(64, "batch size when embedding texts", minimum=2)
    long_texts: str = param("truncate", LONG_TEXTS_HELP, choices=LONG_TEXTS)
    train_embeddings: bool = param(False, "also update the word-embedding matrix (slower; rarely helps with few shots)")

    def check(self, problems: list[str]) -> None:
        if self.loss not in LOSSES:
            problems.append(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.steps < -1:
            problems.append(f"steps must be -1 (use epochs), 0 (head only) or more, got {self.steps}")
        for problem in (dropout_problem("dropout", self.dropout),
                        dropout_problem("attention_dropout", self.attention_dropout, "as dropout")):
            if problem:
                problems.append(problem)


def balanced_batches(y: np.ndarray, batch_size: int, steps: int, rng: np.random.Generator):
    """Yield `steps` index arrays, each with at least two texts of each class it draws.

    Every batch needs same-class pairs and different-class pairs; each class's examples are cycled
    in a reshuffled order so that all are seen equally often.
    """
    y = batch_keys(y)
    classes = np.unique(y)
    per_class = max(2, batch_size // len(classes))
    classes_per_batch = max(2, min(len(classes), batch_size // per_class))
    queues = {c: [] for c in classes}
    order = list(rng.permutation(classes))
    for step in range(steps):
        start = (step * classes_per_batch) % len(order)
        chosen = [order[(start + i) % len(order)] for i in range(classes_per_batch)]
        batch = []
        for c in chosen:
            members = np.flatnonzero(y == c)
            take = min(per_class, len(members))
            while len(queues[c]) < take:
                queues[c].extend(rng.permutation(members).tolist())
            batch.extend(queues[c][:take])
            del queues[c][:take]
        yield np.asarray(batch)


def same_class(labels: torch.Tensor) -> torch.Tensor:
    """Boolean matrix: do texts i and j share a class (multi-label: at least one label)?"""
    if labels.ndim == 2:
        labels = labels.float()
        return (labels @ labels.T) > 0
    return labels[:, None] == labels[None, :]


def pair_loss(emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SetFit's cosine-similarity loss over all pairs in the batch, positives and negatives weighted equally.

    Equal weighting keeps the loss from being dominated by negative pairs when there are many classes.
    """
    emb = F.normalize(emb, dim=-1)
    sim = emb @ emb.T
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=emb.device)
    same = same_class(labels)[i, j].float()
    err = (sim[i, j] - same) ** 2
    pos = (err * same).sum() / same.sum().clamp(min=1)
    neg = (err * (1 - same)).sum() / (1 - same).sum().clamp(min=1)
    return 0.5 * (pos + neg)


def supcon_loss(emb: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised-contrastive loss (Khosla et al. 2020), the batch objective FastFit trains with.

    Each text is pulled toward every same-class text in the batch against all others at once, a
    softmax over the batch instead of independent pair targets: one encoder pass per text gives a
    signal from every other text.
    """
    emb = F.normalize(emb, dim=-1)
    logits = emb @ emb.T / temperature
    self_mask = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = same_class(labels) & ~self_mask
    per_anchor = -(log_prob.masked_fill(~positives, 0.0)).sum(1) / positives.sum(1).clamp(min=1)
    return per_anchor[positives.any(1)].mean()


LOSSES = {"pairs": lambda emb, labels, p: pair_loss(emb, labels),
          "supcon": lambda emb, labels, p: supcon_loss(emb, labels, p.temperature)}


def posterior_mean_c(logp: np.ndarray) -> float:
    """The C whose log is the mean of log C over HEAD_C_GRID, weighted by the likelihoods exp(logp) the
    grid's heads give held-out examples (a posterior over log C, flat on the grid)."""
    weights = np.exp(logp - logp.max())
    return float(np.exp(np.dot(weights / weights.sum(), np.log(HEAD_C_GRID))))


def contrastive_steps(p: SetFitParams, n_texts: int) -> int:
    """Steps from `epochs` (cost linear in the number of texts) unless `steps` fixes them."""
    if p.steps >= 0:
        return p.steps
    return math.ceil(p.epochs * n_texts / p.batch_size) if p.epochs > 0 else 0


@register_method
class SetFit(LinearHeadEncoderMethod):
    name = "setfit"
    description = "contrastive fine-tuning of a sentence encoder on same/different-class pairs, then a logistic head"
    params_class = SetFitParams
    kind = "encoder"
    length_params = ("max_tokens",)
    selection_grid = {"learning_rate": [2e-4, 5e-5], "l2sp": [0.0, 1.0]}

    def fit(self, texts, y, n_classes, *, seed, progress) -> dict:
        p = self.params
        rng = np.random.default_rng(seed)
        end_to_end = p.head == "differentiable" and p.head_epochs > 0
        steps = contrastive_steps(p, len(texts))
        folds, why = self._head_c_folds(y, n_classes, seed) if p.head_c == 0 else (None, None)
        overall = self._overall_task(progress, steps, folds)
        info, trainable, prior = self._train_body(texts, y, seed, rng, progress, end_to_end=end_to_end, steps=steps,
                                                  overall=overall)
        emb = self._encode(texts, progress=progress, description="Embedding training texts")
        self.head_c = p.head_c or FALLBACK_HEAD_C
        if why:
            info["head_c"] = {"chosen": FALLBACK_HEAD_C, "why": f"not chosen ({why})"}
        elif folds:
            self.head_c, info["head_c"] = self._choose_head_c(texts, y, n_classes, seed, progress, folds=folds,
                                                              steps=steps, emb=emb, overall=overall)
        self.head = LinearHead.fit_logistic(emb, y, n_classes, c=self.head_c, class_weight=p.class_weight, seed=seed)
        if end_to_end:
            with encoder_dropout(self.body, p.dropout, p.attention_dropout):
                info.update(self._train_end_to_end(texts, y, n_classes, trainable, prior, rng, progress))
        return info

    @staticmethod
    def _overall_task(progress, steps: int, folds) -> int | None:
        """One bar over every body head_c=0 trains, so its time left is the run's, not the first body's
        (on long texts the four fold bodies are most of the wait); None where only one body trains."""
        if not progress or not folds or steps == 0:
            return None
        return progress.add(f"All {1 + len(folds)} trainings (-p head_c=1 trains one)", total=steps * (1 + len(folds)))

    def _train_body(self, texts, y, seed, rng, progress, *, end_to_end=False, steps: int | None = None,
                    description: str = "Contrastive training", overall: int | None = None
                    ) -> tuple[dict, list, L2SPPrior]:
        """The backbone, trained contrastively (then WiSE-FT): the body before any head, for `steps`
        steps (default: as many as the parameters give these texts). Returns its info, and the
        trainable weights and their prior for an end-to-end stage to go on with. `overall`: a progress task
        its steps also advance."""
        p = self.params
        torch.manual_seed(seed)
        self._load_body()
        started = time.perf_counter()
        steps = contrastive_steps(p, len(texts)) if steps is None else steps
        info = {"body_steps": steps}
        trainable = prior = None
        if steps > 0 or end_to_end:
            trainable = trainable_parameters(self.body, train_embeddings=p.train_embeddings)
            # One prior for both stages: θ₀ is the pretrained encoder, not the one contrastive training left.
            prior = L2SPPrior(trainable, p.l2sp)
        if steps > 0:
            with encoder_dropout(self.body, p.dropout, p.attention_dropout):
                self._contrastive_steps(texts, y, steps, trainable, prior, rng, progress, description, overall)
            if p.wise < 1:
                prior.interpolate(p.wise)
            info["distance_from_pretrained"] = round(prior.distance(), 6)
        info["body_seconds"] = round(time.perf_counter() - started, 3)
        return info, trainable, prior

    def _head_c_folds(self, y, n_classes, seed) -> tuple[list | None, str | None]:
        """head_c=0's folds of the shots, or why the shots cannot choose C (FALLBACK_HEAD_C is kept)."""
        y = np.asarray(y)
        why = ("multi-label" if y.ndim == 2 else "differentiable head" if self.params.head == "differentiable"
               else "a class with one shot" if np.bincount(y, minlength=n_classes).min() < 2 else None)
        return (None, why) if why else (cv_folds(y, HEAD_C_FOLDS, seed), None)

    def _choose_head_c(self, texts, y, n_classes, seed, progress, *, folds: list, steps: int,
                       emb: np.ndarray, overall: int | None = None) -> tuple[float, dict]:
        """head_c=0: the C whose heads best predict shots their bodies never saw (a setfit per fold,
        trained on the other folds), as the geometric mean of HEAD_C_GRID under the out-of-fold
        likelihood (a posterior over log C, flat on the grid), scaled to all the shots. `steps` is the
        kept body's; `emb` its embeddings of the shots, which are every fold body's too when it takes no steps."""
        p = self.params
        y = np.asarray(y)
        # Each fold body takes as many steps as the body kept: one trained less (epochs on 3/4 of the
        # shots) finds its held-out shots easier than the kept body finds new texts, and C overshoots
        # (30-60 % of the K=16 overshoot, benchmarks/README.md "four quarters, full steps").
        if steps == 0:
            fold_embs = [emb] * len(folds)
        else:
            fold_embs = []
            with fold_models() as finished:
                for f, (train_idx, _) in enumerate(folds, 1):
                    fold_embs.append(self._fold_body_embeddings(
                        texts, y, train_idx, seed, progress, steps, f"Choosing the head: fold body {f}/{len(folds)}",
                        overall))
                    finished()
        oof_nll = cross_validated_nll(fold_embs, y, n_classes, HEAD_C_GRID, folds, class_weight=p.class_weight,
                                      seed=seed)
        # scikit-learn's C weighs the *sum* of the losses: a fold head fitted on 3/4 of the shots at C is
        # regularised as the head on all of them at 3/4·C (ECE lower on 18 of 28 splits at K = 8-16,
        # benchmarks/README.md "what the shots can tell").
        fold_share = float(np.mean([len(train_idx) for train_idx, _ in folds])) / len(y)
        chosen = posterior_mean_c(-len(y) * np.array([oof_nll[c] for c in HEAD_C_GRID])) * fold_share
        return chosen, {"chosen": round(chosen, 6), "folds": len(folds), "fold_share": round(fold_share, 6),
                        "oof_nll": {f"{c:g}": round(v, 6) for c, v in oof_nll.items()}}

    def _fold_body_embeddings(self, texts, y, train_idx, seed, progress, steps: int, name: str,
                              overall: int | None = None) -> np.ndarray:
        """Every shot embedded by a body trained, for `steps` steps, on the shots at train_idx only."""
        member = type(self)(self.params, self.backbone, self.device)
        with record_losses():  # its steps are not the returned model's: kept out of the loss curve
            member._train_body([texts[i] for i in train_idx], y[train_idx], seed, np.random.default_rng(seed),
                               progress, steps=steps, description=name, overall=overall)
        return member._encode(texts, progress=progress, description=f"{name}, embedding the shots")

    @classmethod
    def cv_member_params(cls, params: dict, grid_keys: set[str]) -> dict:
        """head_c=0 in a fold model of --select cv would nest HEAD_C_FOLDS trainings in each. Points rank by
        accuracy first, which the head's strength barely moves, so those members take the fallback C; the
        chosen point is then trained with head_c=0. A grid over head_c itself is left as asked."""
        if "head_c" not in grid_keys and float(params.get("head_c", SetFitParams.head_c)) == 0:
            return {**params, "head_c": FALLBACK_HEAD_C}
        return params

    def fitted_params(self) -> SetFitParams:
        """A chosen head_c is fixed in the parameters the calibrations' fold models train with."""
        return dataclasses.replace(self.params, head_c=self.head_c) if self.params.head_c == 0 else self.params

    def _optimizer(self, trainable, extra_groups=()):
        p = self.params
        groups = [{"params": trainable, "lr": p.learning_rate, "weight_decay": p.weight_decay}, *extra_groups]
        return make_optimizer(groups, lr=p.learning_rate, weight_decay=p.weight_decay, device=self.body.device)

    def _contrastive_steps(self, texts, y, steps, trainable, prior, rng, progress,
                           description: str = "Contrastive training", overall: int | None = None) -> None:
        """Contrastive training of the encoder's `trainable` weights, penalised by `prior`."""
        from transformers import get_linear_schedule_with_warmup

        p = self.params
        body = self.body
        body.train()
        optimizer = self._optimizer(trainable)
        # floor, not ceil: with a handful of steps a warm-up step at learning rate 0 is a wasted pass.
        scheduler = get_linear_schedule_with_warmup(optimizer, int(p.warmup_ratio * steps), steps)
        labels = torch.as_tensor(np.asarray(y), device=body.device)
        loss_fn = LOSSES[p.loss]
        task = progress.add(description, total=steps) if progress else None
        for idx in balanced_batches(y, p.batch_size, steps, rng):
            emb = self._embed_batch([texts[i] for i in idx])
            loss = loss_fn(emb, labels[idx], p) + prior.penalty()
            update(loss, trainable, optimizer, scheduler)
            if progress:
                progress.advance(task)
                if overall is not None:
                    progress.advance(overall)
        body.eval()

    def _train_end_to_end(self, texts, y, n_classes, trainable, prior, rng, progress) -> dict:
        """The differentiable head: start from the logistic-regression solution, then train head and
        encoder together with (binary) cross-entropy, as SetFit's end-to-end differentiable head does."""
        p = self.params
        body = self.body
        weight = torch.nn.Parameter(self.head.weight.clone().to(body.device))
        bias = torch.nn.Parameter(self.head.bias.clone().to(body.device))
        head_group = {"params": [weight, bias], "lr": p.head_learning_rate, "weight_decay": 0.0}
        optimizer = self._optimizer(trainable, [head_group])
        targets = torch.as_tensor(np.asarray(y), device=body.device)
        weights = class_weights(y, n_classes, p.class_weight)
        weights = None if weights is None else weights.to(body.device)
        n_steps = p.head_epochs * math.ceil(len(texts) / p.batch_size)
        task = progress.add("End-to-end head training", total=n_steps) if progress else None
        body.train()
        losses = []
        for _ in range(p.head_epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), p.batch_size):
                idx = order[start:start + p.batch_size]
                emb = self._embed_batch([texts[i] for i in idx])
                loss = classification_loss(emb @ weight.T + bias, targets[idx], weights) + prior.penalty()
                losses.append(update(loss, [*trainable, weight, bias], optimizer))
                if progress:
                    progress.advance(task)
        body.eval()
        self.head = LinearHead(weight, bias, self.head.activation)
        return {"head_steps": n_steps, "head_final_loss": round(losses[-1], 6),
                "distance_from_pretrained": round(prior.distance(), 6)}
