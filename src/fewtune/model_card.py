"""A README.md for a saved model: what it is, how it was trained, how well it did, how to load it.

Every card opens with YAML metadata written by huggingface_hub's ModelCardData (library, base model,
pipeline tag, tags, the held-out scores as model-index results), so the Hub and any tool that reads
Hub cards parse it; the prose below it is fewtune's own. A backbone converted from a quantized package
is named for what it is: the hub model as its origin, the quantization and package as what ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .backbones import catalog


PIPELINE_TAGS = {"classify": "text-classification", "generate": "text-generation", "lm": "text-generation"}
METRICS = {"accuracy": ("accuracy", None), "macro_f1": ("f1", "macro"), "ece": ("ece", None), "nll": ("nll", None),
           "brier": ("brier", None), "perplexity_after": ("perplexity", None)}


def with_front_matter(render: Callable[..., str]) -> Callable[..., str]:
    """`render` (config -> card text) as a whole card: the same text under its Hub YAML metadata. What the
    savers hand to storage's write_model_folder, which writes the card without knowing what is in it."""
    return lambda config, *args, **kwargs: with_metadata(config, render(config, *args, **kwargs))


def with_metadata(config: dict[str, Any], card: str) -> str:
    """`card` under the YAML front matter of a Hub model card (huggingface_hub.ModelCardData)."""
    import re
    from importlib.metadata import version

    from huggingface_hub import EvalResult, ModelCardData

    backbone = config.get("backbone") or {}
    name = backbone.get("name") if isinstance(backbone, dict) else backbone
    task = config.get("task") or ("classify" if "classes" in config else None)
    pipeline_tag = PIPELINE_TAGS.get(task)
    evaluation = config.get("evaluation") or {}
    title = f"fewtune {config.get('method') or task or 'model'} on {name or 'no backbone'}"
    results = []
    if pipeline_tag and isinstance(evaluation.get("held_out"), str):
        held_out = evaluation["held_out"]
        slug = re.sub(r"[^a-z0-9]+", "-", held_out.lower()).strip("-") or "held-out"
        results = [EvalResult(task_type=pipeline_tag, dataset_type=slug, dataset_name=held_out, metric_type=metric,
                              metric_config=config_name, metric_value=evaluation[key])
                   for key, (metric, config_name) in METRICS.items() if isinstance(evaluation.get(key), (int, float))]
    registry_name = name.lower() if isinstance(name, str) else None
    origin = catalog.quantized_origin(registry_name)
    # base_model stays the hub model: it is where the weights came from. A backbone converted from a
    # quantized package is not that model's weights, so the relation is "quantized" (the Hub's values:
    # adapter, merge, quantized, finetune; left out, it would guess adapter or finetune, hiding the rounding)
    # and the quantization and package that actually ran are named beside it.
    quantized = ({"base_model_relation": "quantized", "base_model_quantization": origin.quantization,
                  "base_model_package": origin.package} if origin else {})
    # inference: false — no Hub widget or Inference API can run a fewtune model (library_name fewtune is no
    # library the Hub serves); pipeline_tag stays, as the task the model does, for filtering by task.
    data = ModelCardData(library_name="fewtune", base_model=catalog.hub_id(registry_name),
                         pipeline_tag=pipeline_tag, inference=False,
                         tags=["fewtune", "few-shot", *([config["method"]] if config.get("method") else []),
                               *(["quantized-base-model"] if quantized else [])],
                         model_name=title, eval_results=results or None, fewtune_version=version("fewtune"),
                         **quantized)
    return f"---\n{data.to_yaml()}\n---\n\n{card}"


