"""`fewtune recommend`: train a recommender, recommend for a new user from a few ratings, benchmark.

    fewtune recommend train --dataset ml-100k --method bayes -o my-recommender
    fewtune recommend my-recommender --history my_ratings.csv      (the default command: rank)
    fewtune recommend bench --dataset ml-100k --methods popularity,item-knn,mf,bayes --shots 4,8,16 --seeds 3

Only typer is imported here: fewtune.cli imports this module at start, and `fewtune --help` must
answer at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from ..backbones.catalog import ITEM_ENCODER
from ..errors import FewtuneError
from . import checks
from .options import Json, Quiet, parse_params
from .options import note as _note
from .options import print_json as _print_json
from .options import table as _table


class _DefaultToRank(TyperGroup):
    """`fewtune recommend MODEL ...` means `fewtune recommend rank MODEL ...` when MODEL is no subcommand."""

    def parse_args(self, ctx, args):
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["rank", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=_DefaultToRank, no_args_is_help=True, rich_markup_mode=None,
                  help="Few-shot recommendation: learn a new user's taste from a handful of ratings.\n\n"
                       "fewtune recommend MODEL --history FILE ranks items for the user whose ratings are in FILE.")

Like = Annotated[float, typer.Option("--like", help="Ratings at or above this are likes.")]
Dislike = Annotated[float, typer.Option("--dislike", help="Ratings at or below this are dislikes.")]
Backbone = Annotated[Optional[str], typer.Option(help="Model that embeds the item texts (bayes): a sentence encoder or a causal LM (its mean-pooled last layer); name, folder or hub id. Default: " + ITEM_ENCODER + ".")]


# --- train ---------------------------------------------------------------------------------------
@app.command()
def train(
    dataset: Annotated[Optional[str], typer.Option(help="ml-100k or ml-1m (MovieLens, from installed packages).")] = None,
    ratings: Annotated[Optional[Path], typer.Option(help="Your own ratings instead: a CSV/TSV/JSONL/Parquet file with user, item and rating columns.")] = None,
    items: Annotated[Optional[Path], typer.Option(help="With --ratings: a file describing the items, with item and text columns (default: the item ids are the texts).")] = None,
    user_col: Annotated[Optional[str], typer.Option(help="With --ratings: the user column (default: user or user_id).")] = None,
    item_col: Annotated[Optional[str], typer.Option(help="With --ratings: the item column (default: item, item_id, title or movie).")] = None,
    rating_col: Annotated[Optional[str], typer.Option(help="With --ratings: the rating column (default: rating, score, stars or like).")] = None,
    method: Annotated[str, typer.Option(help="popularity, user-rate, item-knn, mf, bayes or tallrec (see `fewtune recommend methods`).")] = "bayes",
    param: Annotated[Optional[list[str]], typer.Option("--param", "-p", help="Method parameter KEY=VALUE (repeatable).")] = None,
    backbone: Backbone = None,
    like: Like = 4.0,
    dislike: Dislike = 2.0,
    test_fraction: Annotated[float, typer.Option(help="Share of users held out to evaluate on (0 = train on every user, no evaluation).")] = 0.2,
    shots: Annotated[int, typer.Option(help="Evaluation: ratings each held-out user reveals (K).")] = 8,
    max_items: Annotated[int, typer.Option(help="Evaluation: score at most this many held-out items per user (0 = all); tallrec costs one LM call per item.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the user split, the K-rating draws and training.")] = 0,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder to save the model in.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing model folder.")] = False,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps (for the encoder).")] = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Learn from many users' ratings; evaluate on held-out users who reveal K ratings each; save."""
    from ..recommend.api import FewShotRecommender
    from ..recommend.methods import get_recommender
    from ..recommend.data import LikeScale, cap_heldout, cold_start_users, split_users
    from ..recommend.evaluate import evaluate

    if (dataset is None) == (ratings is None):
        raise FewtuneError("give exactly one of --dataset NAME or --ratings FILE")
    if items is not None and ratings is None:
        raise FewtuneError("--items describes the items of --ratings; give --ratings too")
    if output is not None:
        checks.output_folder(output, overwrite=overwrite)
    for path, option in ((ratings, "--ratings"), (items, "--items")):
        if path is not None:
            checks.input_file(path, option)
    checks.device(device)
    if not 0.0 <= test_fraction < 1.0:
        raise FewtuneError(f"--test-fraction must be in [0, 1), got {test_fraction}")
    if max_items < 0:
        raise FewtuneError(f"--max-items must be 0 (all) or more, got {max_items}")
    params = parse_params(param)
    get_recommender(method).params_class.from_dict(params, method=method)  # typos fail before any work
    scale = LikeScale(like, dislike)
    data = _load_data(dataset, ratings, items, (user_col, item_col, rating_col))
    train_users = test_users = None
    if test_fraction > 0:
        train_users, test_users = split_users(data, test_fraction, seed)
    _note(quiet, f"training {method} on {data.name}: {data.n_users if train_users is None else len(train_users)} "
                 f"users, {data.n_items} items")
    rec = FewShotRecommender(method, backbone=backbone, params=params, like_threshold=like,
                             dislike_threshold=dislike, seed=seed, device=device, show_progress=not quiet)
    rec.fit(data, users=train_users)
    result: dict[str, Any] = {"method": method, "data": data.name, "train_seconds": rec.train_info_["train_seconds"],
                              "training_users": rec.train_info_["training_users"]}
    evaluation = None
    if test_users is not None:
        tasks, skipped = cold_start_users(data, test_users, shots, seed, scale)
        scores = evaluate(rec.method_, cap_heldout(tasks, max_items, seed), scale, data.n_items, seed=seed)
        evaluation = {"K": shots, **({"max_items": max_items} if max_items else {}), **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in scores.items()},
                      "users_skipped": skipped}
        result["evaluation"] = evaluation
    if output is not None:
        rec.save(output, overwrite=overwrite, evaluation=evaluation)
        result["output"] = str(output)
    if json_out:
        _print_json(result)
        return
    if evaluation:
        fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        typer.echo(f"{evaluation['n_users']} held-out users, K={shots} known ratings each: "
                   f"AUC {fmt(evaluation['auc'])} (pooled {fmt(evaluation['auc_pooled'])}), "
                   f"NDCG@10 {fmt(evaluation['ndcg@10'])}, Recall@10 {fmt(evaluation['recall@10'])}")
    typer.echo(f"trained in {result['train_seconds']:.1f} s on {result['training_users']} users")
    if output is not None:
        typer.echo(f"model saved to {output}")


