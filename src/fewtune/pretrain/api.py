"""Pretraining a small causal LM from scratch, and continued (domain-adaptive) pretraining of a backbone.

    from fewtune.pretrain import pretrain, adapt
    pretrain(["bbc", "chitchat"], "tiny-lm", preset="tiny", params={"steps": 2000})
    adapt("tiny-lm", ["imdb"], "tiny-lm-imdb")            # then: --backbone tiny-lm-imdb anywhere
    adapt("minilm", ["imdb"], "minilm-imdb")                # an encoder: SimCSE (or objective="mlm")

The output folder is a plain Hugging Face model folder (config.json, model.safetensors, the
tokenizer) that every fewtune command accepts as a backbone, plus `fewtune_pretrain.json` (what was
trained on, tokens seen, held-out perplexity before and after, tokens per second, versions) and a
short README.md. It is written atomically at the end.

Work in progress lives beside it in `OUT.work/`: the trained tokenizer, the tokenized corpus and the
latest checkpoint. `resume=True` continues from that checkpoint and ends with the weights an
uninterrupted run would have; the folder is removed once the model is saved.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate.utils import DistributedType
from transformers import AutoModelForCausalLM, AutoTokenizer

from .. import backbones
from ..backbones.folders import PRETRAIN_FACTS
from ..backbones.quiet_loading import quiet_libraries
from ..backbones.quiet_loading import progress as spinner
from ..errors import FewtuneError
from ..progress import progress_bar
from ..storage.atomic import atomic_folder
from ..storage.checkpoint import full_state
from ..storage.model_folder import library_versions, sha256
from ..training.tracking import check_trackers
# loop's functions are looked up there at call time (tests replace make_accelerator to stop a run early).
from . import loop
from .corpus import TRAIN, iter_texts, open_corpora
from .encoders import train_encoder
from .params import ADAPT_LR, AdaptParams, PretrainParams
from .presets import SHAPE_FIELDS, check_shape, count_parameters, get_preset, llama_config
from .tokenizer import backbone_tokenizer, separator_id, train_bpe
from .tokens import build_streams

FACTS_FILE = PRETRAIN_FACTS  # the backbone loader verifies the checksums listed in it
Note = Callable[[str], None]


def pretrain(corpora: list[str], out: str | Path, *, preset: str = "tiny", params: dict | None = None,
             tokenizer: str | None = None, resume: bool = False, overwrite: bool = False, text_col: str = "text",
             encoding: str = "utf-8", device: str | None = None, show_progress: bool = True,
             note: Note | None = None, on_step: Callable[[int], None] | None = None,
             log_with: list[str] | None = None, logging_dir: str | Path | None = None) -> dict[str, Any]:
    """Train a Llama-style causal LM from scratch on `corpora` (files or built-in names) into `out`.

    `tokenizer`: a backbone whose tokenizer to reuse instead of learning a BPE vocabulary.
    `log_with`: Accelerate trackers that get the loss of every step and the held-out perplexity.
    Returns the facts written to fewtune_pretrain.json.
    """
    p = PretrainParams.from_dict(params, method="pretrain")
    check_trackers(log_with or [])
    base = get_preset(preset)
    shape = {f: getattr(p, f) or getattr(base, f) for f in SHAPE_FIELDS}
    check_shape(shape)
    block = p.block_size or base.context
    out = Path(out)
    _check_output(out, overwrite)
    sources = open_corpora(corpora, text_col=text_col, encoding=encoding, heldout=p.heldout)
    accelerator = loop.make_accelerator(device, log_with=log_with, logging_dir=logging_dir,
                                        run_name=f"pretrain-{out.name}", config={"preset": preset, **p.to_dict()})
    note = _main_only(note, accelerator)
    work = work_folder(out)
    recipe = {"kind": "pretrain", "preset": preset, "params": _recipe_params(p), "block_size": block,
              "tokenizer": tokenizer, "corpora": [s.spec for s in sources]}
    resume = _check_work(work, recipe, resume, note, accelerator)
    quiet = not (show_progress and accelerator.is_main_process)
    # The main process learns the tokenizer and tokenizes the corpus; the others then find both cached.
    context = max(block, base.context)
    with accelerator.main_process_first():
        tok, tok_facts = _tokenizer_for(sources, tokenizer, work / "tokenizer", vocab_size=shape["vocab_size"],
                                        max_texts=p.tokenizer_texts, context=context, note=note, quiet=quiet)
        streams = _streams(sources, tok, work, p, note, quiet)
    separator = streams[2]["recipe"]["separator"]
    config = llama_config(shape, vocab_size=len(tok), context=context, eos_token_id=separator)
    torch.manual_seed(p.seed)
    model = AutoModelForCausalLM.from_config(config)
    note(f"pretraining a {count_parameters(config) / 1e6:.2f}M-parameter Llama ({preset}) on "
         f"{streams[0].n_tokens:,} tokens for {p.steps} steps on {accelerator.num_processes} process(es)")
    with progress_bar(not quiet) as progress:
        payload, facts = _train_causal(model, tok, streams, p, block, work, accelerator, progress, resume, on_step)
    facts = {"kind": "pretrain", "objective": "clm", "preset": preset, "model": _model_facts(config, shape),
             "tokenizer": tok_facts, **facts}
    return _save(out, payload, facts, sources, accelerator, work)


def adapt(backbone: str, corpora: list[str], out: str | Path, *, objective: str = "auto",
          params: dict | None = None, resume: bool = False, overwrite: bool = False, text_col: str = "text",
          encoding: str = "utf-8", device: str | None = None, show_progress: bool = True,
          note: Note | None = None, on_step: Callable[[int], None] | None = None,
          log_with: list[str] | None = None, logging_dir: str | Path | None = None) -> dict[str, Any]:
    """Continue pretraining `backbone` on unlabeled in-domain text: next-token prediction for a causal LM
    (objective "clm"), SimCSE ("simcse") or masked-LM ("mlm") for an encoder. "auto" picks clm or simcse
    by the backbone's kind. Returns the facts written to fewtune_pretrain.json."""
    resolved = backbones.resolve_backbone(backbone)
    causal = resolved.kind == backbones.CAUSAL_LM
    objective = ("clm" if causal else "simcse") if objective == "auto" else objective
    if objective not in ADAPT_LR:
        raise FewtuneError(f"objective must be auto, {', '.join(ADAPT_LR)}; got {objective!r}")
    if (objective == "clm") != causal:
        raise FewtuneError(f"objective {objective!r} needs {'a causal LM' if objective == 'clm' else 'an encoder'}, "
                           f"but backbone '{backbone}' is {'a causal LM' if causal else 'an encoder'}")
    p = AdaptParams.from_dict(params, method="adapt")
    p = dataclasses.replace(p, learning_rate=p.learning_rate or ADAPT_LR[objective])
    check_trackers(log_with or [])
    if resume and not causal:
        raise FewtuneError("--resume continues causal-LM training; an encoder's adaptation starts over")
    out = Path(out)
    _check_output(out, overwrite)
    sources = open_corpora(corpora, text_col=text_col, encoding=encoding, heldout=p.heldout)
    accelerator = loop.make_accelerator(device, log_with=log_with, logging_dir=logging_dir,
                                        run_name=f"adapt-{out.name}",
                                        config={"backbone": resolved.name, "objective": objective, **p.to_dict()})
    note = _main_only(note, accelerator)
    backbone_facts = {"name": resolved.name, "kind": resolved.kind, "source": resolved.source}
    if not causal:
        payload, facts = _adapt_encoder(resolved, sources, p, objective, accelerator, show_progress, note, on_step)
        return _save(out, payload, {"kind": "adapt", "objective": objective, "backbone": backbone_facts, **facts},
                     sources, accelerator, None)

    model, tok = backbones.load_causal_lm(resolved, device="cpu")
    block = p.block_size or min(256, getattr(model.config, "max_position_embeddings", 256) or 256)
    work = work_folder(out)
    recipe = {"kind": "adapt", "backbone": resolved.name, "params": _recipe_params(p), "block_size": block,
              "corpora": [s.spec for s in sources]}
    resume = _check_work(work, recipe, resume, note, accelerator)
    quiet = not (show_progress and accelerator.is_main_process)
    with accelerator.main_process_first():
        streams = _streams(sources, tok, work, p, note, quiet)
    n_params = sum(t.numel() for t in model.parameters())
    note(f"adapting {resolved.name} ({n_params / 1e6:.1f}M parameters) on {streams[0].n_tokens:,} tokens for "
         f"{p.steps} steps on {accelerator.num_processes} process(es)")
    with progress_bar(not quiet) as progress:
        payload, facts = _train_causal(model, tok, streams, p, block, work, accelerator, progress, resume, on_step)
    return _save(out, payload, {"kind": "adapt", "objective": "clm", "backbone": backbone_facts, **facts}, sources,
                 accelerator, work)


