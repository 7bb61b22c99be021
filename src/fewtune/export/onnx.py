"""Export a trained encoder classifier (setfit, linear-probe, finetune) to one ONNX graph.

The graph is the model's own sentence-transformers pipeline (transformer, pooling, normalisation,
whatever the folder's modules.json lists) followed by the linear head, traced once, so pooling is
exactly what the method trained with. It returns logits; the runtime turns them into probabilities
in float64 as the PyTorch heads do.

Exporter: torch 2.13's default (dynamo=True) needs onnxscript, took 25 s on MiniLM and wrote a graph
ONNX Runtime refused (an output name defined twice); the TorchScript exporter (dynamo=False) takes
3 s and matches PyTorch to 2e-7, so it is the one used, its deprecation warning silenced.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbones.prefix import text_prefix
from ..backbones.vocabulary import prune_body
from ..classifier import FewShotClassifier
from ..storage.atomic import atomic_folder
from ..text_windows import reads_chunks
from ..training.embed_texts import body_features, normalises, token_limit
from ..errors import FewtuneError
from ..storage.integrity import seal
from ..storage.model_folder import CONFIG_NAME, library_versions, sha256
from .runtime import FORMAT, MANIFEST_NAME, WINDOW_WEIGHTS, OnnxClassifier, format_version, is_exported
from .static import is_static

OPSET = 17  # LayerNormalization is one op from 17 on, which ONNX Runtime runs fused
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
QUANTIZED_OPS = ("MatMul", "Attention")  # see _quantize
FP32_TOLERANCE = 1e-4  # max |ONNX − PyTorch| probability allowed at export (the check below)
PROBE_TEXTS = ["a short one", "A longer sentence, with punctuation; and some rarer words: zeitgeist, naïve café.",
               "ok", "The quick brown fox jumps over the lazy dog " * 3]
LONG_PROBE = " ".join(PROBE_TEXTS) * 80  # thousands of tokens: the windows of a long_texts=chunks model, checked


class _Graph(torch.nn.Module):
    """input ids (and masks) -> the pipeline's sentence embedding -> logits of the linear head.

    chunks (long_texts=chunks): the inputs are windows, and one more input, window_weights (texts ×
    windows, text_windows.window_weights), averages them into one embedding per text, normalised again
    where `normalise` says the pipeline normalises: embed_texts.pool_windows as a matrix product."""

    def __init__(self, body, weight: torch.Tensor, bias: torch.Tensor, input_names: list[str], *,
                 chunks: bool = False, normalise: bool = False):
        super().__init__()
        self.body = body
        self.input_names = input_names
        self.chunks, self.normalise = chunks, normalise
        self.register_buffer("weight", weight.detach().float().cpu().clone())
        self.register_buffer("bias", bias.detach().float().cpu().clone())

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        emb = self.body(dict(zip(self.input_names, tensors)))["sentence_embedding"]
        if self.chunks:
            weights = tensors[-1]
            emb = weights @ emb
            if self.normalise:
                several = (weights > 0).sum(dim=1, keepdim=True) > 1
                emb = torch.where(several, torch.nn.functional.normalize(emb, dim=-1), emb)
        return emb @ self.weight.T + self.bias


def default_output(model_dir: Path, int8: bool) -> Path:
    return model_dir.with_name(model_dir.name + ("-onnx-int8" if int8 else "-onnx"))


VOCABULARIES = ("training", "full")


def export_onnx(model_dir: str | Path, output: str | Path | None = None, *, int8: bool = False,
                vocabulary: str = "training", overwrite: bool = False) -> dict[str, Any]:
    """Write `output` (default: MODEL-onnx or MODEL-onnx-int8 beside it) atomically; return its manifest.

    int8: dynamic quantisation of the weights (onnxruntime.quantization.quantize_dynamic):
    activations are quantised per batch at run time, so no calibration data is needed.
    vocabulary: "training" keeps only the vocabulary pieces written in the scripts of the training
    texts (Latin and Common always; backbones.vocabulary: me5-small's English-only export carries 116k
    of its 250k rows), "full" all of them. Models without a unigram vocabulary, or saved before the
    scripts were recorded, keep all.
    """
    if vocabulary not in VOCABULARIES:
        raise FewtuneError(f"--vocabulary must be one of {', '.join(VOCABULARIES)}, got {vocabulary!r}")
    model_dir = Path(model_dir)
    if is_exported(model_dir):
        raise FewtuneError(f"{model_dir} is already an exported folder; export the fewtune model it came from")
    if is_static(model_dir):
        raise FewtuneError(f"{model_dir} is a static student (distilled with student='static'): it already predicts "
                           "without torch, and load_classifier, predict and serve take it as it is; nothing to export")
    output = Path(output) if output is not None else default_output(model_dir, int8)
    _check_output(output, overwrite)
    started = time.perf_counter()
    clf = FewShotClassifier.load(model_dir, device="cpu")
    _check_exportable(clf, model_dir)
    body = clf.model_.body.to("cpu").eval()
    _eager_attention(body)
    weight, bias, activation = _linear_head(clf.model_)
    chunks = reads_chunks(clf.model_.params)
    probes = PROBE_TEXTS + [LONG_PROBE] * chunks
    probes = probes if not clf.text_pairs_ else [(t, t[::-1]) for t in probes]
    reference = clf.predict_proba(probes)  # before the vocabulary is cut: the graph is checked against this
    scripts = clf.train_info_.get("scripts")
    pruned = prune_body(body, scripts) if vocabulary == "training" and scripts else None
    tokenizer = _fast_tokenizer(body, model_dir)
    sample = body_features(body, PROBE_TEXTS[:2])
    input_names = [n for n in INPUT_NAMES if n in sample]
    graph = _Graph(body, weight, bias, input_names, chunks=chunks, normalise=normalises(body)).eval()
    # Two windows of one text: a traced example of the pooling (its sizes are dynamic axes).
    args = tuple(sample[n] for n in input_names) + ((torch.full((1, 2), 0.5),) if chunks else ())
    source = read_source_config(model_dir)
    with atomic_folder(output, overwrite=True) as tmp:
        _export_graph(graph, args, input_names, tmp / "traced.onnx", chunks=chunks)
        fused = _fuse(tmp / "traced.onnx", tmp / "model.onnx", body)
        (tmp / "traced.onnx").unlink()
        model_file = "model.onnx"
        if int8:
            in_float = _quantize(tmp / "model.onnx", tmp / "model.int8.onnx",
                                 getattr(body[0].auto_model.config, "intermediate_size", None))
            (tmp / "model.onnx").unlink()
            model_file = "model.int8.onnx"
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        manifest = {
            "format": FORMAT,
            "format_version": format_version(chunks),
            "model": model_file,
            "inputs": input_names,
            "outputs": ["logits"],
            "opset": OPSET,
            "exporter": "torch.onnx.export (TorchScript, dynamo=False)",
            "fused": fused,
            "quantization": {"kind": "dynamic", "weight_type": "QInt8", "per_channel": True,
                             "operators": list(QUANTIZED_OPS), "kept_in_float": in_float} if int8 else None,
            "classes": source["classes"],
            "multi_label": bool(source.get("multi_label", False)),
            "text_pairs": bool(source.get("text_pairs", False)),
            "activation": activation,
            "temperature": float(source.get("temperature", 1.0)),
            # Absent for truncate: a runtime that reads the file truncates, as the model does.
            **({"long_texts": {"mode": "chunks", "input": WINDOW_WEIGHTS}} if chunks else {}),
            "tokenizer": _tokenizer_settings(tokenizer, body),
            "vocabulary": pruned or {"pieces": int(tokenizer.backend_tokenizer.get_vocab_size(with_added_tokens=True))},
            "source": {k: v for k, v in source.items() if k not in ("files", "format", "format_version")},
            "versions": library_versions("onnx", "onnxruntime"),
        }
        _write_manifest(tmp, manifest)
        # Check the graph before it is moved into place: it must agree with the model it came from.
        manifest["check"] = _agreement(probes, reference, tmp, int8)
        _write_manifest(tmp, manifest)
        (tmp / "README.md").write_text(_card(manifest, model_dir), encoding="utf-8")
    manifest["seconds"] = round(time.perf_counter() - started, 2)
    manifest["output"] = str(output)
    return manifest


def read_source_config(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / CONFIG_NAME).read_text(encoding="utf-8"))


def _check_output(output: Path, overwrite: bool) -> None:
    if not output.exists():
        return
    if not overwrite:
        raise FewtuneError(f"{output} already exists; choose another --output or pass --overwrite")
    if not output.is_dir() or (any(output.iterdir()) and not is_exported(output)):
        # Never replace a folder that is not an export: it may be the user's data.
        raise FewtuneError(f"{output} exists and is not an exported model folder; refusing to replace it")


def _check_exportable(clf, model_dir: Path) -> None:
    model = clf.model_
    if getattr(model, "body", None) is None or getattr(model, "head", None) is None:
        raise FewtuneError(f"{model_dir}: method '{clf.method}' is not an encoder with a linear head; ONNX export "
                           "covers setfit, linear-probe and finetune")
    if getattr(clf, "posterior_", None) is not None or clf.posterior:
        raise FewtuneError(f"{model_dir}: its probabilities come from a posterior ({clf.posterior}), which one graph "
                           "of the MAP model would not reproduce; export a model trained without --posterior")


def _linear_head(model) -> tuple[torch.Tensor, torch.Tensor, str]:
    head = model.head
    linear = getattr(head, "linear", head)  # finetune wraps an nn.Linear; setfit's LinearHead holds the tensors
    return linear.weight, linear.bias, head.activation


def _fast_tokenizer(body, model_dir: Path):
    tokenizer = getattr(body[0], "tokenizer", None)
    if tokenizer is None or getattr(tokenizer, "backend_tokenizer", None) is None:
        raise FewtuneError(f"{model_dir}: the encoder has no fast (Rust) tokenizer, which the ONNX runtime needs")
    return tokenizer


def _tokenizer_settings(tokenizer, body) -> dict[str, Any]:
    # token_limit: a huge model_max_length sentinel would overflow the Rust tokenizer.
    return {"file": "tokenizer/tokenizer.json", "max_length": token_limit(body),
            "pad_id": int(tokenizer.pad_token_id),
            "pad_token": str(tokenizer.pad_token), "pad_type_id": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
            "padding_side": tokenizer.padding_side, "truncation_side": tokenizer.truncation_side,
            "sep_token": tokenizer.sep_token, "prefix": text_prefix(body)}


def _export_graph(graph: torch.nn.Module, args: tuple, input_names: list[str], path: Path, *,
                  chunks: bool = False) -> None:
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    if chunks:  # "batch" counts windows; the logits are one row per text
        axes[WINDOW_WEIGHTS] = {0: "texts", 1: "batch"}
        input_names = [*input_names, WINDOW_WEIGHTS]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(graph, args, str(path), dynamo=False, input_names=input_names, output_names=["logits"],
                          dynamic_axes={**axes, "logits": {0: "texts" if chunks else "batch"}}, opset_version=OPSET)


def _eager_attention(body) -> None:
    # transformers 5 runs BERT attention through SDPA, which traces to a pattern ONNX Runtime's
    # transformer optimizer does not recognise; the eager implementation (the same maths) fuses
    # into its Attention op, which int8 quantisation then turns into QAttention.
    model = body[0].auto_model
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except (ValueError, ImportError, AttributeError):
            pass  # a model without an eager path keeps its own; the graph is then only less fused


def _fuse(source: Path, target: Path, body) -> dict[str, int]:
    """ONNX Runtime's transformer fusions (attention, skip layer norm, bias GELU) where they apply;
    the traced graph unchanged where they do not. Returns the count of each fused operator."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    config = body[0].auto_model.config
    try:
        logging.disable(logging.WARNING)  # the optimizer logs every pattern it did not find
        optimized = optimize_model(str(source), model_type="bert", opt_level=1,
                                   num_heads=int(getattr(config, "num_attention_heads", 0)),
                                   hidden_size=int(getattr(config, "hidden_size", 0)))
        optimized.save_model_to_file(str(target))
        return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    except Exception:  # an architecture the fusions do not know: keep the traced graph as it is
        target.write_bytes(source.read_bytes())
        return {}
    finally:
        logging.disable(logging.NOTSET)


