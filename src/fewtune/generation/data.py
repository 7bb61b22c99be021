"""Training data for causal-LM fine-tuning: conversations (chat messages) and raw texts.

A conversation is a list of messages ``{"role": "system"|"user"|"assistant", "content": str}``.
Files may hold one conversation per row in a ``messages`` column (chat JSONL, as the OpenAI and
Hugging Face chat formats write it) or a (prompt, response) pair per row, which becomes a one-turn
conversation. Raw text for LM adaptation is a ``.txt`` file (one text per non-empty line) or a
table column. Every problem names the file, the row and the field, as the classifier's readers do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..data.readers import decode_bytes, read_table
from ..errors import DataError

Message = dict[str, str]
Chat = list[Message]
ROLES = ("system", "user", "assistant")


def check_chat(value: Any, where: str) -> Chat:
    """A validated copy of one conversation; `where` names it in errors ("chats.jsonl, line 3")."""
    if not isinstance(value, (list, tuple)) or not value:
        raise DataError(f"{where}: a conversation must be a non-empty list of messages, got {_kind(value)}")
    chat: Chat = []
    for i, message in enumerate(value):
        at = f"{where}, message {i}"
        if not isinstance(message, dict):
            raise DataError(f"{at}: expected an object with 'role' and 'content', got {_kind(message)}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise DataError(f"{at}: role must be one of {', '.join(ROLES)}, got {role!r}")
        if not isinstance(content, str) or not content.strip():
            raise DataError(f"{at}: content must be non-empty text, got {_kind(content)}")
        chat.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in chat):
        raise DataError(f"{where}: no assistant message, so there is nothing to learn to answer")
    return chat


def as_chats(items: Iterable[Any], *, source: str = "input") -> list[Chat]:
    """Conversations from Python values: message lists, (prompt, response) pairs, or dicts with
    'messages' or 'prompt'/'response'."""
    chats = []
    for i, item in enumerate(items):
        where = f"{source}, item {i}"
        if isinstance(item, dict) and "messages" in item:
            item = item["messages"]
        elif isinstance(item, dict) and {"prompt", "response"} <= set(item):
            item = _pair(item["prompt"], item["response"], where)
        elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
            item = _pair(*item, where)
        chats.append(check_chat(item, where))
    if not chats:
        raise DataError(f"{source}: no conversations")
    return chats


def load_chats(path: str | Path, *, messages_col: str = "messages", prompt_col: str = "prompt",
               response_col: str = "response", encoding: str = "utf-8") -> list[Chat]:
    """Conversations from CSV/TSV/JSONL/Parquet: a `messages_col` of message lists, or prompt/response columns."""
    source = str(path)
    columns, records, rows = read_table(path, encoding=encoding)
    if messages_col in columns:
        return [check_chat(r.get(messages_col), f"{source}, {row}, column {messages_col!r}")
                for r, row in zip(records, rows)]
    missing = [c for c in (prompt_col, response_col) if c not in columns]
    if missing:
        raise DataError(f"{source}: no column {messages_col!r} (chat messages) and no {missing[0]!r} column "
                        f"for (prompt, response) pairs; columns are {', '.join(map(repr, columns))}")
    return [check_chat(_pair(r.get(prompt_col), r.get(response_col), f"{source}, {row}"), f"{source}, {row}")
            for r, row in zip(records, rows)]


def as_texts(items: Iterable[Any], *, source: str = "input") -> list[str]:
    texts = []
    for i, text in enumerate(items):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{source}, item {i}: expected non-empty text, got {_kind(text)}")
        texts.append(text)
    if not texts:
        raise DataError(f"{source}: no texts")
    return texts


def load_texts(path: str | Path, *, text_col: str = "text", encoding: str = "utf-8") -> list[str]:
    """Raw texts: a .txt file (one per non-empty line) or the `text_col` column of a table."""
    source = str(path)
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise DataError(f"{source}: no such file")
        lines = decode_bytes(path.read_bytes(), source, encoding).splitlines()
        texts = [line for line in lines if line.strip()]
        if not texts:
            raise DataError(f"{source}: no text (the file is empty or blank)")
        return texts
    columns, records, rows = read_table(path, encoding=encoding)
    if text_col not in columns:
        raise DataError(f"{source}: no column {text_col!r}; columns are {', '.join(map(repr, columns))}")
    texts = []
    for record, row in zip(records, rows):
        text = record.get(text_col)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{source}, {row}, column {text_col!r}: expected non-empty text, got {_kind(text)}")
        texts.append(text)
    return texts


def _pair(prompt: Any, response: Any, where: str) -> Chat:
    for name, value in (("prompt", prompt), ("response", response)):
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}, {name}: expected non-empty text, got {_kind(value)}")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return "an empty text" if not value.strip() else repr(value[:40])
    return type(value).__name__
