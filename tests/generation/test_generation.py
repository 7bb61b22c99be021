"""Fine-tuning causal LMs to generate (dialogue, LM adaptation) on a tiny random Llama built at test time."""

from __future__ import annotations

import io
import json
import shutil
import sys

import pytest
import torch

from fewtune import FewShotClassifier, FewShotGenerator, FewtuneError
from fewtune.backbones import ResolvedBackbone, load_causal_lm
from fewtune.errors import DataError
from fewtune.generation import as_chats, load_chats, load_texts
from fewtune.generation.chat import chat_loop
from fewtune.generation.formatting import IGNORE, LMFormat, collate, token_nll

CHAT = [{"role": "user", "content": "hello how are you"}, {"role": "assistant", "content": "i am fine thanks"},
        {"role": "user", "content": "what did you do today"}, {"role": "assistant", "content": "i went to the park"}]
# Memorisable data: each question has one answer. Full fine-tuning at a high rate learns it in a few steps.
PAIRS = [("hello how are you", "i am fine thanks"), ("what did you do today", "i went to the park"),
         ("do you like movies", "yes i love movies"), ("how is the weather", "the weather is nice")]
LEARN = {"lora": False, "learning_rate": 3e-3, "epochs": 80, "batch_size": 4, "warmup_ratio": 0.0}


def tiny(folder):
    return load_causal_lm(ResolvedBackbone("tiny", "causal-lm", str(folder), "local"), device="cpu")


def labelled_text(tokenizer, enc) -> str:
    return tokenizer.decode([t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE])


@pytest.fixture(scope="module")
def trained(chat_llama_folder):
    """A dialogue model that has memorised PAIRS (full fine-tuning), with held-out perplexity recorded."""
    return FewShotGenerator(str(chat_llama_folder), params=LEARN, show_progress=False).fit(PAIRS, eval_examples=PAIRS)


# --- formatting: what carries a loss ---------------------------------------------------------------
def test_only_assistant_replies_and_their_end_of_turn_carry_the_loss(chat_llama_folder):
    _, tok = tiny(chat_llama_folder)
    enc = LMFormat(tok, max_length=256).encode_chat(CHAT)
    assert labelled_text(tok, enc) == "i am fine thanks<|im_end|>\ni went to the park<|im_end|>\n"
    assert tok.decode(enc.input_ids).startswith("<|im_start|>user\nhello how are you<|im_end|>")
    assert enc.labels[0] == IGNORE


def test_without_a_chat_template_a_plain_layout_ends_each_reply_with_eos(chat_llama_folder):
    _, tok = tiny(chat_llama_folder)
    fmt = LMFormat(tok, max_length=256, chat_template=False)
    enc = fmt.encode_chat(CHAT)
    assert labelled_text(tok, enc) == " i am fine thanks<|im_end|>\n i went to the park<|im_end|>\n"
    assert tok.decode(fmt.prompt_ids(CHAT[:1])).endswith("User: hello how are you\nAssistant:")


def test_a_conversation_longer_than_max_length_keeps_its_latest_turns(chat_llama_folder):
    _, tok = tiny(chat_llama_folder)
    long = [{"role": "system", "content": "be brief"}]
    for i in range(8):
        long += [{"role": "user", "content": f"what did you do today {i}"},
                 {"role": "assistant", "content": f"i went to the park {i}"}]
    whole = LMFormat(tok, max_length=4096).encode_chat(long)
    room = len(LMFormat(tok, max_length=4096).encode_chat([long[0], *long[-4:]]).input_ids) + 2  # system + 2 exchanges
    fmt = LMFormat(tok, max_length=room)
    enc = fmt.encode_chat(long)
    assert len(whole.input_ids) > room >= len(enc.input_ids)
    text = tok.decode(enc.input_ids)
    assert text.startswith("<|im_start|>system") and "be brief" in text  # the system message stays
    assert "i went to the park 7" in text and "park 6" in text and "today 5" not in text  # the latest exchanges
    assert enc.labels[-2] != IGNORE  # the last reply is learned
    # One exchange longer than max_length alone loses its beginning, never its reply.
    huge = [{"role": "user", "content": "hello " * 60}, {"role": "assistant", "content": "i am fine thanks"}]
    cut = LMFormat(tok, max_length=48).encode_chat(huge)
    assert len(cut.input_ids) == 48 and tok.decode(cut.input_ids).rstrip().endswith("i am fine thanks<|im_end|>")
    # A user's last word after the reply (chitchat's "Bye") teaches nothing: it goes before the reply does.
    bye = LMFormat(tok, max_length=48).encode_chat([*huge, {"role": "user", "content": "bye"}])
    assert bye == cut


