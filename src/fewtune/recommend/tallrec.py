"""TALLRec (Bao et al. 2023, "TALLRec: An Effective and Efficient Tuning Framework to Align Large Language
Model with Recommendation", RecSys 2023): recommendation as a yes/no question to a LoRA-tuned causal LM.

Each (user history, target item) pair becomes an instruction prompt

    Given the user's preference and unpreference, identify whether the user will like the target movie
    by answering "Yes." or "No.".
    User Preference: "Toy Story (1995)", "Fargo (1996)"
    User Unpreference: "Home Alone (1990)"
    Whether the user will like the target movie "Babe (1995)"?
    Answer:

and P(like) is the LM's probability of " Yes" against " No" after it. Training is the paper's few-shot
setting: `samples` such prompts (16 / 64 / 256 in the paper) drawn from the training users, half yes,
half no, fitted with fewtune's `prompt` classification method (label words, LoRA, early stopping on a
held-out fifth) — this module only builds the prompts; the training loop is that method's.

Histories: TALLRec keeps at most 10 history items, the most recent. On TALLRec's own protocol
(`recommend.tallrec_protocol`, timestamps kept) the training questions are the budget's samples, each
history the user's `history` latest ratings before the target, in time order. The cold-start protocol
reveals a random K of a user's ratings with no order, so there a training history is a seeded random
draw of `history` of the user's other likes/dislikes, and a new user's history is their first
`history` known ratings (all of them when K ≤ history).

Cost: one LM forward per (user, item), with the history repeated in every prompt. Scoring all
held-out items of every ML-100k test user takes hours on a CPU; the benchmark's `max_items` caps the
items scored per user (for every method, so comparisons stay on the same items). A user's scores
are cached on their state, so the protocol's AUC and ranking passes never score an item twice.

Saved: the prompt classifier's folder (LoRA adapter only, reloaded onto the cached base LM) in the
recommender's folder under `lm/`, and the drawn training examples as arrays.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import FewtuneError
from ..params import param
from .base import Recommender, RecommenderParams, Sample, TrainSet, register_recommender

LM_FOLDER = "lm"
TITLE_CHARS = 100  # a title longer than this is cut, so a prompt's length is bounded by `history`
CLASSES = ("no", "yes")


@dataclasses.dataclass
class TallRecParams(RecommenderParams):
    lm: str = param("smollm2-135m", "causal LM (a fewtune backbone name or folder) tuned with LoRA; the "
                                    "recommender's encoder backbone is not used")
    samples: int = param(64, "training prompts drawn from the training users, half liked and half disliked targets")
    history: int = param(10, "history items in each prompt: drawn per training prompt, the first known "
                             "ratings of a new user")
    epochs: int = param(10, "passes over the training prompts (0 = the untuned LM, zero-shot)")
    learning_rate: float = param(1e-3, "learning rate of the LoRA adapters", renamed_from=("lr",))
    batch_size: int = param(8, "prompts per training step and per scoring forward pass")
    lora_r: int = param(8, "LoRA rank")
    early_stopping: bool = param(True, "hold out a fifth of the prompts and keep the best epoch, the untuned LM included")
    titles_only: bool = param(True, "name items by the text before ' — ' (MovieLens: 'Title (year)' without the "
                                    "genres), as TALLRec's prompts do")
    item_noun: str = param("movie", "what the instruction calls an item")

    def check(self, problems: list[str]) -> None:
        if not self.lm.strip():
            problems.append("lm must name a causal LM")
        if self.samples < 2:
            problems.append(f"samples must be at least 2 (one liked and one disliked target), got {self.samples}")
        if self.history < 0:
            problems.append(f"history must be 0 or more, got {self.history}")
        if self.epochs < 0:
            problems.append(f"epochs must not be negative, got {self.epochs}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be positive, got {self.learning_rate}")
        for name in ("batch_size", "lora_r"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.item_noun.strip():
            problems.append("item_noun must not be empty")

    def prompt_params(self) -> dict:
        """The `prompt` classification method's parameters: the whole prompt is the text, so the
        template is just {text}; max_tokens is far above a bounded prompt, so nothing is cut."""
        return {"template": "{text}", "label_words": "no=No,yes=Yes", "max_tokens": 4096,
                "epochs": self.epochs, "learning_rate": self.learning_rate, "batch_size": self.batch_size,
                "lora_r": self.lora_r, "lora_alpha": 2 * self.lora_r, "early_stopping": self.early_stopping}


def item_title(text: str, titles_only: bool = True) -> str:
    """What a prompt calls an item: its text (before ' — ' with titles_only), at most TITLE_CHARS characters."""
    if titles_only:
        text = text.split(" — ", 1)[0]
    text = " ".join(text.split())
    return text if len(text) <= TITLE_CHARS else text[:TITLE_CHARS - 1].rstrip() + "…"


def latest(history: np.ndarray, n: int) -> np.ndarray:
    """The last n entries of a time-ordered history (none when n is 0)."""
    return history[max(len(history) - n, 0):]


def build_prompt(liked: list[str], disliked: list[str], target: str, noun: str = "movie") -> str:
    """TALLRec's instruction for one (history, target item); the label word (" Yes"/" No") follows."""
    def quoted(titles):
        return ", ".join(f'"{t}"' for t in titles)

    return (f"Given the user's preference and unpreference, identify whether the user will like the target {noun} "
            f'by answering "Yes." or "No.".\n'
            f"User Preference: {quoted(liked)}\n"
            f"User Unpreference: {quoted(disliked)}\n"
            f'Whether the user will like the target {noun} "{target}"?\n'
            f"Answer:")