def render_card(config: dict[str, Any], strategies: Sequence[str] = ()) -> str:
    """strategies: the describe() line of each posterior and calibration the model applies (fewtune.bayes)."""
    backbone = config["backbone"]
    training = config.get("training", {})
    lines = [
        f"# fewtune model: {config['method']} on {backbone['name']}",
        "",
        f"A text classifier trained with fewtune using the "
        f"`{config['method']}` method on the `{backbone['name']}` backbone ({source_words(backbone)}).",
        *backbone_origin_lines(backbone["name"]),
        *adapter_lines(config),
        "",
        "## Classes",
        "",
        ", ".join(f"`{c}`" for c in config["classes"]),
        "",
        "## Training",
        "",
        f"- examples: {training.get('n_examples', '?')} ({_counts(training.get('class_counts', {}))})",
        f"- seed: {config.get('seed')}",
        f"- parameters: `{config.get('params', {})}`",
    ]
    if config.get("multi_label"):
        lines.append("- multi-label: one-vs-rest, independent probabilities; a label is predicted at ≥ 0.5")
    lines += _loss_lines(training)
    if "distance_from_pretrained" in training:
        lines.append(f"- encoder moved ‖θ−θ₀‖ = {training['distance_from_pretrained']} from the pretrained weights")
    if training.get("data"):
        lines.append(f"- data: {training['data']}")
    if config.get("class_prior"):
        mix = ", ".join(f"`{c}` {w:.3g}" for c, w in config["class_prior"].items())
        lines.append(f"- class prior at prediction (probabilities re-weighted from the training mix to it): {mix}")
    lines += [f"- {line}" for line in strategies]
    selection = training.get("selection")
    if selection and selection["method"] == "evidence":
        lines += ["", "### Prior strength chosen by the Laplace evidence of the training labels", ""]
        lines += [f"- `{r['params']}`: log evidence {r['log_evidence']} (log-likelihood {r['log_likelihood']}, "
                  f"prior {r['prior_penalty']}, Occam {r['occam']}), ‖θ−θ₀‖ = {r['distance_from_pretrained']}"
                  + (" — **chosen**" if r["params"] == selection["chosen"] else "") for r in selection["results"]]
    elif selection:
        lines += ["", f"### Parameters chosen by {selection['folds']}-fold cross-validation on the training examples", ""]
        lines += [f"- `{r['params']}`: accuracy {r['accuracy']} ± {r['accuracy_std']}, macro-F1 {r['macro_f1']}"
                  + (" — **chosen**" if r["params"] == selection["chosen"] else "") for r in selection["results"]]
    auto = training.get("auto")
    if auto:
        lines += ["", f"### Method chosen by {auto['folds']}-fold cross-validation on the training examples (auto)", ""]
        lines += [f"- {name} on {r['backbone']}: out-of-fold NLL {r['cv_nll']}, accuracy {r['cv_accuracy']}, "
                  f"{r['seconds']} s" + (" — **chosen**" if name in auto["members"] else "")
                  for name, r in auto["candidates"].items()]
        if "stack" in auto:
            lines.append(f"- stack (log-linear pool): out-of-fold NLL {auto['stack']['cv_nll']}"
                         + (" — **chosen**, weights " + str(auto["stack"]["weights"]) if auto["stack"]["chosen"] else ""))
        lines += [f"- {name}: skipped ({why})" for name, why in auto["skipped"].items()]
    if training.get("distillation"):
        lines += distillation_lines(training["distillation"])
    prompt = training.get("prompt")
    if prompt:
        lines += ["", "### What the language model is asked", "",
                  f"- template: {prompt['template']}" + (" (chosen on the shots)" if "template_candidates" in prompt else ""),
                  f"- label words: {prompt['label_words']}",
                  f"- calibration (scale, bias per class, fitted on the shots): {prompt['calibration']}"]
    evaluation = config.get("evaluation")
    if evaluation:
        lines += ["", "## Held-out evaluation", ""]
        lines += [f"- {k}: {v}" for k, v in evaluation.items()]
        lines += [
            "",
            "Few-shot results vary by several points between random draws of the same number of "
            "examples; a single run is one sample, not the method's accuracy.",
        ]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from fewtune import FewShotClassifier",
        'clf = FewShotClassifier.load("PATH")',
        'clf.predict(["some text"]), clf.predict_proba(["some text"])',
        "```",
        "",
        "or `fewtune predict PATH texts.csv --text-col text`.",
        "",
        "## Versions",
        "",
        *(f"- {k} {v}" for k, v in config.get("versions", {}).items()),
        "",
    ]
    return "\n".join(lines)


