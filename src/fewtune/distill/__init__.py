"""Distillation: a slow, accurate classifier (the teacher) labels unlabeled texts; a fast one (the student) learns them.

    from fewtune.distill import distill
    distill("prompt-model", "unlabeled.csv", "student", shots=("train.csv", "text", "label"))
    distill("prompt-model", "unlabeled.csv", "student-static", student="static")

- `pool`: reading and checking the unlabeled texts (and their hash for the card).
- `teacher`: loading any saved classifier and labeling the pool with its probabilities.
- `static_table`: a backbone distilled once into a model2vec static embedding table, cached.
- `students`: the encoder student (finetune on soft targets) and the static student (a softmax head).
- `api`: `distill`, the whole run (the command: fewtune/cli/distill.py).
Names are imported on first use, so `fewtune --help` does not pay for torch.
"""

__all__ = ["distill"]


def __getattr__(name: str):
    if name == "distill":
        from .api import distill  # why: torch (the teacher, the students); `fewtune --help` imports this package

        return distill
    raise AttributeError(f"module 'fewtune.distill' has no attribute {name!r}")