def test_padding_is_masked_out_of_attention_and_loss(llama_folder):
    """The word-level tiny Llama has no pad token: loading sets one, and a padded batch gives each
    text the same loss as it has alone."""
    model, tok = tiny(llama_folder)
    assert tok.pad_token_id is not None
    fmt = LMFormat(tok, max_length=64)
    short, long = fmt.encode_text("great movie"), fmt.encode_text("this movie was great it was great .")
    assert short.input_ids[-1] == tok.eos_token_id
    batch = collate([short, long], tok.pad_token_id, "cpu")
    assert (batch["labels"][0, len(short.input_ids):] == IGNORE).all()
    with torch.no_grad():
        together, n = token_nll(model, batch)
        alone = [token_nll(model, collate([e], tok.pad_token_id, "cpu")) for e in (short, long)]
    assert n == sum(k for _, k in alone) == len(short.input_ids) + len(long.input_ids) - 2
    torch.testing.assert_close(together, alone[0][0] + alone[1][0], atol=1e-4, rtol=1e-5)


# --- training and use ------------------------------------------------------------------------------
def test_fine_tuning_lowers_held_out_perplexity_and_learns_the_replies(trained):
    assert trained.evaluation_["perplexity_after"] < trained.evaluation_["perplexity_before"] / 5
    assert trained.perplexity(PAIRS) == pytest.approx(trained.evaluation_["perplexity_after"], rel=1e-4)
    for question, answer in PAIRS:
        assert trained.generate(question, max_new_tokens=12) == answer
    assert trained.train_info_["distance_from_pretrained"] > 0


def test_streamed_pieces_add_up_to_the_reply(trained):
    pieces = []
    reply = trained.generate([{"role": "user", "content": "what did you do today"}], max_new_tokens=12,
                             on_text=pieces.append)
    assert len(pieces) > 1 and "".join(pieces).strip() == reply == "i went to the park"


def test_lora_model_saves_small_and_reloads_to_identical_outputs(chat_llama_folder, tmp_path):
    gen = FewShotGenerator(str(chat_llama_folder), params={"learning_rate": 1e-2, "epochs": 5}, show_progress=False).fit(PAIRS)
    gen.save(tmp_path / "lora")
    files = {p.name for p in (tmp_path / "lora").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "fewtune.json", "README.md"} == files
    again = FewShotGenerator.load(tmp_path / "lora")
    assert again.perplexity(PAIRS) == pytest.approx(gen.perplexity(PAIRS), rel=1e-6)
    assert [again.generate(q, max_new_tokens=8) for q, _ in PAIRS] == [gen.generate(q, max_new_tokens=8) for q, _ in PAIRS]


def test_a_lora_folder_loads_in_plain_peft_with_the_same_logits(chat_llama_folder, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gen = FewShotGenerator(str(chat_llama_folder), params={"learning_rate": 1e-2, "epochs": 5}, show_progress=False).fit(PAIRS)
    gen.save(tmp_path / "lora")
    base = AutoModelForCausalLM.from_pretrained(str(chat_llama_folder))
    peft_model = PeftModel.from_pretrained(base, str(tmp_path / "lora")).eval()
    ids = AutoTokenizer.from_pretrained(str(chat_llama_folder))("hello how are you", return_tensors="pt").input_ids
    with torch.no_grad():
        ours = gen.model.eval()(input_ids=ids).logits
        theirs = peft_model(input_ids=ids).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)