def source_words(backbone: dict[str, Any]) -> str:
    """Where the backbone was read from, said for a reader of the card: a card travels to other machines
    (the Hub), so it names the package or the install command, never this machine's cache path."""
    kind, _, where = str(backbone.get("source", "")).partition(":")
    if kind == "package":
        return f"from the `{where}` package"
    if kind == "cache":
        return f"converted by `fewtune models install {backbone['name']}`"
    return {"local": "a local model folder", "hub": "from the Hugging Face Hub"}.get(kind, kind or "source unknown")


def backbone_origin_lines(name: str | None) -> list[str]:
    """Where a backbone converted from a quantized package came from and what actually ran (none for a
    backbone that is its hub model's own weights)."""
    origin = catalog.quantized_origin(name.lower() if isinstance(name, str) else None)
    if origin is None:
        return []
    return ["", f"The backbone `{origin.name}` is not {origin.origin}'s own weights: it is that model quantized to "
                f"{origin.quantization} as shipped in the package `{origin.package}`, dequantised to float32 by "
                f"fewtune. The weights keep the quantization's rounding, so putting {origin.origin} in its place "
                f"changes the results; load this model on the same backbone (`fewtune models install {origin.name}`)."]


def adapter_lines(config: dict[str, Any]) -> list[str]:
    """How a saved LoRA adapter loads with PEFT alone, and onto which weights."""
    if "adapter_config.json" not in (config.get("files") or {}):
        return []
    name = config["backbone"]["name"]
    origin = catalog.quantized_origin(name.lower())
    if origin is not None:
        base = (f"the converted folder of `{origin.name}` (`fewtune models install {origin.name}` prints where "
                f"it is), not {origin.origin}; adapter_config.json's base_model_name_or_path says so, in place of "
                "a hub id")
    else:
        base = f"`{catalog.adapter_base(name.lower()) or name}`"
    return ["", "The LoRA adapter is PEFT's own format (`adapter_config.json`, `adapter_model.safetensors`): "
                f"`peft.PeftModel.from_pretrained(base, PATH)` loads it, `base` being the causal LM loaded from "
                f"{base}."]


def render_static_card(manifest: dict[str, Any]) -> str:
    """The card of a static-embedding student (`fewtune distill --student static`)."""
    backbone, training = manifest["backbone"], manifest.get("training", {})
    lines = [
        f"# fewtune model: static embeddings of {backbone['name']} + a softmax head",
        "",
        f"A text classifier that embeds a text by averaging rows of a {backbone.get('dims')}-dimensional static "
        f"token table (distilled from `{backbone['name']}` by model2vec) and applies a linear softmax head. "
        "It loads and predicts without torch.",
        *backbone_origin_lines(backbone["name"]),
        "",
        "## Classes",
        "",
        ", ".join(f"`{c}`" for c in manifest["classes"]),
        "",
        "## Training",
        "",
        f"- examples: {training.get('n_examples', '?')} (by the teacher's top class: "
        f"{_counts(training.get('class_counts', {}))})",
        f"- head: L2 strength C = {training.get('head', {}).get('C')}, chosen by cross-entropy to the teacher on "
        "held-out training texts",
    ]
    if training.get("distillation"):
        lines += distillation_lines(training["distillation"])
    lines += ["", "## Use", "", "`fewtune predict PATH texts.csv`, `fewtune serve PATH`, or", "", "```python",
              "from fewtune.export.static import StaticClassifier",
              'StaticClassifier.load("PATH").predict_proba(["some text"])', "```", "", "## Versions", "",
              *(f"- {k} {v}" for k, v in manifest.get("versions", {}).items()), ""]
    return "\n".join(lines)


