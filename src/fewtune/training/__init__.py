"""What the few-shot methods are built from: heads, optimisers, LoRA, embedding texts (embed_texts), the
encoder methods' body (encoder_method) and transformer layers, the label-word methods' model
(label_word_method), label words and the causal LM's scorer and prefix cache. Methods (fewtune.methods)
import from here and never from each other; nothing here imports a method, only what every method is
(fewtune.methods.base)."""
