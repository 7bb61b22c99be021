"""What every method built on a sentence-encoder body shares: loading it, saving it to body/, reloading."""

from __future__ import annotations

from pathlib import Path

from ..backbones import ResolvedBackbone, load_encoder
from ..backbones.quiet import quiet_libraries
from .base import FewShotMethod


class EncoderBodyMethod(FewShotMethod):
    """A method whose model is `body` (a SentenceTransformer) plus a `head`."""

    def __init__(self, params, backbone: ResolvedBackbone, device: str, body=None, head=None):
        super().__init__(params, backbone, device)
        self.body = body
        self.head = head

    def _load_body(self) -> None:
        self.body = load_encoder(self.backbone, device=self.device)
        if self.params.max_seq_length:
            self.body.max_seq_length = self.params.max_seq_length

    def _save_body(self, folder: Path) -> None:
        with quiet_libraries():  # transformers' "Writing model shards" bar ignores --quiet otherwise
            self.body.save(str(folder / "body"), create_model_card=False, safe_serialization=True)

    @staticmethod
    def _load_saved_body(folder: Path, backbone: ResolvedBackbone, device: str):
        body_ref = ResolvedBackbone(name=backbone.name, kind="encoder", path=str(folder / "body"), source="local")
        return load_encoder(body_ref, device=device)
