"""Turning conversations and texts into token ids and loss labels for a causal LM.

Conversations are rendered with the backbone's own chat template when it has one (SmolLM2-Instruct
does), so a fine-tuned model is prompted exactly as it was trained; a base model without a template
gets a plain "User: ... / Assistant: ..." layout ending each reply with the EOS token, so it learns
to stop. Only the assistant's replies (and the tokens that close them) carry a loss: the model
learns to answer, not to imitate the user. Raw texts are trained on every token, EOS appended.
Padding never carries a loss (label -100).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import FewtuneError
from .data import Chat

IGNORE = -100
PLAIN_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss is taken


class LMFormat:
    """Encodes training examples and generation prompts for one tokenizer."""

    def __init__(self, tokenizer, *, max_length: int, chat_template: bool | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.chat_template = bool(tokenizer.chat_template) if chat_template is None else chat_template

    # -- conversations --------------------------------------------------------------------
    def render(self, chat: Chat, *, add_generation_prompt: bool = False) -> str:
        if self.chat_template:
            return self.tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=add_generation_prompt)
        eos = self.tokenizer.eos_token or ""
        text = "".join(f"{PLAIN_NAMES[m['role']]}: {m['content']}{eos if m['role'] == 'assistant' else ''}\n"
                       for m in chat)
        return text + ("Assistant:" if add_generation_prompt else "")

    def reply_spans(self, chat: Chat) -> tuple[str, list[tuple[int, int]]]:
        """The rendered conversation and the character spans of the assistant replies in it."""
        full = self.render(chat)
        spans = []
        for i, message in enumerate(chat):
            if message["role"] != "assistant":
                continue
            start = len(self.render(chat[:i], add_generation_prompt=True))
            upto = self.render(chat[: i + 1])
            end = len(upto)
            if not full.startswith(upto):
                # Templates that rewrite earlier turns (e.g. strip reasoning) break the prefix rule.
                raise FewtuneError("this backbone's chat template does not render a conversation as a prefix of "
                                   "its continuation; train with chat_template=false")
            spans.append((start, end))
        return full, spans

    def encode_chat(self, chat: Chat) -> Encoded:
        """Token ids, with labels on the assistant's replies only. A conversation longer than max_length keeps
        its latest turns: the oldest exchanges go first (a system message stays), and a last exchange that
        is still too long loses its beginning, so what is learned is always the end, the latest reply."""
        chat = list(chat)
        first = 1 if chat and chat[0]["role"] == "system" else 0
        while True:
            enc = self._encode_whole(chat)
            if len(enc.input_ids) <= self.max_length:
                break
            replies = [i for i, m in enumerate(chat) if m["role"] == "assistant"]
            if replies and replies[-1] < len(chat) - 1:  # turns after the last reply teach nothing: they go first
                chat = chat[: replies[-1] + 1]
                continue
            # Then the oldest exchange, as long as a reply remains after it.
            later_users = [i for i in range(first + 1, len(chat)) if chat[i]["role"] == "user"
                           and any(m["role"] == "assistant" for m in chat[i:])]
            if not later_users:
                break
            chat = chat[:first] + chat[later_users[0]:]
        return Encoded(enc.input_ids[-self.max_length:], enc.labels[-self.max_length:])

    def _encode_whole(self, chat: Chat) -> Encoded:
        full, spans = self.reply_spans(chat)
        enc = self.tokenizer(full, add_special_tokens=not self.chat_template, return_offsets_mapping=True)
        labels = []
        for token, (start, end) in zip(enc["input_ids"], enc["offset_mapping"]):
            inside = end > start and any(a <= start < b for a, b in spans)
            labels.append(token if inside else IGNORE)
        return Encoded(list(enc["input_ids"]), labels)

    def prompt_ids(self, chat: Chat) -> list[int]:
        """Token ids that ask the model for the next assistant reply."""
        text = self.render(chat, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=not self.chat_template)["input_ids"]

    # -- raw text -------------------------------------------------------------------------
    def encode_text(self, text: str) -> Encoded:
        ids = self.tokenizer(text)["input_ids"]
        if self.tokenizer.eos_token_id is not None:
            ids = ids[: self.max_length - 1] + [self.tokenizer.eos_token_id]
        return self._cut(Encoded(ids, list(ids)))

    def text_prompt_ids(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]

    def _cut(self, enc: Encoded) -> Encoded:
        return Encoded(enc.input_ids[: self.max_length], enc.labels[: self.max_length])


def collate(batch: list[Encoded], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-padded tensors; padding is masked out of attention and of the loss."""
    width = max(len(e.input_ids) for e in batch)
    ids = [e.input_ids + [pad_id] * (width - len(e.input_ids)) for e in batch]
    labels = [e.labels + [IGNORE] * (width - len(e.labels)) for e in batch]
    mask = [[1] * len(e.input_ids) + [0] * (width - len(e.input_ids)) for e in batch]
    return {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(mask, device=device),
            "labels": torch.tensor(labels, device=device)}


def token_nll(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """(sum of the next-token negative log-likelihoods over labelled tokens, their count)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]),
                                            targets.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return nll, int((targets != IGNORE).sum())