def test_a_folder_saved_with_the_old_adapter_names_still_loads(chat_llama_folder, tmp_path):
    gen = FewShotGenerator(str(chat_llama_folder), params={"learning_rate": 1e-2, "epochs": 5}, show_progress=False).fit(PAIRS)
    folder = gen.save(tmp_path / "old")
    # As fewtune wrote it before PEFT's format: adapter.safetensors + adapter.json, listed in fewtune.json.
    (folder / "adapter_model.safetensors").rename(folder / "adapter.safetensors")
    (folder / "adapter_config.json").rename(folder / "adapter.json")
    config = json.loads((folder / "fewtune.json").read_text())
    config["files"] = {{"adapter_model.safetensors": "adapter.safetensors", "adapter_config.json": "adapter.json"}
                       .get(name, name): digest for name, digest in config["files"].items()}
    config.pop("facts_sha256")  # nor had folders of then the checksum of their facts
    (folder / "fewtune.json").write_text(json.dumps(config))
    again = FewShotGenerator.load(folder)
    assert again.perplexity(PAIRS) == pytest.approx(gen.perplexity(PAIRS), rel=1e-6)


def test_merge_writes_a_standalone_model_with_the_same_outputs(chat_llama_folder, tmp_path):
    gen = FewShotGenerator(str(chat_llama_folder), params={"learning_rate": 1e-2, "epochs": 5}, show_progress=False).fit(PAIRS)
    gen.save(tmp_path / "merged", merge=True)
    assert (tmp_path / "merged" / "lm" / "model.safetensors").is_file()
    assert not (tmp_path / "merged" / "adapter_model.safetensors").exists()
    merged = FewShotGenerator.load(tmp_path / "merged")
    assert not hasattr(merged.model, "peft_config")
    assert merged.perplexity(PAIRS) == pytest.approx(gen.perplexity(PAIRS), rel=1e-4)
    assert gen.params.lora  # merging a copy left the trained model itself untouched
    assert hasattr(gen.model, "peft_config")


def test_lm_adaptation_on_raw_text_lowers_perplexity(llama_folder):
    texts = ["this movie was great", "this movie was terrible", "it was great .", "overall it was great"]
    gen = FewShotGenerator(str(llama_folder), task="lm", params=LEARN, show_progress=False)
    gen.fit(texts, eval_examples=texts)
    assert gen.evaluation_["perplexity_after"] < gen.evaluation_["perplexity_before"] / 2
    assert gen.generate("this movie", max_new_tokens=2).startswith("was")


def test_l2sp_keeps_full_fine_tuning_closer_to_the_pretrained_weights(chat_llama_folder):
    free = FewShotGenerator(str(chat_llama_folder), params={**LEARN, "epochs": 5}, show_progress=False).fit(PAIRS)
    held = FewShotGenerator(str(chat_llama_folder), params={**LEARN, "epochs": 5, "l2sp": 50.0},
                            show_progress=False).fit(PAIRS)
    assert held.train_info_["distance_from_pretrained"] < free.train_info_["distance_from_pretrained"]


def test_chat_loop_keeps_the_conversation_and_resets(trained):
    lines = iter(["hello how are you", "/reset", "what did you do today", "/exit", "never read"])
    out = []
    replies = chat_loop(trained, system=None, max_new_tokens=12, temperature=0.0, top_p=0.9, max_turns=4,
                        read_line=lambda: next(lines), write=out.append)
    assert replies == 2
    assert "".join(out) == "i am fine thanks\ni went to the park\n"


