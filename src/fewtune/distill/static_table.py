"""An encoder distilled into a static embedding table by model2vec, once per backbone, then cached.

model2vec passes every token of the encoder's vocabulary through it on its own, keeps the outputs
(reduced by PCA and weighted by token frequency), and from then on embeds a text by averaging its
tokens' rows: no attention, no network. Nothing is downloaded: the encoder is fewtune's installed (or
local) backbone, loaded by fewtune's own safe loader. About 30 s for MiniLM on 2 cores; cached under
FEWTUNE_HOME/static, like the GGUF conversions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from contextlib import contextmanager
from pathlib import Path

from ..backbones import ENCODER, FAST_ENCODER, a_kind, load_encoder, resolve_backbone
from ..backbones.quiet_loading import quiet_libraries
from ..backbones.vocabulary import prunable, prune_body
from ..data.language import ALWAYS_KEPT
from ..errors import BackboneError
from ..paths import fewtune_home
from ..progress import Progress
from ..storage.atomic import atomic_folder
from ..training.transformer_layers import hf_model

PCA_DIMS = 256  # model2vec's default: most of the signal at a quarter of MiniLM's table
FILES = ("model.safetensors", "tokenizer.json", "config.json")
# model2vec runs the encoder once per piece (~200 pieces/s for me5-small on 2 cores): a multilingual
# vocabulary is cut to the training texts' scripts and to about MiniLM's size (backbones.vocabulary).
MAX_PIECES = 32768


def static_table(backbone: str = FAST_ENCODER, *, scripts=None, pca_dims: int = PCA_DIMS, trust: bool = False,
                 show_progress: bool = False) -> Path:
    """The model2vec folder of `backbone`'s static table, distilled now if it is not cached yet.

    scripts: the writing systems of the texts it will embed (data.language.text_scripts); a unigram
    vocabulary (me5-small's) is cut to them and to MAX_PIECES pieces before distilling."""
    resolved = resolve_backbone(backbone)
    if resolved.kind != ENCODER:
        raise BackboneError(f"a static student is distilled from a sentence encoder; "
                            f"'{backbone}' is {a_kind(resolved.kind)}")
    cut = _vocabulary_key(Path(resolved.path), scripts)
    folder = fewtune_home() / "static" / f"{_slug(resolved.name)}-{pca_dims}-{_fingerprint(Path(resolved.path))}{cut}"
    if all((folder / name).is_file() for name in FILES):
        return folder
    from model2vec.distill import distill_from_model

    body = load_encoder(dataclasses.replace(resolved, trusted=trust), device="cpu")
    if cut:
        prune_body(body, scripts, max_pieces=MAX_PIECES)
    model, tokenizer = hf_model(body), body[0].tokenizer
    dims = min(pca_dims, model.config.hidden_size)
    with _tqdm(show_progress), quiet_libraries():
        table = distill_from_model(model=model, tokenizer=tokenizer, pca_dims=dims, device="cpu")
    with atomic_folder(folder, overwrite=True) as tmp:
        table.save_pretrained(str(tmp))
        config = json.loads((tmp / "config.json").read_text(encoding="utf-8"))
        config["tokenizer_name"] = resolved.name  # model2vec writes the loader's path here
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return folder


def _vocabulary_key(path: Path, scripts) -> str:
    """"" for a vocabulary kept whole (not unigram, or no scripts given), else the cut's part of the cache name."""
    tokenizer = path / "tokenizer.json"
    if not scripts or not tokenizer.is_file() or not prunable(tokenizer.read_text(encoding="utf-8")):
        return ""
    return "-" + "+".join(sorted(set(scripts) - ALWAYS_KEPT) or ["latin"]).lower() + f"-{MAX_PIECES}"


def _fingerprint(path: Path) -> str:
    """Which weights the table came from: their files' names, sizes and times (a new install, a new table)."""
    h = hashlib.sha256(str(path.resolve()).encode())
    for file in sorted(path.rglob("*.safetensors")):
        stat = file.stat()
        h.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name if Path(name).is_absolute() else name).strip("-")[:40]


@contextmanager
def _tqdm(show: bool):
    # model2vec draws its own tqdm bar over the vocabulary (a line per update where stderr is no terminal);
    # its bar factory is swapped for the call, so the pass shows as one of fewtune's bars, gone with --quiet.
    from model2vec.distill import inference

    before = inference.tqdm
    with Progress(show) as progress:
        inference.tqdm = lambda total=None, desc="", **_: _Bar(progress, total, desc)
        try:
            yield
        finally:
            inference.tqdm = before


class _Bar:
    """What model2vec calls of a tqdm bar (update, close), drawn by fewtune's Progress."""

    def __init__(self, progress, total, desc: str):
        self.progress = progress
        self.task = progress.add(f"static table: {desc.lower() or 'distilling'}", total)

    def update(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)

    def close(self) -> None:
        pass