def _quantize(source: Path, target: Path, intermediate_size: int | None) -> list[str]:
    """int8 weights of the transformer's matrix products (MatMul, fused Attention), one scale per output
    channel: on 64 bbc texts the largest logit error was 0.07, against 0.13 with one scale per matrix.

    Left in float: the embeddings (quantising the lookup saves memory, not time), the classification
    head (one small product whose error lands directly on the probabilities) and the first layer's
    feed-forward output (see _first_down_projection). Returns the names of the nodes kept in float."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep = _first_down_projection(source, intermediate_size) + _window_mean(source)
    try:
        logging.disable(logging.WARNING)  # "consider pre-processing": that is for static quantisation
        # Fused operators come from ONNX Runtime's own domain, where shape inference finds no output
        # types; their outputs are float, which is what DefaultTensorType tells the quantiser.
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=keep,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        logging.disable(logging.NOTSET)
    return keep


def _first_down_projection(path: Path, intermediate_size: int | None) -> list[str]:
    """The first layer's feed-forward output product (intermediate -> hidden), by its weight's shape.

    Its input, after GELU, has a few huge activations, and dynamic quantisation gives the whole
    tensor one scale. On MiniLM setfit, bbc K=8 at 64 tokens, 7 of 475 int8 predictions differed
    from fp32 (accuracy -1.05 points); with this one product in float, 2 (-0.42), at 1/18 of the
    quantised products' work. Mean |Δp| fell on all three models tried; excluding the second layer's
    too, or the last layer's, did not help further."""
    import onnx

    if not intermediate_size:
        return []
    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    down = [node.name for node in graph.node if node.op_type == "MatMul"
            and any(len(shapes.get(x, ())) == 2 and shapes[x][0] == intermediate_size for x in node.input)]
    return down[:1]