# --- input checks -----------------------------------------------------------------------------------
def test_chat_files_name_the_row_and_field_of_a_problem(tmp_path):
    good = tmp_path / "chats.jsonl"
    good.write_text("\n".join(json.dumps({"messages": c}) for c in [CHAT, CHAT[:2]]) + "\n")
    assert load_chats(good) == [CHAT, CHAT[:2]]
    bad_role = tmp_path / "bad_role.jsonl"
    bad_role.write_text(json.dumps({"messages": [{"role": "bot", "content": "hi"}]}) + "\n")
    with pytest.raises(DataError, match=r"bad_role.jsonl, line 1, column 'messages', message 0: role must be"):
        load_chats(bad_role)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("prompt,response\nhi,hello\nhow are you,\n")
    with pytest.raises(DataError, match=r"pairs.csv, line 3, response: expected non-empty text"):
        load_chats(pairs)
    with pytest.raises(DataError, match=r"no column 'messages'.*'question'"):
        load_chats(pairs, prompt_col="question")
    with pytest.raises(DataError, match="no assistant message"):
        as_chats([[{"role": "user", "content": "hi"}]])


def test_text_files_refuse_empty_input(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    with pytest.raises(DataError, match="blank.txt: no text"):
        load_texts(blank)
    texts = tmp_path / "texts.txt"
    texts.write_text("first line\n\nsecond line\n")
    assert load_texts(texts) == ["first line", "second line"]


def test_bad_settings_and_wrong_folders_are_refused(chat_llama_folder, trained, tmp_path):
    with pytest.raises(FewtuneError, match="generation: .*learning_rate must be positive.*max_tokens must be at least 8"):
        FewShotGenerator(str(chat_llama_folder), params={"max_tokens": 2, "learning_rate": 0})
    with pytest.raises(FewtuneError, match="task must be one of"):
        FewShotGenerator(str(chat_llama_folder), task="translate")
    with pytest.raises(FewtuneError, match="not fitted"):
        FewShotGenerator(str(chat_llama_folder)).generate("hi")
    trained.save(tmp_path / "gen")
    with pytest.raises(FewtuneError, match="not a classifier"):
        FewShotClassifier.load(tmp_path / "gen")
    with pytest.raises(FewtuneError, match="task 'lm' continues a text"):
        FewShotGenerator(str(chat_llama_folder), task="lm", params=LEARN, show_progress=False).fit(
            ["hello there"]).generate(CHAT[:1])


def test_a_corrupt_adapter_is_reported(chat_llama_folder, tmp_path):
    gen = FewShotGenerator(str(chat_llama_folder), params={"epochs": 1}, show_progress=False).fit(PAIRS)
    gen.save(tmp_path / "m")
    broken = tmp_path / "broken"
    shutil.copytree(tmp_path / "m", broken)
    (broken / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(FewtuneError, match="checksum mismatch"):
        FewShotGenerator.load(broken)


# --- command line -----------------------------------------------------------------------------------
def test_cli_trains_generates_and_chats(chat_llama_folder, tmp_path, capfd, monkeypatch):
    from fewtune.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"prompt": q, "response": a}) for q, a in PAIRS * 2) + "\n")
    params = [x for k, v in LEARN.items() for x in ("-p", f"{k}={v}")]
    code = main(["train", "--task", "generate", "--data", str(data), "--test", str(data), "--backbone",
                 str(chat_llama_folder), *params, "-o", str(tmp_path / "bot"), "--json", "--quiet"])
    out = capfd.readouterr().out
    assert code == 0, out
    result = json.loads(out)
    assert result["evaluation"]["perplexity_after"] < result["evaluation"]["perplexity_before"]

    assert main(["generate", str(tmp_path / "bot"), "--prompt", "hello how are you", "--prompt",
                 "do you like movies", "--max-new-tokens", "12", "--json"]) == 0
    rows = json.loads(capfd.readouterr().out)
    assert [r["response"] for r in rows] == ["i am fine thanks", "yes i love movies"]

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"what did you do today\n")))
    assert main(["chat", str(tmp_path / "bot"), "--temperature", "0", "--max-new-tokens", "12"]) == 0
    assert capfd.readouterr().out == "i went to the park\n"

    code = main(["train", "--task", "generate", "--data", str(data), "--multi-label"])
    assert code == 2 and "--multi-label applies to --task classify only" in capfd.readouterr().err