def _load_data(dataset: Optional[str], ratings: Optional[Path], items: Optional[Path], given: tuple):
    from ..recommend.data import from_triples, load_movielens

    if dataset is not None:
        return load_movielens(dataset)
    from ..data.readers import read_table
    from ..recommend.history import ITEM_COLUMNS, RATING_COLUMNS, pick_column

    columns, records, _ = read_table(ratings)
    wanted = zip((("user", "user_id"), ITEM_COLUMNS, RATING_COLUMNS), given, ("user", "item", "rating"))
    cols = [pick_column(columns, names, col, str(ratings), what) for names, col, what in wanted]
    users, item_names, values = ([r.get(c) for r in records] for c in cols)
    ids = texts = None
    if items is not None:
        icolumns, irecords, _ = read_table(items)
        id_col = pick_column(icolumns, ("item", "item_id", "id"), None, str(items), "item")
        text_col = pick_column(icolumns, ("text", "title", "description"), None, str(items), "text")
        ids, texts = [str(r.get(id_col)) for r in irecords], [str(r.get(text_col)) for r in irecords]
    return from_triples(users, item_names, values, ids, texts, name=ratings.name, source=str(ratings))


# --- rank (the default command) ---------------------------------------------------------------
@app.command()
def rank(
    model: Annotated[Path, typer.Argument(help="A model folder saved by `fewtune recommend train`.")],
    history: Annotated[Optional[Path], typer.Option(help="Your ratings: CSV/TSV/JSONL/Parquet with an item column (id or title) and a rating column (a number or like/dislike). Without it: the population's favourites.")] = None,
    n: Annotated[int, typer.Option("-n", help="How many items to recommend.")] = 10,
    item_col: Annotated[Optional[str], typer.Option(help="Column naming the item (default: item, item_id, title or movie).")] = None,
    rating_col: Annotated[Optional[str], typer.Option(help="Column holding the rating (default: rating, score, stars or like).")] = None,
    include_rated: Annotated[bool, typer.Option(help="Also rank items already in the history.")] = False,
    encoding: Annotated[str, typer.Option(help="Text encoding of the history file.")] = "utf-8",
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Recommend items for the user whose ratings are in --history: ranked, with P(like)."""
    import numpy as np

    from ..recommend.api import FewShotRecommender
    from ..recommend.history import read_history_file

    if n < 1:
        raise FewtuneError(f"-n must be at least 1, got {n}")
    checks.recommender_folder(model)
    if history is not None:
        checks.input_file(history, "--history")
    rec = FewShotRecommender.load(model)
    if history is None:
        known, labels, neutral = np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.int64)
    else:
        known, labels, neutral = read_history_file(history, rec.item_matcher(), rec.scale_, item_col=item_col,
                                                   rating_col=rating_col, encoding=encoding)
    if len(neutral):
        _note(quiet, f"{len(neutral)} neutral rating(s) (between {rec.scale_.dislike} and {rec.scale_.like}) left "
                     "out of the user's taste, and not recommended back")
    found = rec.recommend((known, labels), n, exclude=np.zeros(0, np.int64) if include_rated else np.concatenate([known, neutral]))
    rows = [{"rank": r, **row, "score": round(row["score"], 6), "p_like": round(row["p_like"], 6)}
            for r, row in enumerate(found, 1)]
    if json_out:
        _print_json({"model": str(model), "method": rec.method, "history": {"likes": int((labels > 0).sum()),
                     "dislikes": int((labels < 0).sum()), "neutral": len(neutral)}, "recommendations": rows})
        return
    _table(["rank", "P(like)", "item", "text"],
           [[str(row["rank"]), f"{row['p_like']:.3f}", row["item"][:30], row["text"][:90]] for row in rows])


# --- bench ---------------------------------------------------------------------------------------
PROTOCOLS = ("cold-start", "tallrec")


@app.command()
def bench(
    dataset: Annotated[str, typer.Option(help="ml-100k or ml-1m.")] = "ml-100k",
    protocol: Annotated[str, typer.Option(help="cold-start: each test user reveals K random ratings (--shots); tallrec: TALLRec's, a user's latest ratings before a target (a rating above 3 is a like), methods trained on N such samples (--samples).")] = "cold-start",
    methods: Annotated[str, typer.Option(help="Comma-separated; METHOD:KEY=VALUE,KEY=VALUE sets parameters, e.g. mf:factors=16.")] = "popularity,item-knn,mf,bayes",
    shots: Annotated[Optional[str], typer.Option(help="cold-start: K known ratings per test user, comma-separated (0 = none: the population prior). Default 4,8,16.")] = None,
    samples: Annotated[Optional[str], typer.Option(help="tallrec: training samples (the budget), comma-separated. Default 16,64,256.")] = None,
    history: Annotated[int, typer.Option(help="tallrec: ratings before the target in each sample.")] = 10,
    max_test: Annotated[int, typer.Option(help="tallrec: test samples, a fixed subset of the test users' (the same for every method and seed).")] = 1000,
    seeds: Annotated[str, typer.Option(help="A count (3 = seeds 0-2), a range (0-4) or a list (0,3,7); cold-start: each seed is one user split and one set of draws; tallrec: each seed draws the training samples.")] = "3",
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON lines, one per (method, K or samples, seed); runs already there are skipped.")] = Path("recommend_runs.jsonl"),
    backbone: Backbone = None,
    like: Like = 4.0,
    dislike: Dislike = 2.0,
    test_fraction: Annotated[float, typer.Option(help="Share of users who are test users.")] = 0.2,
    balanced: Annotated[bool, typer.Option(help="cold-start: known ratings half likes, half dislikes where the user has them (default: random, as a new user's would be).")] = False,
    unrated: Annotated[int, typer.Option(help="cold-start: add this many random unrated items to each test user's ranking candidates (0 = rank only their held-out rated items).")] = 0,
    max_users: Annotated[int, typer.Option(help="cold-start: score at most this many test users (0 = all); the same ones for every method.")] = 0,
    max_items: Annotated[int, typer.Option(help="cold-start: score at most this many held-out items per test user (0 = all), a seeded subset, the same for every method (tallrec costs one LM call per item).")] = 0,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, mps (for the encoder).")] = None,
    quiet: Quiet = False,
    json_out: Json = False,
):
    """Every method on the same draws, then mean ± std over seeds: the cold-start protocol (AUC, NDCG@10,
    Recall@10 per method, K, seed) or TALLRec's (AUC over its test samples, with a bootstrap interval)."""
    from ..bench.api import seed_list
    from ..progress import progress_bar
    from ..recommend.runner import parse_methods

    if protocol not in PROTOCOLS:
        raise FewtuneError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    (option, given), (other, stray) = ((("--samples", samples), ("--shots", shots)) if protocol == "tallrec"
                                       else (("--shots", shots), ("--samples", samples)))
    if stray is not None:
        raise FewtuneError(f"{other} does not apply to --protocol {protocol}; use {option}")
    counts = _int_list(given or ("16,64,256" if protocol == "tallrec" else "4,8,16"), option)
    method_list, seed_values = parse_methods(methods), seed_list(seeds)
    if out.is_dir():
        raise FewtuneError(f"--out {out} is a folder; give a file name (JSON lines, e.g. recommend_runs.jsonl)")
    checks.writable_parent(out, "--out")
    checks.device(device)
    if protocol == "tallrec":
        from ..recommend.tallrec_protocol import SUMMARY_HEADER, TallRecProtocol, format_summary, run_tallrec_bench

        run = run_tallrec_bench
        chosen = TallRecProtocol(dataset=dataset, history=history, test_fraction=test_fraction, max_test=max_test,
                                 backbone=backbone or ITEM_ENCODER)

        def line(r):
            lo, hi = r["auc_ci95"]
            return f"{r['method']} samples={r['samples']} seed={r['seed']}: AUC {r['auc']:.3f} [{lo:.3f}, {hi:.3f}]"
    else:
        from ..recommend.protocol import SUMMARY_HEADER, Protocol, format_summary, run_bench

        run = run_bench
        chosen = Protocol(dataset=dataset, like=like, dislike=dislike, test_fraction=test_fraction, balanced=balanced,
                          n_unrated=unrated, max_users=max_users, backbone=backbone or ITEM_ENCODER,
                          max_items=max_items)

        def line(r):
            return f"{r['method']} K={r['K']} seed={r['seed']}: AUC {_num(r['auc'])}, NDCG@10 {_num(r['ndcg@10'])}"

    with progress_bar(not quiet) as progress:
        def on_record(r):
            if not quiet:
                progress.log(f"{line(r)}, train {r['train_seconds']:.1f} s")

        result = run(chosen, method_list, counts, seed_values, out, progress=progress, on_record=on_record,
                     device=device)
    if json_out:
        _print_json(result)
        return
    _table(SUMMARY_HEADER, format_summary(result["summary"]))
    typer.echo(f"{result['done']} runs done, the others already in {out}")


def _int_list(text: str, option: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise FewtuneError(f"{option} must be whole numbers separated by commas, got {text!r}") from None


@app.command("methods")
def list_methods(json_out: Json = False):
    """The recommendation methods and their parameters."""
    from ..recommend.methods import RECOMMENDERS, get_recommender

    get_recommender("popularity")  # registers them all
    rows = {name: {"description": cls.description, "params": cls.params_class.help(),
                   "defaults": cls.params_class().to_dict()} for name, cls in RECOMMENDERS.items()}
    if json_out:
        _print_json(rows)
        return
    for name, row in rows.items():
        typer.echo(f"{name}: {row['description']}")
        for key, text in row["params"].items():
            typer.echo(f"    {key} = {row['defaults'][key]!r}: {text}")


# --- helpers -------------------------------------------------------------------------------------
def _num(v) -> str:
    return "—" if v is None else f"{v:.3f}"



