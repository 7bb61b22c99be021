"""The texts as a method's model reads them: sentence pairs joined into one input.

Shared by the classifier, the selection of hyper-parameters, the posteriors, check-data and the ONNX
runtime, which all run models on the same shots and must feed them alike.
"""

from __future__ import annotations


def join_pairs(texts, text_pairs, sep: str | None) -> list[str]:
    """Sentence pairs as every fewtune model reads them (training, audit, ONNX runtime): one input each,
    the two texts joined by the tokenizer's separator token, or by a newline where it has none."""
    sep = sep or "\n"
    return [f"{a} {sep} {b}" for a, b in zip(texts, text_pairs)]


def model_texts(data, model) -> list[str]:
    if data.text_pairs is None:
        return data.texts
    tokenizer = getattr(getattr(model, "body", None), "tokenizer", None)
    return join_pairs(data.texts, data.text_pairs, getattr(tokenizer, "sep_token", None))