def test_builtin_chitchat_is_real_two_person_dialogue_with_a_fixed_split():
    from fewtune.generation.builtin import list_dialogue_datasets, load_dialogues

    train, test = load_dialogues("chitchat")
    listed = list_dialogue_datasets()[0]
    assert (len(train), len(test)) == (listed["n_train"], listed["n_test"]) and listed["installed"]
    assert all(c[0]["role"] == "user" and {m["role"] for m in c} == {"user", "assistant"} for c in train[:200])
    as_key = lambda chat: tuple((m["role"], m["content"]) for m in chat)  # noqa: E731
    assert not {as_key(c) for c in train} & {as_key(c) for c in test}
    with pytest.raises(DataError, match="unknown dialogue data set 'mr'"):
        load_dialogues("mr")


def test_an_interrupted_fine_tuning_resumes_to_the_uninterrupted_weights(chat_llama_folder, tmp_path, monkeypatch):
    import fewtune.generation.generator as generator

    params = {"learning_rate": 1e-2, "epochs": 3, "batch_size": 2}
    whole = FewShotGenerator(str(chat_llama_folder), params=params, seed=4, show_progress=False).fit(PAIRS)
    expected = {n: t.detach().clone() for n, t in whole.model.named_parameters() if t.requires_grad}

    checkpoint = tmp_path / "ckpt"
    real_update, calls = generator.update, []
    steps_per_epoch = -(-len(PAIRS) // 2)

    def crash_in_epoch_two(*args):
        calls.append(1)
        if len(calls) == steps_per_epoch + 1:
            raise KeyboardInterrupt  # as Ctrl-C (or a kill) would, after one finished epoch
        return real_update(*args)

    monkeypatch.setattr(generator, "update", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        FewShotGenerator(str(chat_llama_folder), params=params, seed=4, show_progress=False).fit(
            PAIRS, checkpoint=checkpoint)
    assert json.loads((checkpoint / "state.json").read_text())["epoch"] == 1
    assert not list(checkpoint.glob("*.bin")) and (checkpoint / "model.safetensors").is_file()
    calls.clear()
    monkeypatch.setattr(generator, "update", lambda *args: calls.append(1) or real_update(*args))
    resumed = FewShotGenerator(str(chat_llama_folder), params=params, seed=4, show_progress=False).fit(
        PAIRS, checkpoint=checkpoint, resume=True)
    assert len(calls) == 2 * steps_per_epoch  # only the two unfinished epochs were trained
    got = {n: t for n, t in resumed.model.named_parameters() if t.requires_grad}
    assert got.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0)
    with pytest.raises(FewtuneError, match="different run"):
        FewShotGenerator(str(chat_llama_folder), params={**params, "epochs": 4}, seed=4, show_progress=False).fit(
            PAIRS, checkpoint=checkpoint, resume=True)


def test_cli_resume_is_for_lm_training_and_a_finished_run_leaves_no_checkpoint(chat_llama_folder, tmp_path, capfd):
    from fewtune.cli import main

    data = tmp_path / "chats.csv"
    data.write_text("prompt,response\n" + "".join(f"{p},{r}\n" for p, r in PAIRS), encoding="utf-8")
    out = tmp_path / "gen"
    args = ["train", "--task", "generate", "--data", str(data), "--backbone", str(chat_llama_folder), "-o", str(out),
            "-p", "epochs=1", "-q"]
    assert main([*args, "--resume"]) == 0
    assert out.is_dir() and not (tmp_path / ".gen.checkpoint").exists()
    assert main(["train", "--data", str(data), "--label-col", "response", "--text-col", "prompt", "--resume",
                 "-q"]) == 2
    assert "--resume applies to --task generate/lm" in capfd.readouterr().err
