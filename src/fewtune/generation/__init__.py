"""Fine-tuning causal LMs to generate: dialogue from a few conversations, LM adaptation on raw text."""

from .builtin import DIALOGUE_DATASETS, load_dialogues, load_text_dataset
from .data import as_chats, as_texts, load_chats, load_texts
from .generator import TASKS, FewShotGenerator, GenerationParams

__all__ = ["DIALOGUE_DATASETS", "TASKS", "FewShotGenerator", "GenerationParams", "as_chats", "as_texts",
           "load_chats", "load_dialogues", "load_text_dataset", "load_texts"]