def work_folder(out: Path) -> Path:
    return out.parent / f"{out.name}.work"


# --- the steps ------------------------------------------------------------------------------------
def _tokenizer_for(sources, backbone: str | None, folder: Path, *, vocab_size: int, max_texts: int, context: int,
                   note: Note, quiet: bool):
    """(tokenizer, facts): a backbone's, or a BPE vocabulary learned on the corpus (cached in `folder`)."""
    if backbone:
        tok = backbone_tokenizer(backbone)
        return tok, {"from_backbone": backbone, "vocab_size": len(tok)}
    recipe = {"vocab_size": vocab_size, "max_texts": max_texts, "context": context,
              "corpora": [s.fingerprint() for s in sources]}
    stamp = folder / "fewtune_tokenizer.json"
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("recipe") == recipe:
        saved = json.loads(stamp.read_text(encoding="utf-8"))
        return AutoTokenizer.from_pretrained(str(folder)), saved["facts"]
    started = time.perf_counter()
    with spinner(f"Learning a byte-level BPE vocabulary of {vocab_size} tokens", quiet=quiet):
        tok, n_texts = train_bpe(iter_texts(sources, TRAIN), vocab_size=vocab_size, max_texts=max_texts,
                                 context=context, source=", ".join(s.spec for s in sources))
    note(f"learned a BPE vocabulary of {len(tok)} tokens from {n_texts:,} texts")
    facts = {"trained": "byte-level BPE", "vocab_size": len(tok), "texts": n_texts,
             "seconds": round(time.perf_counter() - started, 2)}
    with atomic_folder(folder, overwrite=True) as tmp:
        tok.save_pretrained(str(tmp))
        (tmp / "fewtune_tokenizer.json").write_text(json.dumps({"recipe": recipe, "facts": facts}, indent=2) + "\n",
                                                    encoding="utf-8")
    return tok, facts


