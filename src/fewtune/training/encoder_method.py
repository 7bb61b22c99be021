"""What every method built on a sentence-encoder body shares: loading it, saving it to body/, reloading;
and, for methods whose head is a LinearHead on the body's embeddings (setfit, linear-probe), the head too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..backbones import ResolvedBackbone, load_encoder
from ..backbones.quiet_loading import quiet_libraries
from ..errors import FewtuneError
from ..methods.base import FewShotMethod
from .base_weights import drop_base_tensors, fill_base_tensors, skipped_init
from ..text_windows import reads_chunks
from .embed_texts import embed_batch, encode
from .heads import SOFTMAX, LinearHead
from .memory import shared_in_fold_loop
from .plain_encoder import plain_encoder


def list_added_tokens(folder: Path, tokenizer) -> None:
    """Write the tokenizer's special tokens into folder/tokenizer_config.json, as transformers 4 did.

    transformers 5 saves without them and, reading such a folder, parses all of tokenizer.json in Python
    to find them: 0.5-1 s for me5-small's 17 MB vocabulary, on every load of a saved model.
    """
    import json

    config_file = folder / "tokenizer_config.json"
    decoder = getattr(tokenizer, "added_tokens_decoder", None)
    if not config_file.is_file() or not decoder:
        return
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if "added_tokens_decoder" in config:
        return
    config["added_tokens_decoder"] = {
        str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                 "single_word": t.single_word, "special": t.special} for i, t in sorted(decoder.items())}
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def pretrained_body(backbone: ResolvedBackbone, device: str, max_tokens: int, *, frozen: bool):
    """The backbone's SentenceTransformer, reading max_tokens tokens of a text (0: the backbone's own length).

    frozen: its user never trains it (linear-probe, hybrid's encoder), so inside a fold loop every such model
    shares one (memory.shared_in_fold_loop); each sets its own length on it, as the previous one left another."""
    def load():
        body = load_encoder(backbone, device=device)
        return body, body.max_seq_length

    body, own_length = shared_in_fold_loop(("encoder", backbone.path, str(device)), load) if frozen else load()
    body.max_seq_length = max_tokens or own_length
    return body


class EncoderBodyMethod(FewShotMethod):
    """A method whose model is `body` (a SentenceTransformer) plus a `head`.

    A loaded model may hold a PlainEncoder of its saved body instead (plain_encoder.py: the same embeddings
    without importing transformers); whatever reads `body` then gets the real one, loaded on that first read."""

    _body = None
    _plain = None  # a PlainEncoder of the saved body/, until something needs the SentenceTransformer

    def __init__(self, params, backbone: ResolvedBackbone, device: str, body=None, head=None):
        super().__init__(params, backbone, device)
        self.body = body
        self.head = head

    @property
    def body(self):
        if self._body is None and self._plain is not None:
            self._body = self._load_saved_body(self._plain.folder.parent, self.backbone, self.device)
            self._plain = None  # from now on the real one encodes: training or dropout may change it
        return self._body

    @body.setter
    def body(self, value) -> None:
        self._body = value

    # A method that never trains its body (linear-probe) says so: the models of a fold loop then share one body.
    frozen_body = False

    def _load_body(self) -> None:
        self.body = pretrained_body(self.backbone, self.device, self.params.max_tokens, frozen=self.frozen_body)

    def _encode(self, texts, *, progress=None, description: str = "Encoding") -> np.ndarray:
        """The body's embeddings of `texts` (no gradients), in windows where long_texts says chunks."""
        if self._plain is not None and all(isinstance(t, str) for t in texts):  # not pairs: those load the body
            return self._plain.encode(texts, batch_size=self.params.encode_batch_size, progress=progress,
                                      description=description, chunks=reads_chunks(self.params))
        return encode(self.body, texts, batch_size=self.params.encode_batch_size, progress=progress,
                      description=description, chunks=reads_chunks(self.params))

    def _embed_batch(self, texts) -> torch.Tensor:
        """The body's embeddings of one batch with gradients (training), windowed as _encode's."""
        return embed_batch(self.body, texts, chunks=reads_chunks(self.params))

    def _save_body(self, folder: Path) -> None:
        with quiet_libraries():  # transformers' "Writing model shards" bar ignores --quiet otherwise
            self.body.save(str(folder / "body"), create_model_card=False, safe_serialization=True)
        list_added_tokens(folder / "body", self.body.tokenizer)
        # The tensors training left as they were (the word embeddings, mostly) stay in the backbone's folder.
        drop_base_tensors(folder / "body", self.backbone.name)

    @staticmethod
    def _load_saved_body(folder: Path, backbone: ResolvedBackbone, device: str):
        body_ref = ResolvedBackbone(name=backbone.name, kind="encoder", path=str(folder / "body"), source="local")
        with skipped_init(folder / "body"):
            body = load_encoder(body_ref, device=device)
        fill_base_tensors(body, folder / "body")
        return body


class LinearHeadEncoderMethod(EncoderBodyMethod):
    """`body` plus a LinearHead on its embeddings: prediction, the last layer, and the saved format
    (body/ and head.safetensors) of every method that trains such a head, however it trains it."""

    def embed(self, texts, *, progress=None) -> np.ndarray:
        return self._encode(texts, progress=progress)

    def predict_proba(self, texts, *, progress=None) -> np.ndarray:
        return self.head.predict_proba(self.embed(texts, progress=progress))

    @property
    def refittable_head(self) -> bool:  # a logistic fit on the final embeddings, not trained end to end
        return getattr(self.params, "head", "logistic") == "logistic"

    def last_layer(self):
        if self.head.activation != SOFTMAX:
            return None
        return self.head.weight.double().numpy(), self.head.bias.double().numpy()

    def features(self, texts, *, progress=None) -> np.ndarray:
        return self.embed(texts, progress=progress)

    def set_last_layer(self, weight, bias) -> None:
        self.head = LinearHead(torch.from_numpy(np.asarray(weight)), torch.from_numpy(np.asarray(bias)), SOFTMAX)

    def save(self, folder) -> None:
        self._save_body(folder)
        self.head.save(folder / "head.safetensors")

    @classmethod
    def load(cls, folder, params, backbone, device, n_classes) -> LinearHeadEncoderMethod:
        head = LinearHead.load(folder / "head.safetensors")
        if head.weight.shape[0] != n_classes:
            raise FewtuneError(
                f"{folder}: head.safetensors has {head.weight.shape[0]} classes but fewtune.json lists {n_classes}"
            )
        # On the CPU a plain BERT body is encoded without transformers (3-4 s of imports); else the real one.
        plain = plain_encoder(Path(folder) / "body") if str(device) == "cpu" else None
        if plain is not None:
            method = cls(params, backbone, device, head=head)
            method._plain = plain
            return method
        body = cls._load_saved_body(folder, backbone, device)
        return cls(params, backbone, device, body=body, head=head)
