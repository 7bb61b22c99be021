"""Scoring classes with a causal LM: a template around each text, then the log-probability of each
class's label words after it (LabelScorer), what zero-shot, icl, prompt and hybrid all read."""

from __future__ import annotations

import torch

from ..data.language import space_between
from ..errors import FewtuneError
from .label_words import check_expressible, first_tokens_if_distinct
from .prefix_cache import MIN_SHARED_PREFIX, logits_at, logprobs_after_prefix, prefix_cache, shared_prefix_length


def parse_label_words(spec: str) -> dict[str, str]:
    """'neg=terrible,pos=great' -> {"neg": "terrible", "pos": "great"}."""
    words: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        label, sep, word = item.partition("=")
        if not sep or not label.strip() or not word.strip():
            raise FewtuneError(f"label_words expects LABEL=WORD pairs separated by commas, got {item!r}")
        words[label.strip()] = word.strip()
    return words


class LabelScorer:
    """Scores every class for a batch of prompts with one causal LM."""

    def __init__(self, model, tokenizer, template: str, words: list[str], *, max_tokens: int,
                 length_normalize: bool, first_token: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.template, self.max_tokens, self.length_normalize = template, max_tokens, length_normalize
        self.words = list(words)
        # A label word is a continuation: it takes a leading space where the script writes one
        # ("Sentiment: great"), not after whitespace nor in Chinese/Japanese ("情感：正面").
        self.spaces = [space_between(template, w) for w in words]
        self.word_ids = [tokenizer(space + w, add_special_tokens=False)["input_ids"]
                         for space, w in zip(self.spaces, words)]
        check_expressible(tokenizer, self.words, self.word_ids)
        if first_token:
            self.word_ids = first_tokens_if_distinct(self.word_ids)
        self.single_token = all(len(ids) == 1 for ids in self.word_ids)
        self.reuse_prefix = True  # encode a long prefix shared by a batch's prompts once (no_grad only)

    def fill(self, text: str, max_tokens: int | None = None) -> str:
        """The template around `text`, cut to at most max_tokens (default: the scorer's own) tokens."""
        return self.template.replace("{text}", cut_to_tokens(self.tokenizer, text, max_tokens or self.max_tokens))

    def demonstration(self, text: str, label: int, max_tokens: int) -> str:
        """A solved example: the filled template followed by the label's word."""
        return self.fill(text, max_tokens) + self.spaces[label] + self.words[label]

    def prompts(self, texts: list[str], contexts: list[str] | None = None) -> list[list[int]]:
        """Token ids of each filled template, after its context (demonstrations) if given."""
        contexts = contexts or [""] * len(texts)
        return [self.tokenizer(context + self.fill(text))["input_ids"] for context, text in zip(contexts, texts)]

    def scores(self, prompt_ids: list[list[int]]) -> torch.Tensor:
        """(n, C) log-probabilities of each class's label words after each prompt (differentiable)."""
        if self.single_token:
            # One pass: the next-token distribution after the prompt holds every single-token label.
            logp = self._next_token_logprobs(prompt_ids)
            return logp[:, [ids[0] for ids in self.word_ids]]
        seqs, spans = [], []
        for p in prompt_ids:
            for ids in self.word_ids:
                seqs.append(p + ids)
                spans.append((len(p), len(ids)))
        logits = self._forward(seqs)
        logp = torch.log_softmax(logits.float(), dim=-1)
        out = []
        for row, (seq, (start, n)) in enumerate(zip(seqs, spans)):
            positions = torch.arange(start - 1, start - 1 + n, device=logp.device)
            targets = torch.tensor(seq[start:start + n], device=logp.device)
            total = logp[row, positions, targets].sum()
            out.append(total / n if self.length_normalize else total)
        return torch.stack(out).view(len(prompt_ids), len(self.word_ids))

    def _next_token_logprobs(self, prompt_ids: list[list[int]]) -> torch.Tensor:
        shared = shared_prefix_length(prompt_ids)
        if self.reuse_prefix and shared >= MIN_SHARED_PREFIX and not torch.is_grad_enabled():
            # Prompts that repeat a long context (a user's history in tallrec, a long instruction)
            # encode it once: each prompt then costs its own tokens only.
            cache = prefix_cache(self.model, prompt_ids[0][:shared])
            return logprobs_after_prefix(self.model, cache, shared, [p[shared:] for p in prompt_ids],
                                         self.tokenizer.pad_token_id)
        last = [len(p) - 1 for p in prompt_ids]
        logits, column = self._forward(prompt_ids, keep=last)
        return torch.log_softmax(logits[torch.arange(len(prompt_ids), device=logits.device), column].float(), dim=-1)

    def _forward(self, seqs: list[list[int]], keep: list[int] | None = None):
        """Logits of the right-padded batch; with `keep` (one position per sequence), (logits, column):
        row i's logits at keep[i] are logits[i, column[i]]."""
        # Right padding: positions of the real tokens are unchanged, so no position ids are needed.
        pad = self.tokenizer.pad_token_id
        width = max(len(s) for s in seqs)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        if keep is None:
            return self.model(input_ids=input_ids, attention_mask=mask).logits
        return logits_at(self.model, keep, input_ids=input_ids, attention_mask=mask)


def cut_to_tokens(tokenizer, text: str, max_tokens: int) -> str:
    """`text` cut after its first `max_tokens` tokens (a limit in tokens, never in characters or words).

    A fast tokenizer's offsets cut the original string where the first dropped token starts, so
    nothing is re-spelled and a character split over two byte-level tokens (Chinese in a byte-level
    BPE) is dropped whole rather than left as "\ufffd". Otherwise the kept tokens are decoded.
    """
    if getattr(tokenizer, "is_fast", False):
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if len(offsets) <= max_tokens:
            return text
        # Tokens with no characters of their own (offsets (0, 0)) say nothing about where to cut.
        return text[: next((start for start, end in offsets[max_tokens:] if end > start), len(text))]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
    return tokenizer.decode(ids)
