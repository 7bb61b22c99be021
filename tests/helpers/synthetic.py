"""Small synthetic text-classification data whose classes differ by their words.

Tiny random backbones know nothing about language, so unit tests use a task they can learn from
the words alone. Each class has 4 words × 4 templates = 16 sentences, laid out as a Latin square
so that the first 8 (training) and the last 8 (held out) each use every word twice, in different
templates: held-out sentences are unseen, their words are not (a random encoder cannot guess the
meaning of a word it never saw labeled).
"""

import random

WORDS = {
    "positive": ["great", "excellent", "wonderful", "loved"],
    "negative": ["awful", "terrible", "boring", "hated"],
    "neutral": ["average", "ordinary", "plain", "typical"],
}
TEMPLATES = ["the film was {w}", "a {w} story", "{w} acting and music", "i found it {w}"]
PER_CLASS = len(WORDS["positive"]) * len(TEMPLATES)


def _sentences(label: str) -> list[str]:
    words = WORDS[label]
    n = len(words)
    return [TEMPLATES[(i // n + i % n) % len(TEMPLATES)].format(w=words[i % n]) for i in range(PER_CLASS)]


def _draw(classes, part: slice, seed: int):
    pairs = [(text, label) for label in classes for text in _sentences(label)[part]]
    random.Random(seed).shuffle(pairs)
    return [t for t, _ in pairs], [label for _, label in pairs]


def make(classes=("negative", "positive"), per_class=8, *, seed=0):
    """Training sentences: the first `per_class` (at most 8) of each class."""
    return _draw(classes, slice(0, min(per_class, PER_CLASS // 2)), seed)


def held_out(classes=("negative", "positive"), per_class=8, seed=1):
    """Sentences never in `make`'s output, built from the same words."""
    return _draw(classes, slice(PER_CLASS - min(per_class, PER_CLASS // 2), PER_CLASS), seed)


# Multi-label: every sentence has a sentiment label and, for some, a topic label ("music" or
# "plot"); sentences with neither topic word carry the sentiment label alone. Two phrasings per
# topic; training and held-out sentences pair each word with the other phrasing, so every word and
# phrasing is seen in training but no held-out sentence is.
TOPICS = {
    "music": ["the music was {w}", "{w} music overall"],
    "plot": ["the plot was {w}", "a {w} plot"],
    None: ["i found it {w}", "it was {w} to me"],
}


def make_multi_label(part: str = "train", seed: int = 0):
    """(texts, label lists) for "train" or "test"."""
    rows = []
    for sentiment in ("negative", "positive"):
        for i, w in enumerate(WORDS[sentiment]):
            variant = (i // 2 + (part != "train")) % 2
            for topic, templates in TOPICS.items():
                rows.append((templates[variant].format(w=w), [sentiment] + ([topic] if topic else [])))
    random.Random(seed).shuffle(rows)
    return [t for t, _ in rows], [labels for _, labels in rows]