def _streams(sources, tok, work: Path, p, note: Note, quiet: bool):
    return build_streams(sources, tok, separator_id(tok), work / "tokens", heldout_tokens=p.eval_tokens, note=note,
                         quiet=quiet)


def _train_causal(model, tok, streams, p, block: int, work: Path, accelerator, progress, resume: bool, on_step):
    """Train; return (what writes the model into a folder, on the main process; facts about the run)."""
    train, heldout, built = streams
    model, facts = loop.train_causal_lm(model, train, heldout, p, block_size=block, accelerator=accelerator,
                                        work=work, resume=resume, progress=progress, on_step=on_step)
    state, _ = full_state(model)  # every process takes part (FSDP gathers shards); the main one writes
    unwrapped = accelerator.unwrap_model(model)
    # The separator ends every document in the token stream: generation should stop there too.
    unwrapped.config.eos_token_id = built["recipe"]["separator"]

    def payload(folder: Path) -> None:
        unwrapped.save_pretrained(str(folder), state_dict=state)
        tok.save_pretrained(str(folder))

    perplexities = facts.pop("perplexities")
    seconds = facts["train_seconds"]
    return payload, {
        "params": p.to_dict(), "block_size": block, "steps": p.steps,
        "tokens_seen": facts["tokens_seen"], "train_tokens": train.n_tokens, "heldout_tokens": heldout.n_tokens,
        "perplexity_before": perplexities[0][1], "perplexity_after": perplexities[-1][1],
        "perplexity_curve": perplexities, "loss_curve": facts["losses"],
        "train_seconds": round(seconds, 3),
        "tokens_per_second": round(facts["tokens_seen"] / seconds, 1) if seconds else None,
        "resumed_from_step": facts.get("resumed_from_step"),
        "replica_hashes": facts.get("replica_hashes"),
    }


def _adapt_encoder(resolved, sources, p, objective: str, accelerator, show_progress: bool, note: Note, on_step):
    body = backbones.load_encoder(resolved, device="cpu")
    block = p.block_size or 64
    note(f"adapting {resolved.name} with {objective} for {p.steps} steps on {accelerator.num_processes} process(es)")
    with progress_bar(show_progress and accelerator.is_main_process) as progress:
        facts = train_encoder(body, sources, p, objective=objective, block_size=block, accelerator=accelerator,
                              progress=progress, on_step=on_step)

    def payload(folder: Path) -> None:
        body.to("cpu")
        body.save(str(folder), create_model_card=False, safe_serialization=True)

    losses = facts.pop("heldout_losses")
    return payload, {"params": p.to_dict(), "block_size": block, "steps": p.steps, "texts_seen": facts["texts_seen"],
                     "heldout_loss_before": losses[0][1], "heldout_loss_after": losses[-1][1],
                     "loss_curve": facts["losses"], "train_seconds": round(facts["train_seconds"], 3)}