def draw_samples(labels, n: int, history: int, rng: np.random.Generator) -> list[Sample]:
    """`n` training examples, alternately liked and disliked targets (n/2 each, the odd one liked).

    A user is drawn for each (without replacement while enough users have that kind of target), then
    one of their liked (or disliked) items as the target, and `history` of their other likes/dislikes.
    Only users with at least history + 1 of them take part, so every history is full length.
    """
    csr = labels.tocsr()
    counts = np.diff(csr.indptr)
    eligible = np.flatnonzero(counts >= history + 1)
    if not len(eligible):
        raise FewtuneError(f"tallrec: no training user has history + 1 = {history + 1} liked or disliked items; "
                           f"lower history (the most any user has is {int(counts.max(initial=0))})")
    out: list[Sample] = []
    for want, count in ((1, (n + 1) // 2), (-1, n // 2)):
        pool = [u for u in eligible if (np.sign(csr.data[csr.indptr[u]:csr.indptr[u + 1]]) == want).any()]
        if not pool:
            kind = "liked" if want > 0 else "disliked"
            raise FewtuneError(f"tallrec: no training user with history + 1 = {history + 1} ratings has a {kind} "
                               "item; balanced yes/no examples cannot be drawn")
        for u in rng.choice(pool, size=count, replace=len(pool) < count):
            items = csr.indices[csr.indptr[u]:csr.indptr[u + 1]]
            signs = np.sign(csr.data[csr.indptr[u]:csr.indptr[u + 1]]).astype(np.int8)
            target = int(rng.choice(np.flatnonzero(signs == want)))
            others = rng.permutation(np.delete(np.arange(len(items)), target))[:history]
            out.append(Sample(int(u), int(items[target]), want, items[others].astype(np.int64), signs[others]))
    return out


@dataclass
class TallRecUser:
    """A new user: the titles they liked and disliked, and the P(like) of every item scored so far."""

    liked: list[str]
    disliked: list[str]
    cache: dict[int, float] = field(default_factory=dict)


@register_recommender
class TallRec(Recommender):
    name = "tallrec"
    description = ("TALLRec: a causal LM LoRA-tuned on yes/no instruction prompts (the user's liked and disliked "
                   "titles, then the target's), via the prompt method; one LM forward per scored item (slow)")
    params_class = TallRecParams

    # -- training --------------------------------------------------------------------------
    def fit(self, train: TrainSet, *, seed: int, progress=None) -> dict:
        from ..classifier import FewShotClassifier  # why: imports torch and the methods (~10 s)

        p = self.params
        self._set_titles(train.item_texts)
        if train.samples is not None:  # TALLRec's protocol: the budget's own questions, histories in time order
            samples = [dataclasses.replace(s, history=latest(s.history, p.history),
                                           history_labels=latest(s.history_labels, p.history)) for s in train.samples]
        else:
            samples = draw_samples(train.labels, p.samples, p.history, np.random.default_rng([seed, 7]))
        texts = [self._prompt(s.history, s.history_labels, s.target) for s in samples]
        y = [CLASSES[s.label > 0] for s in samples]
        start = time.perf_counter()
        self.classifier_ = FewShotClassifier(p.lm, "prompt", params=p.prompt_params(), seed=seed,
                                             device=self.device).fit(texts, y)
        self.samples_ = samples
        info = self.classifier_.train_info_
        keep = ("epochs", "best_epoch", "validation_loss", "final_loss", "trainable_parameters")
        return {"lm_train_seconds": round(time.perf_counter() - start, 2), "samples": len(samples),
                "liked_samples": sum(s.label > 0 for s in samples),
                "prompt_tokens_max": max(len(self.classifier_.model_.tokenizer(t)["input_ids"]) for t in texts),
                **{k: info[k] for k in keep if k in info}}

    def _set_titles(self, item_texts: list[str]) -> None:
        self.titles_ = [item_title(t, self.params.titles_only) for t in item_texts]

    def _prompt(self, history: np.ndarray, labels: np.ndarray, target: int) -> str:
        history, labels = latest(history, self.params.history), latest(labels, self.params.history)
        liked = [self.titles_[i] for i, lab in zip(history, labels) if lab > 0]
        disliked = [self.titles_[i] for i, lab in zip(history, labels) if lab < 0]
        return build_prompt(liked, disliked, self.titles_[target], self.params.item_noun)

    # -- a new user ------------------------------------------------------------------------
    def personalise(self, items: np.ndarray, labels: np.ndarray) -> TallRecUser:
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)[:self.params.history]
        labels = np.asarray(labels)[:self.params.history]
        return TallRecUser([self.titles_[i] for i, lab in zip(items, labels) if lab > 0],
                           [self.titles_[i] for i, lab in zip(items, labels) if lab < 0])

    def like_proba(self, user: TallRecUser, items: np.ndarray) -> np.ndarray:
        self._check_fitted()
        items = [int(i) for i in np.asarray(items, dtype=np.int64).reshape(-1)]
        todo = list(dict.fromkeys(i for i in items if i not in user.cache))
        if todo:
            prompts = [build_prompt(user.liked, user.disliked, self.titles_[i], self.params.item_noun) for i in todo]
            yes = list(self.classifier_.classes_).index("yes")
            proba = self.classifier_.predict_proba(prompts)[:, yes]
            user.cache.update(zip(todo, proba.astype(np.float64).tolist()))
        return np.array([user.cache[i] for i in items], dtype=np.float64)

    def score_samples(self, samples, progress=None) -> np.ndarray:
        """All the questions' prompts in one batched pass (the protocol asks one target per history)."""
        self._check_fitted()
        prompts = [self._prompt(s.history, s.history_labels, s.target) for s in samples]
        yes = list(self.classifier_.classes_).index("yes")
        return self.classifier_.predict_proba(prompts)[:, yes].astype(np.float64)

    def _check_fitted(self) -> None:
        if not hasattr(self, "classifier_"):
            raise FewtuneError("tallrec is not fitted yet; call fit() or load a saved recommender")

    # -- persistence -----------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        # The LM lives in its own folder (save_files); these arrays record which examples it was tuned on.
        # Every history has exactly `history` items (draw_samples), so they stack into a matrix.
        s, shape = self.samples_, (len(self.samples_), self.params.history)
        return {"sample_user": np.array([x.user for x in s], np.int64),
                "sample_target": np.array([x.target for x in s], np.int64),
                "sample_label": np.array([x.label for x in s], np.int8),
                "sample_history": np.array([x.history.tolist() for x in s], np.int64).reshape(shape),
                "sample_history_labels": np.array([x.history_labels.tolist() for x in s], np.int8).reshape(shape)}

    def load_state(self, arrays) -> None:
        try:
            self.samples_ = [Sample(int(u), int(t), int(lab), h.astype(np.int64), hl.astype(np.int8))
                             for u, t, lab, h, hl in zip(arrays["sample_user"], arrays["sample_target"],
                                                         arrays["sample_label"], arrays["sample_history"],
                                                         arrays["sample_history_labels"])]
        except KeyError as e:
            raise FewtuneError(f"tallrec weights lack {e}") from None

    def save_files(self, folder: Path) -> None:
        self._check_fitted()
        self.classifier_.save(folder / LM_FOLDER)

    def load_files(self, folder: Path, item_texts: list[str]) -> None:
        from ..classifier import FewShotClassifier  # why: imports torch and the methods (~10 s)

        if not (folder / LM_FOLDER).is_dir():
            raise FewtuneError(f"{folder}: no {LM_FOLDER}/ folder; this tallrec recommender was saved incompletely")
        self.classifier_ = FewShotClassifier.load(folder / LM_FOLDER, device=self.device)
        self._set_titles(item_texts)