def render_generator_card(config: dict[str, Any]) -> str:
    """The card of a fine-tuned causal LM (dialogue or LM adaptation)."""
    backbone, training = config["backbone"], config.get("training", {})
    what = "a dialogue model (assistant replies)" if config["task"] == "generate" else "an adapted language model"
    saved = ("the LoRA adapter only; it loads onto the base backbone" if config.get("adapter")
             else "a standalone model in lm/")
    lines = [
        f"# fewtune model: {config['task']} on {backbone['name']}",
        "",
        f"{what[0].upper()}{what[1:]} fine-tuned with fewtune from `{backbone['name']}` ({source_words(backbone)}); "
        f"saved as {saved}.",
        *backbone_origin_lines(backbone["name"]),
        *adapter_lines(config),
        "",
        "## Training",
        "",
        f"- examples: {training.get('n_examples', '?')}, steps: {training.get('steps', '?')}, seed: {config.get('seed')}",
        f"- parameters: `{config.get('params', {})}`",
        f"- weights moved ‖θ−θ₀‖ = {training.get('distance_from_pretrained', '?')} from the pretrained model",
        *_loss_lines(training),
    ]
    if training.get("data"):
        lines.append(f"- data: {training['data']}")
    if config.get("class_prior"):
        mix = ", ".join(f"`{c}` {w:.3g}" for c, w in config["class_prior"].items())
        lines.append(f"- class prior at prediction (probabilities re-weighted from the training mix to it): {mix}")
    evaluation = config.get("evaluation")
    if evaluation:
        lines += ["", "## Held-out perplexity", "",
                  f"- {evaluation['n']} held-out examples: {evaluation['perplexity_before']} before, "
                  f"{evaluation['perplexity_after']} after fine-tuning (lower is better)"]
    usage = ('gen.generate("Hi! How are you?")' if config["task"] == "generate" else 'gen.generate("The movie")')
    lines += ["", "## Use", "", "```python", "from fewtune import FewShotGenerator",
              'gen = FewShotGenerator.load("PATH")', usage, "```", "",
              "or `fewtune generate PATH --prompt ...`" + (" / `fewtune chat PATH`." if config["task"] == "generate" else "."),
              "", "## Versions", "", *(f"- {k} {v}" for k, v in config.get("versions", {}).items()), ""]
    return "\n".join(lines)


def distillation_lines(d: dict[str, Any]) -> list[str]:
    """The card's account of a distilled student: its teacher, the pool it learned from, how far it agrees."""
    teacher, pool, held = d["teacher"], d["pool"], d.get("heldout") or {}
    lines = ["", "## Distilled from a teacher", "",
             f"- teacher: `{teacher['folder']}` ({teacher['method']} on {teacher['backbone']}, runtime "
             f"{teacher['runtime']}; fewtune.json sha256 {str(teacher.get('config_sha256'))[:16]})",
             f"- unlabeled pool: `{pool['file']}`, {pool['n_texts']} texts (sha256 of the texts "
             f"{pool['sha256'][:16]}), {pool['n_train']} labeled by the teacher for training"
             + (f", {pool['n_heldout']} held out" if pool.get("n_heldout") else ""),
             f"- shots: {d['n_shots']}" + (f" (repeated ×{d['shot_repeats']})" if d.get("shot_repeats", 1) > 1 else ""),
             f"- rounds: {d['rounds']}" + (" (self-training: each later round's teacher is the student before it)"
                                           if d["rounds"] > 1 else "")]
    if held:
        lines.append(f"- agreement with the teacher on {held['n']} held-out pool texts: "
                     f"{held['agreement']:.1%} of top classes, mean total variation {held['total_variation']:.3f}")
    else:
        lines.append("- agreement with the teacher: not measured (the pool was too small to hold texts out)")
    return lines


SPARKS = "▁▂▃▄▅▆▇█"


def _loss_lines(training: dict[str, Any]) -> list[str]:
    """The training loss curve in one line: first and last value, and its shape as a sparkline."""
    points = training.get("loss_curve") or []
    if len(points) < 2:
        return []
    losses = [loss for _, loss in points]
    low, high = min(losses), max(losses)
    shape = "".join(SPARKS[int((v - low) / (high - low) * (len(SPARKS) - 1)) if high > low else 0]
                    for v in losses[:: max(1, len(losses) // 40)])
    return [f"- training loss: {losses[0]:.4g} → {losses[-1]:.4g} over {points[-1][0]} steps {shape} "
            "(every point: `training.loss_curve` in fewtune.json)"]


def _counts(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


