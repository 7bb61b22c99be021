"""Fine-tuning a causal LM to generate: dialogue on a few conversations, or LM adaptation on raw text.

    gen = FewShotGenerator(task="generate").fit(chats)        # SmolLM2 + LoRA by default
    gen.perplexity(held_out_chats); gen.generate("Hi! How was your weekend?")
    gen.save("my-chatbot")                                     # adapter only; merge=True: a standalone LM

The Bayesian reading is the same as for classification: LoRA starts at zero (the pretrained model)
and AdamW's weight decay pulls it back there, and full fine-tuning takes the L2-SP prior; with a
few dozen conversations that prior is what keeps the model from unlearning how to talk. Held-out
perplexity before and after training is recorded with the model, so a fine-tune that made the
model worse says so.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..backbones import CAUSAL_LM, DEFAULT_CAUSAL_LM, ResolvedBackbone, load_causal_lm, pick_device, resolve_backbone
from ..backbones import resolve_base
from ..backbones.quiet_loading import quiet_libraries
from ..data.labeled import DataWarning
from ..errors import FewtuneError
from ..estimator import ParamsEstimator
from ..params import param
from ..training.lm_training import LMTrainingParams, prepare_for_training
from ..training.lora import load_adapter, save_adapter
from ..training.optim import make_optimizer, update
from ..training.tracking import curve, record_losses, run_name, tracked_run
from ..model_card import render_generator_card, with_front_matter
from ..storage.checkpoint import load_checkpoint, save_checkpoint
from ..storage.model_folder import read_model_folder, write_model_folder
from ..progress import progress_bar
from .data import Chat, as_chats, as_texts
from .formatting import Encoded, LMFormat, collate, token_nll

TASKS = ("generate", "lm")
@dataclasses.dataclass
class GenerationParams(LMTrainingParams):
    epochs: int = param(3, "passes over the training examples", minimum=0)
    learning_rate: float = param(2e-4, "learning rate of what is trained: the LoRA adapters, or every weight with "
                                       "lora=false (use ~2e-5 then)", above=0, renamed_from=("lr",))
    batch_size: int = param(4, "examples per step", minimum=1)
    max_tokens: int = param(256, "tokens per example; longer ones are cut at the end", minimum=8,
                            renamed_from=("max_length",))
    chat_template: bool = param(True, "use the backbone's chat template when it has one (else 'User:/Assistant:')")

    @classmethod
    def method_name(cls) -> str:
        return "generation"


class FewShotGenerator(ParamsEstimator):
    """A causal LM fine-tuned on a few conversations (task="generate") or texts (task="lm").
    `params`: GenerationParams or a dict of them (see `fewtune methods`); `set_params(params__learning_rate=...)` works.
    show_progress: None (the default) shows bars when someone is watching (a terminal, a notebook).
    log_with / logging_dir: Accelerate trackers that get every step's loss as it is taken, one run per fit
    (as FewShotClassifier's)."""

    FITTED, FIT_HINT = "model", "call fit(examples) first"

    def __init__(self, backbone: str = DEFAULT_CAUSAL_LM, *, task: str = "generate",
                 params: dict[str, Any] | None = None, seed: int = 0, device: str | None = None,
                 show_progress: bool | None = None, log_with: list | None = None,
                 logging_dir: str | Path | None = None):
        if task not in TASKS:
            raise FewtuneError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.backbone, self.task, self.seed, self.device = backbone, task, seed, device
        self.params = self._params_from_dict(params)
        self.show_progress = show_progress
        self.log_with, self.logging_dir = log_with, logging_dir
        self.model = self.tokenizer = self.format = None
        self.train_info_: dict[str, Any] = {}
        self.evaluation_: dict[str, Any] = {}

    def _params_class(self):
        return GenerationParams

    def _params_from_dict(self, values) -> GenerationParams:
        if isinstance(values, GenerationParams):  # scikit-learn's clone passes the object back as it was
            return values
        return GenerationParams.from_dict(values or {}, method="generation")

    # -- data -----------------------------------------------------------------------------
    def _examples(self, data, source: str) -> list:
        return as_chats(data, source=source) if self.task == "generate" else as_texts(data, source=source)

    def _encode(self, examples: Sequence) -> list[Encoded]:
        encode = self.format.encode_chat if self.task == "generate" else self.format.encode_text
        encoded = [encode(e) for e in examples]
        kept = [e for e in encoded if any(t != -100 for t in e.labels[1:])]
        if not kept:
            raise FewtuneError(f"no example has a token to learn from within max_tokens={self.params.max_tokens}; "
                               "raise max_tokens")
        if len(kept) < len(encoded):
            warnings.warn(f"{len(encoded) - len(kept)} of {len(encoded)} examples have nothing to learn from within "
                          f"max_tokens={self.params.max_tokens} and are skipped", DataWarning, stacklevel=2)
        return kept

    def _load(self, resolved: ResolvedBackbone) -> None:
        self.backbone_ = resolved
        self.model, self.tokenizer = load_causal_lm(resolved, device=self.device or pick_device())
        self.format = LMFormat(self.tokenizer, max_length=self.params.max_tokens,
                               chat_template=self.params.chat_template and bool(self.tokenizer.chat_template))

    # -- training -------------------------------------------------------------------------
    def fit(self, examples, *, eval_examples=None, checkpoint: str | Path | None = None,
            resume: bool = False) -> FewShotGenerator:
        """Fine-tune on `examples`; with `eval_examples`, record held-out perplexity before and after.

        With `checkpoint` (a folder), the trainable weights, the optimizer and the random state are
        saved there after every epoch; `resume=True` continues from it, ending with the weights an
        uninterrupted run would have (the same batches, the same dropout masks).
        """
        from transformers import get_linear_schedule_with_warmup

        examples = self._examples(examples, "training data")
        held_out = self._examples(eval_examples, "evaluation data") if eval_examples is not None else None
        p = self.params
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        started = time.perf_counter()
        self._load(resolve_backbone(self.backbone))
        if self.backbone_.kind != CAUSAL_LM:
            raise FewtuneError(f"backbone '{self.backbone}' is not a causal LM; generation needs one")
        encoded = self._encode(examples)
        held_encoded = self._encode(held_out) if held_out is not None else None  # once, for before and after
        with tracked_run(self.log_with, self.logging_dir, run_name(self.task, f"seed{self.seed}"),
                         config={"task": self.task, "backbone": self.backbone_.name, "seed": self.seed}) as run, \
                progress_bar(self.show_progress) as progress, record_losses(run) as losses:
            eval_started = time.perf_counter()
            before = self._perplexity(held_encoded, progress) if held_out is not None else None
            eval_seconds = time.perf_counter() - eval_started
            self.model, params, prior = prepare_for_training(self.model, p)
            optimizer = make_optimizer(params, lr=p.learning_rate, weight_decay=p.weight_decay,
                                       device=self.model.device)
            steps_per_epoch = math.ceil(len(encoded) / p.batch_size)
            total = max(1, p.epochs * steps_per_epoch)
            scheduler = get_linear_schedule_with_warmup(optimizer, int(p.warmup_ratio * total), total)
            task = progress.add("Fine-tuning the LM", total=p.epochs * steps_per_epoch)
            pad = self.tokenizer.pad_token_id
            first_epoch = 0  # `losses`: every step's, as update reports it (resumed: the earlier ones too)
            if resume and checkpoint is not None and Path(checkpoint).is_dir():
                state = load_checkpoint(Path(checkpoint), self.model, optimizer, trainable_only=True)
                if state.get("epochs") != p.epochs or state.get("n_examples") != len(encoded):
                    raise FewtuneError(f"{checkpoint}: the checkpoint is of a different run ({state.get('epochs')} "
                                       f"epochs on {state.get('n_examples')} examples); delete it or drop --resume")
                scheduler.load_state_dict(state["scheduler"])
                losses[:], first_epoch = state["losses"], state["epoch"]  # the next step logs as step len+1
                torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
                for _ in range(first_epoch):
                    rng.permutation(len(encoded))  # replay the finished epochs' draws: same order from here on
                progress.advance(task, first_epoch * steps_per_epoch)
            self.model.train()
            for epoch in range(first_epoch, p.epochs):
                order = rng.permutation(len(encoded))
                for start in range(0, len(order), p.batch_size):
                    batch = collate([encoded[i] for i in order[start:start + p.batch_size]], pad, self.model.device)
                    nll, count = token_nll(self.model, batch)
                    update(nll / max(count, 1) + prior.penalty(), params, optimizer, scheduler)
                    progress.advance(task)
                if checkpoint is not None:
                    save_checkpoint(Path(checkpoint), self.model, optimizer,
                                    {"epoch": epoch + 1, "epochs": p.epochs, "n_examples": len(encoded),
                                     "losses": losses, "scheduler": scheduler.state_dict(),
                                     "torch_rng": torch.get_rng_state().tolist()},
                                    is_main=True, trainable_only=True)
            self.model.eval()
            train_seconds = time.perf_counter() - started - eval_seconds  # loading and training, not evaluating
            after = self._perplexity(held_encoded, progress) if held_out is not None else None
            if run is not None and held_out is not None:  # the held-out scores, in the same run as the steps
                run.log_scores({"perplexity_before": before, "perplexity_after": after})
        self.train_info_ = {
            "task": self.task, "n_examples": len(examples), "steps": p.epochs * steps_per_epoch,
            "final_loss": round(losses[-1], 6) if losses else None,
            "loss_curve": curve(losses),
            "trainable_parameters": sum(t.numel() for t in params),
            "distance_from_pretrained": round(prior.distance(), 6),
            "train_seconds": round(train_seconds, 3),
            "chat_template": self.format.chat_template,
        }
        if held_out is not None:
            self.evaluation_ = {"n": len(held_out), "perplexity_before": round(before, 4),
                                "perplexity_after": round(after, 4)}
        return self

    # -- use ------------------------------------------------------------------------------
    def perplexity(self, examples) -> float:
        """exp(mean next-token negative log-likelihood) over the examples' trained tokens (replies, or all text)."""
        self._check_fitted()
        with progress_bar(self.show_progress) as progress:
            return self._perplexity(self._encode(self._examples(examples, "evaluation data")), progress)

    @torch.no_grad()
    def _perplexity(self, encoded: list[Encoded], progress) -> float:
        self.model.eval()
        task = progress.add("Perplexity", total=len(encoded))
        total, count = 0.0, 0
        size = self.params.batch_size
        for start in range(0, len(encoded), size):
            batch = collate(encoded[start:start + size], self.tokenizer.pad_token_id, self.model.device)
            nll, n = token_nll(self.model, batch)
            total, count = total + float(nll), count + n
            progress.advance(task, len(batch["input_ids"]))
        return math.exp(total / max(count, 1))

    @torch.no_grad()
    def generate(self, prompt: str | Chat, *, max_new_tokens: int = 64, temperature: float = 0.0,
                 top_p: float = 0.9, repetition_penalty: float = 1.0,
                 on_text: Callable[[str], None] | None = None) -> str:
        """The model's continuation: for task="generate" the assistant's reply to `prompt` (a user
        message or a whole conversation), for task="lm" the text that follows `prompt`. Greedy at
        temperature 0. `repetition_penalty` > 1 divides the scores of tokens already in the context (small
        models decoding greedily tend to loop; 1.1–1.3 is usual). `on_text` receives the text piece by
        piece as it is generated (streaming)."""
        self._check_fitted()
        if max_new_tokens < 1:
            raise FewtuneError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if temperature < 0:
            raise FewtuneError(f"temperature must not be negative, got {temperature}")
        if repetition_penalty <= 0:
            raise FewtuneError(f"repetition_penalty must be positive, got {repetition_penalty}")
        if self.task == "generate":
            chat = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            ids = self.format.prompt_ids(_checked_turns(chat))
        else:
            if not isinstance(prompt, str):
                raise FewtuneError("task 'lm' continues a text; give a string")
            ids = self.format.text_prompt_ids(prompt)
        streamer = _Streamer(self.tokenizer, on_text) if on_text else None
        input_ids = torch.tensor([ids], device=self.model.device)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else \
            {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        with quiet_libraries():
            out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                      max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=self.tokenizer.eos_token_id, streamer=streamer,
                                      repetition_penalty=repetition_penalty, **sampling)
        return self.tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path, *, merge: bool = False, overwrite: bool = False) -> Path:
        """A model folder: the LoRA adapter alone (reloaded onto the cached base), or with `merge`
        (or full fine-tuning) a standalone LM in lm/ that needs no base backbone."""
        self._check_fitted()
        lora = self.params.lora and not merge

        def payload(folder: Path) -> None:
            if lora:
                save_adapter(self.model, folder, backbone=self.backbone_.name)
                return
            model = self.model
            if self.params.lora:  # merge: fold ΔW into the base weights, drop the adapter layers
                import copy

                model = copy.deepcopy(self.model).merge_and_unload()
            with quiet_libraries():
                model.save_pretrained(str(folder / "lm"), safe_serialization=True)
            self.tokenizer.save_pretrained(str(folder / "lm"))

        config = {
            "task": self.task, "params": self.params.to_dict(), "seed": self.seed, "adapter": lora,
            "backbone": {"name": self.backbone_.name, "kind": CAUSAL_LM, "source": self.backbone_.source},
            "training": self.train_info_,
        }
        if self.evaluation_:
            config["evaluation"] = self.evaluation_
        return write_model_folder(path, config, payload, with_front_matter(render_generator_card),
                                  overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None, show_progress: bool = False) -> FewShotGenerator:
        path = Path(path)
        config = read_model_folder(path)
        if config.get("task") not in TASKS:
            raise FewtuneError(f"{path} holds a {config.get('method', 'classification')} classifier, not a "
                               "generation model; load it with FewShotClassifier.load / `fewtune predict`")
        try:
            # A model saved before a setting was renamed loads as it was, silently (params.param's renamed_from).
            params = GenerationParams.with_new_names(config["params"], method="generation", warn=False)
            gen = cls(config["backbone"]["name"], task=config["task"], params=params,
                      seed=config.get("seed", 0), device=device, show_progress=show_progress)
            saved = ResolvedBackbone(name=config["backbone"]["name"], kind=CAUSAL_LM, path=str(path),
                                     source=config["backbone"]["source"])
            if config.get("adapter"):
                gen._load(resolve_base(saved))
                gen.model = load_adapter(gen.model, path, r=gen.params.lora_r, alpha=gen.params.lora_alpha,
                                         base_name=saved.name)
            else:
                gen._load(ResolvedBackbone(name=saved.name, kind=CAUSAL_LM, path=str(path / "lm"), source="local"))
            gen.backbone_ = saved
            gen.model.eval()
            gen.train_info_ = config.get("training", {})
            gen.evaluation_ = config.get("evaluation", {})
            # The format the model was trained with, even if the backbone's template changed since.
            gen.format.chat_template = bool(gen.train_info_.get("chat_template", gen.format.chat_template))
        except (KeyError, TypeError, OSError, ValueError) as e:
            raise FewtuneError(f"{path}: cannot load model ({type(e).__name__}: {e})") from None
        return gen



def _checked_turns(chat) -> Chat:
    """The conversation so far, validated; the model writes the next assistant turn."""
    if not isinstance(chat, (list, tuple)) or not chat:
        raise FewtuneError("a prompt must be a text or a non-empty list of messages")
    # check_chat wants an assistant turn to learn from; a placeholder one stands in for the reply.
    probe = list(chat) + [{"role": "assistant", "content": "."}]
    return as_chats([probe], source="prompt")[0][:-1]


class _Streamer:
    """Hands decoded text to a callback as tokens arrive (transformers' TextStreamer, without print)."""

    def __new__(cls, tokenizer, on_text):
        from transformers import TextStreamer

        class Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    on_text(text)

        return Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)

