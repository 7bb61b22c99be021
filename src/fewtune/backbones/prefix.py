"""The text an encoder expects before every input, in one place.

Some encoders were trained with a fixed text before each input (e5: "query: "). The registry entry
declares it (catalog.BackboneSpec.prefix); the prepared folder, and every body fewtune saves, carry
it as sentence-transformers' default prompt; and every fewtune path that feeds an encoder reads it
here: training and prediction (training.embed_texts.body_features), check-data's token counts,
continued pretraining, and the exports (ONNX, the static student), which record it beside their
own tokenizer and put it before each text at run time. Torch-free, for those runtimes.
"""

from __future__ import annotations


def text_prefix(body) -> str:
    """What `body` (a SentenceTransformer) expects before every text: its default prompt, else ""."""
    name = getattr(body, "default_prompt_name", None)
    prompts = getattr(body, "prompts", None) or {}
    return (prompts.get(name) or "") if name else ""


def with_prefix(texts, prefix: str) -> list[str]:
    """`texts` as the encoder reads them, for code that tokenizes without a SentenceTransformer."""
    return [prefix + t for t in texts] if prefix else list(texts)
