"""Built-in data for causal-LM fine-tuning: real conversations for dialogue, real texts for LM adaptation.

`chitchat`: real human-to-human chats (chitchat-dataset 0.9.0, MIT; Bruner, "chitchat
dataset", github.com/BYU-PCCL/chitchat-dataset), read from the installed package. Consecutive
messages of one sender form a turn; the first sender speaks as "user", the other as "assistant".
Of its 7,168 conversations, 4,009 distinct two-person ones are used (3,150 have one sender only).
The test split is fixed by a hash of each conversation's text, the classification data sets' rule;
conversations the file holds twice are kept once.

For `--task lm`, any built-in classification data set gives its texts (labels dropped), with its
own fixed test split: `mr` adapts an LM to movie-review language.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

from ..data.builtin import _is_test_key, load_builtin, split_key
from ..errors import DataError
from .data import Chat

CHITCHAT = {"package": "chitchat-dataset", "version": "0.9.0", "module": "chitchat_dataset", "file": "dataset.json"}
DIALOGUE_DATASETS = ("chitchat",)


def load_dialogues(name: str) -> tuple[list[Chat], list[Chat]]:
    """(training pool, fixed test split) of a built-in dialogue data set."""
    if name not in DIALOGUE_DATASETS:
        raise DataError(f"unknown dialogue data set {name!r}; built in: {', '.join(DIALOGUE_DATASETS)}")
    train, test = _chitchat()
    return [list(c) for c in train], [list(c) for c in test]


def load_text_dataset(name: str) -> tuple[list[str], list[str]]:
    """(training texts, test texts) of a built-in classification data set, labels dropped."""
    pool, test = load_builtin(name)
    return list(pool.texts), list(test.texts)


@functools.lru_cache(maxsize=1)
def _chitchat() -> tuple[tuple[Chat, ...], tuple[Chat, ...]]:
    spec = importlib.util.find_spec(CHITCHAT["module"])
    folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    path = folder / CHITCHAT["file"] if folder else None
    if path is None or not path.is_file():
        raise DataError(f"the chitchat data set is not installed; run: pip install --no-deps "
                        f"{CHITCHAT['package']}=={CHITCHAT['version']}")
    source = f"builtin:chitchat ({path})"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{source}: corrupt ({e}); reinstall the package") from None
    train, test, seen = [], [], set()
    for conv_id in sorted(raw):  # sorted: the order must not depend on the file's key order
        chat = _chat(raw[conv_id].get("messages", []))
        # The split is decided by the conversation's text, as for the classification data sets: the
        # file holds some conversations twice under different ids, and both copies must land on the
        # same side (the second is dropped).
        key = split_key(" ".join(f"{m['role']}: {m['content']}" for m in chat))
        if chat and key not in seen:
            seen.add(key)
            (test if _is_test_key(key) else train).append(chat)
    return tuple(train), tuple(test)


def _chat(turns: list[list[dict]]) -> Chat:
    roles: dict[str, str] = {}
    chat: Chat = []
    for turn in turns:
        texts = [m.get("text", "").strip() for m in turn if m.get("text", "").strip()]
        if not texts:
            continue
        sender = turn[0].get("sender")
        role = roles.setdefault(sender, "user" if not roles else "assistant")
        if len(roles) > 2:
            return []  # not a two-party chat: leave it out rather than guess the roles
        chat.append({"role": role, "content": "\n".join(texts)})
    return chat if any(m["role"] == "assistant" for m in chat) else []


def list_dialogue_datasets() -> list[dict]:
    """Rows for `fewtune datasets`, in the classification data sets' shape (sizes stored, not read)."""
    installed = importlib.util.find_spec(CHITCHAT["module"]) is not None
    return [{
        "name": "chitchat", "task": "generate",
        "description": "real two-person chats (chitchat-dataset); train dialogue with --task generate",
        "classes": [], "n_train": 3190, "n_test": 819, "installed": installed,
        "package": f"{CHITCHAT['package']}=={CHITCHAT['version']}",
        "install": f"pip install --no-deps {CHITCHAT['package']}=={CHITCHAT['version']}",
        "citation": "Bruner, chitchat dataset (BYU-PCCL), github.com/BYU-PCCL/chitchat-dataset",
        "licence": "MIT (package)",
    }]
