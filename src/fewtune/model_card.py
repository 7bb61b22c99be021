"""A README.md for a saved model: what it is, how it was trained, how well it did, how to load it."""

from __future__ import annotations

from typing import Any


def render_card(config: dict[str, Any]) -> str:
    backbone = config["backbone"]
    training = config.get("training", {})
    lines = [
        f"# fewtune model: {config['method']} on {backbone['name']}",
        "",
        f"A text classifier trained with [fewtune](https://example.invalid/fewtune) using the "
        f"`{config['method']}` method on the `{backbone['name']}` backbone ({backbone.get('source', '')}).",
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
    if "distance_from_pretrained" in training:
        lines.append(f"- encoder moved ‖θ−θ₀‖ = {training['distance_from_pretrained']} from the pretrained weights")
    if training.get("data"):
        lines.append(f"- data: {training['data']}")
    if config.get("class_prior"):
        mix = ", ".join(f"`{c}` {w:.3g}" for c, w in config["class_prior"].items())
        lines.append(f"- class prior at prediction (probabilities re-weighted from the training mix to it): {mix}")
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


def render_generator_card(config: dict[str, Any]) -> str:
    """The card of a fine-tuned causal LM (dialogue or LM adaptation)."""
    backbone, training = config["backbone"], config.get("training", {})
    what = "a dialogue model (assistant replies)" if config["task"] == "generate" else "an adapted language model"
    saved = ("the LoRA adapter only; it loads onto the base backbone" if config.get("adapter")
             else "a standalone model in lm/")
    lines = [
        f"# fewtune model: {config['task']} on {backbone['name']}",
        "",
        f"{what[0].upper()}{what[1:]} fine-tuned with fewtune from `{backbone['name']}` ({backbone.get('source', '')}); "
        f"saved as {saved}.",
        "",
        "## Training",
        "",
        f"- examples: {training.get('n_examples', '?')}, steps: {training.get('steps', '?')}, seed: {config.get('seed')}",
        f"- parameters: `{config.get('params', {})}`",
        f"- weights moved ‖θ−θ₀‖ = {training.get('distance_from_pretrained', '?')} from the pretrained model",
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


def _counts(counts: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items())
