"""What the few-shot methods are built from: heads, optimisers, LoRA, encoding, the encoder body, label
words and the causal LM's scorer and prefix cache. Methods (fewtune.methods) import from here and never
from each other; nothing here imports a method."""