def _window_mean(path: Path) -> list[str]:
    """The product that averages a text's windows (long_texts=chunks): its weights are exact fractions
    that int8 would only blur, at a cost next to nothing."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == "MatMul" and WINDOW_WEIGHTS in node.input]


def _agreement(texts, reference: np.ndarray, folder: Path, int8: bool) -> dict[str, Any]:
    """Max |ONNX − PyTorch| over the probe texts (the PyTorch model's probabilities: `reference`);
    fp32 must be within FP32_TOLERANCE."""
    runtime = OnnxClassifier.load(folder, threads=None)
    diff = float(np.abs(runtime.predict_proba(texts) - reference).max())
    if not int8 and diff > FP32_TOLERANCE:
        raise FewtuneError(f"the exported graph disagrees with the model by {diff:.2g} in probability "
                           f"(more than {FP32_TOLERANCE}); nothing was written")
    return {"texts": len(texts), "max_abs_probability_diff": round(diff, 8)}


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (MANIFEST_NAME, "README.md"))
    manifest["files"] = {p.relative_to(folder).as_posix(): sha256(p) for p in files}
    manifest = seal(manifest)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _card(manifest: dict[str, Any], model_dir: Path) -> str:
    source = manifest["source"]
    evaluation = source.get("evaluation") or {}
    lines = [
        f"# {model_dir.name}, exported to ONNX{' (int8)' if manifest['quantization'] else ''}",
        "",
        f"- method: {source.get('method')} on {source.get('backbone', {}).get('name')}",
        f"- classes: {', '.join(map(str, manifest['classes']))}",
        f"- graph: {manifest['model']} (opset {manifest['opset']}), inputs {', '.join(manifest['inputs'])}",
        *_vocabulary_lines(manifest["vocabulary"]),
        f"- agreement with the PyTorch model on {manifest['check']['texts']} probe texts: max |Δp| = "
        f"{manifest['check']['max_abs_probability_diff']:.2g}",
    ]
    if evaluation:
        lines.append(f"- the source model's held-out accuracy: {evaluation.get('accuracy')} on {evaluation.get('n')} "
                     f"examples ({evaluation.get('held_out')})")
    lines += ["", "Use it with `fewtune predict FOLDER`, `fewtune serve FOLDER` or "
              "`fewtune.export.OnnxClassifier.load(FOLDER)`.", ""]
    return "\n".join(lines)


def _vocabulary_lines(vocabulary: dict[str, Any]) -> list[str]:
    if "scripts" not in vocabulary:
        return []
    return [f"- vocabulary: the {vocabulary['pieces']:,} of {vocabulary['of']:,} pieces written in the training texts' "
            f"scripts ({', '.join(vocabulary['scripts'])}); text in other scripts reads as unknown tokens "
            "(export with --vocabulary full to keep every piece)"]