def _save(out: Path, payload, facts: dict, sources, accelerator, work: Path | None) -> dict:
    """Write the model, fewtune_pretrain.json and a card into `out` in one atomic step; drop the work folder."""
    facts = {
        **facts,
        "corpora": [{"spec": s.spec, **s.fingerprint()} for s in sources],
        "processes": accelerator.num_processes,
        "distributed": ("no" if accelerator.distributed_type == DistributedType.NO
                        else str(accelerator.distributed_type).split(".")[-1]),
        "device": str(accelerator.device),
        "mixed_precision": accelerator.mixed_precision,
        "threads_per_process": torch.get_num_threads(),
        "versions": library_versions("accelerate", "tokenizers"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if accelerator.is_main_process:
        # overwrite was checked before training began; the folder is replaced only now, in one rename.
        with atomic_folder(out, overwrite=True) as tmp:
            with quiet_libraries():
                payload(tmp)
            facts["files"] = {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / FACTS_FILE).write_text(json.dumps(facts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            (tmp / "README.md").write_text(_card(facts), encoding="utf-8")
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()  # closes --log-with trackers (none: nothing to close)
    return facts


# --- checks and small helpers ---------------------------------------------------------------------
def _check_output(out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite:
            raise FewtuneError(f"{out} already exists; choose another output folder or pass --overwrite")
        if not out.is_dir() or (any(out.iterdir()) and not (out / FACTS_FILE).is_file()):
            # Never replace a folder this command did not write: it may be the user's data.
            raise FewtuneError(f"{out} exists and was not written by fewtune pretrain/adapt; refusing to replace it")


def _check_work(work: Path, recipe: dict, resume: bool, note: Note, accelerator) -> bool:
    """Whether to resume: the work folder must hold a checkpoint of this very run."""
    run_file = work / "run.json"
    checkpoint = work / "checkpoint" / "state.json"
    if run_file.is_file():
        saved, now = _flat(json.loads(run_file.read_text(encoding="utf-8"))), _flat(recipe)
        changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        if changed and (resume or checkpoint.is_file()):
            raise FewtuneError(f"{work} holds a run with other settings ({', '.join(changed)} differ); resume it "
                               "with the same settings, or delete the folder to start over")
    if checkpoint.is_file() and not resume:
        raise FewtuneError(f"{work} holds a checkpoint of an interrupted run; pass --resume to continue it, or "
                           "delete the folder to start over")
    if resume and not checkpoint.is_file():
        note(f"no checkpoint in {work} yet: starting from the beginning")
        resume = False
    accelerator.wait_for_everyone()  # every process has read the folder before the main one writes to it
    if accelerator.is_main_process:
        work.mkdir(parents=True, exist_ok=True)
        (work / "run.json").write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
    return resume


def _flat(recipe: dict) -> dict:
    # A run begun before a setting was renamed still resumes: its run.json is read by the new names.
    params = {AdaptParams.new_name(k, warn=False): v for k, v in recipe.get("params", {}).items()}
    return {**{k: v for k, v in recipe.items() if k != "params"}, **params}


def _recipe_params(p) -> dict:
    # How often to evaluate and save does not change the weights, so a resumed run may change them.
    return {k: v for k, v in p.to_dict().items() if k not in ("eval_every", "save_every")}


def _main_only(note: Note | None, accelerator) -> Note:
    if note is None:
        note = lambda message: print(message, file=sys.stderr)  # noqa: E731
    return note if accelerator.is_main_process else (lambda message: None)


def _model_facts(config, shape: dict) -> dict:
    return {"architecture": "LlamaForCausalLM", "parameters": count_parameters(config),
            "context": config.max_position_embeddings, **shape, "vocab_size": config.vocab_size}


def _card(facts: dict) -> str:
    what = (f"a {facts['model']['parameters'] / 1e6:.2f}M-parameter Llama-style causal LM pretrained from scratch "
            f"(preset `{facts['preset']}`)" if facts["kind"] == "pretrain" else
            f"`{facts['backbone']['name']}` after continued pretraining ({facts['objective']})")
    lines = [f"# {what}", "", "Written by `fewtune pretrain` / `fewtune adapt`; use the folder as a backbone:",
             "`fewtune train --backbone THIS_FOLDER ...`.", "",
             f"- corpora: {', '.join(c['spec'] for c in facts['corpora'])}",
             f"- steps: {facts['steps']}, on {facts['processes']} process(es) ({facts['distributed']})"]
    if "tokens_seen" in facts:
        lines += [f"- tokens seen: {facts['tokens_seen']:,} ({facts['tokens_per_second']} tokens/s)",
                  f"- held-out perplexity: {facts['perplexity_before']} before, {facts['perplexity_after']} after "
                  f"({facts['heldout_tokens']:,} held-out tokens)"]
    else:
        lines += [f"- held-out {facts['objective']} loss: {facts['heldout_loss_before']} before, "
                  f"{facts['heldout_loss_after']} after"]
    lines += ["", "Details, versions and file checksums: `fewtune_pretrain.json`.", ""]
    return "\n".join(lines)

