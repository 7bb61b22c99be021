"""A new user's first hour of bad input, counted (issue 35).

    .venv/bin/python benchmarks/first_hour_probes.py [--work /tmp/fewtune-probes] [--quick]

Writes a CSV of 60 support tickets (billing / bug / account) into WORK, trains ONE real model on it
(`train --shots 8 --backbone minilm`) and distills ONE static student (both reused when WORK has them),
then:
1. runs 120+ CLI invocations, most bad on purpose (wrong paths and columns, undecodable, binary, empty
   files, one class, unknown method / backbone / parameter, broken model folders, bad serve addresses),
   each a fresh `python -m fewtune.cli` with HF_HUB_OFFLINE=1 and the user's own cache, recording exit
   code, seconds, stderr, tracebacks (or "a bug in fewtune"), refusals that are not exactly one "error:"
   line ("unclear") or come with more stderr ("noisy") or after SLOW seconds, and what a failed command
   left in WORK (new files, hidden .*.tmp-* folders, changed files). A serve that should refuse but
   starts (never on the default port) is killed after 20 s and counted.
2. sends 200+ HTTP requests to create_app({"model": ..., "static": ...}, teach=False) through fastapi's
   TestClient (no port): hostile cases plus seeded random fuzz (--quick: less fuzz), counting 5xx,
   exceptions raised through the client, 4xx not of the one {"error": "one line"} shape, and surprises.
3. writes benchmarks/results/first_hour_probes.json (totals, counts, every failing probe with its stderr
   line, every CLI record) and prints a summary. Exits 0 always: it is a report.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import io
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from fewtune.bench.context import run_context

RESULTS = Path(__file__).resolve().parent / "results" / "first_hour_probes.json"
ENV = {k: v for k, v in os.environ.items() if k != "FEWTUNE_HOME"} | {"HF_HUB_OFFLINE": "1"}  # the user's cache
SLOW = 10  # seconds: a refusal slower than this likely came after loading or training, not before
SUBJECTS = {  # 5 subjects x 4 endings = 20 made-up tickets a class
    "billing": ["I was charged twice", "my refund has not arrived", "the invoice shows the wrong amount",
                "the discount code was not applied", "my card was billed after I cancelled"],
    "bug": ["the app crashes when I open settings", "the export button does nothing", "the page is blank after login",
            "uploads stall at 99 percent", "the sync keeps failing on android"],
    "account": ["I forgot my password", "the two factor code never arrives", "I cannot change my email address",
                "please delete my account", "I am locked out of my account"],
}
ENDINGS = ["", " this month", ", please help", " again since Monday"]
ROWS = [[subject + end, label] for label, subjects in SUBJECTS.items() for end in ENDINGS for subject in subjects]
POOL = [f"{text} (again, {i})" for i, (text, _) in enumerate(ROWS)]


def csv_text(rows, header=("text", "label")) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    return buf.getvalue()


def write_inputs(d: Path) -> dict:
    """Every data file the probes need, good and bad: {short name: path}."""
    rows = ROWS
    files = {
        "tickets.csv": csv_text(rows), "texts.csv": csv_text([[t] for t in POOL[::7]], ("text",)),
        "pool.csv": csv_text([[t] for t in POOL], ("text",)), "header.csv": "text,label\n", "empty.csv": "",
        "one_class.csv": csv_text([[t, "billing"] for t, _ in rows]),
        "few.csv": csv_text([r for r in rows if r[1] != "account"] + [r for r in rows if r[1] == "account"][:3]),
        "dup.csv": csv_text(rows + [[rows[0][0], "bug"]]),  # the same text under two labels
        "quote.csv": csv_text(rows[:30]) + '"refund not processed,billing\n' + csv_text(rows[30:])[11:],
        "blank_text.csv": csv_text(rows[:4] + [["  ", "bug"]] + rows[4:]),
        "no_label.csv": csv_text(rows[:6] + [["where is my refund", ""]] + rows[6:]),
        "other_cols.csv": csv_text(rows, ("body", "category")), "tickets.txt": csv_text(rows),
        "unknown_labels.csv": csv_text([["parcel never arrived", "shipping"], ["wrong size sent", "shipping"]]),
        "bad.jsonl": "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows[:5]) + '{"text": "x",',
        "pred_existing.csv": "mine\n", "existing/keep.txt": "mine\n",
    }
    f = {"d": d, "existing": d / "existing"}
    for name, text in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text, encoding="utf-8")
        f[name.removesuffix(".csv")] = d / name
    for name, data in {"latin1": csv_text([["caf\u00e9 charged twice", "billing"]] + rows).encode("latin-1"),
                       "utf16": csv_text(rows).encode("utf-16"), "binary": random.Random(0).randbytes(4096)}.items():
        f[name] = d / f"{name}.csv"
        f[name].write_bytes(data)
    return f


def broken_models(d: Path, model: Path, static: Path) -> dict:
    """Model folders a user breaks: missing, empty, a file, fewtune.json cut short, weights cut short,
    weights replaced with their checksum updated to match, a static student's json cut short."""
    f = {"missing": d / "nowhere", "empty-dir": d / "empty", "a-file": d / "model.bin"}
    f["empty-dir"].mkdir(parents=True)
    f["a-file"].write_bytes(b"not a model")
    weights = sorted(p.relative_to(model) for p in model.rglob("*.safetensors"))[0]
    for name in ("truncated-json", "corrupt-weights", "sealed-corrupt"):
        f[name] = Path(shutil.copytree(model, d / name))
    cfg = (model / "fewtune.json").read_text(encoding="utf-8")
    (f["truncated-json"] / "fewtune.json").write_text(cfg[: len(cfg) // 2], encoding="utf-8")
    (f["corrupt-weights"] / weights).write_bytes((model / weights).read_bytes()[:1000])
    (f["sealed-corrupt"] / weights).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    config = json.loads(cfg)
    config.get("files", {})[str(weights)] = hashlib.sha256((f["sealed-corrupt"] / weights).read_bytes()).hexdigest()
    (f["sealed-corrupt"] / "fewtune.json").write_text(json.dumps(config), encoding="utf-8")
    f["static-broken"] = Path(shutil.copytree(static, d / "static-broken"))
    for p in f["static-broken"].glob("*.json"):
        p.write_text(p.read_text(encoding="utf-8")[:20], encoding="utf-8")
    return f


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in root.rglob("*")}


def run_cli(work: Path, name: str, args: list, expect="fail", stdin=b"", timeout=300) -> dict:
    """One fresh `python -m fewtune.cli ...`: what a user would see, and what it left behind in WORK."""
    before, started = tree(work), time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "fewtune.cli", *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=work, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the session this probe started, nothing else
        (out, err), code = proc.communicate(), None
    seconds = time.perf_counter() - started
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith("error:")]  # click's usage errors say "Error:"
    after, refused = tree(work), code not in (0, None)
    r = {"name": name, "kind": "cli", "command": "fewtune " + shlex.join(map(str, args)), "expect": expect,
         "exit": code, "seconds": round(seconds, 2), "stderr": lines[-12:],
         "traceback": "Traceback" in out + err or "a bug in fewtune" in out + err,
         "unclear": refused and len(errors) != 1,
         "leftovers": [p for p in after if p not in before] + [f"changed: {p}" for p in before if p in after
                                                               and before[p] != after[p]] if code != 0 else [],
         "error_line": errors[0] if errors else (lines[-1] if lines else "")}
    problems = ["traceback"] if r["traceback"] else []
    if code is None:
        problems.append(f"did not refuse: still running after {timeout} s" if expect == "fail" else "timed out")
    elif expect == "fail" and code == 0:
        problems.append("did not refuse: exit 0")
    elif expect == "ok" and code != 0:
        problems.append(f"failed: exit {code}")
    if r["unclear"]:
        problems.append(f"unclear: {len(errors)} 'error:' lines in {len(lines)} stderr lines")
    elif refused and len(extra := [x for x in lines if x not in errors and not x.startswith(("Usage:", "Try '"))]):
        problems.append(f"noisy: {len(extra)} more stderr line(s) besides the error: {extra[0][:150]}")
    if refused and expect == "fail" and seconds > SLOW:
        problems.append(f"slow refusal: {seconds:.0f} s")
    if r["leftovers"]:
        problems.append("leftovers: " + ", ".join(r["leftovers"][:5]))
    r["problems"] = problems
    print(f"  {'BAD' if problems else 'ok '} {seconds:6.1f}s exit={code} {name}: {r['error_line'][:110]}", flush=True)
    return r


def cli_probes(work: Path, f: dict, bad: dict, model: Path, static: Path, in_use: int) -> list:
    """(name, args[, expect='fail'|'ok'|'any'[, stdin[, timeout]]]) for every invocation."""
    out, d, tk, tx, pool = work / "out", f["d"], f["tickets"], f["texts"], f["pool"]
    mini = ["--shots", "8", "--backbone", "minilm", "-q"]

    def train(name, *extra, data=tk):
        return (name, ["train", *(["--data", data] if data else []), *mini, "-p", "max_tokens=64", "-o",
                       out / name, *extra])

    def on(command, *args, models=("empty-dir", "truncated-json")):  # a command given broken model folders
        return [(f"{command}-{k}", [command, bad[k], *args]) for k in models]

    def p(name, *args):
        return (f"predict-{name}", ["predict", model, *args])

    serve = [(f"serve-port-{n}", ["serve", model, "--port", n]) for n in ("99999", "-1", in_use)]
    serve += [("serve-host-999", ["serve", model, "--host", "999.1.1.1", "--port", "0"]),
              ("serve-max-texts-0", ["serve", model, "--port", "0", "--max-texts", "0"])]
    distill, suggest = ["--unlabeled", pool, "--student", "static", "-o", out / "s"], ["--pool", pool, "--strategy"]
    return [
        # --- train: the data file, then the settings
        train("train-missing-file", data=d / "ticket.csv"), train("train-data-is-a-folder", data=d),
        train("train-wrong-text-col", "--text-col", "body"), train("train-wrong-label-col", "--label-col", "category"),
        *[train(f"train-{k}", data=f[k]) for k in ("latin1", "utf16", "binary", "empty", "header", "one_class", "few",
                                                   "quote", "blank_text", "no_label", "tickets.txt", "bad.jsonl")],
        train("train-shots-50", "--shots", "50"), train("train-unknown-encoding", "--encoding", "klingon-8"),
        train("train-no-data", data=None), train("train-data-and-dataset", "--dataset", "mr"),
        train("train-unknown-dataset", "--dataset", "nosuchset", data=None),
        (*train("train-same-text-two-labels", data=f["dup"]), "any"),  # refused, or trained with a warning
        train("train-unknown-method", "--method", "zzz"), train("train-unknown-backbone", "--backbone", "nosuchmodel"),
        train("train-unknown-param", "-p", "bogus=1"), train("train-param-wrong-type", "-p", "steps=many"),
        train("train-param-not-key-value", "-p", "steps"), train("train-unknown-posterior", "--posterior", "gaussian"),
        train("train-unknown-calibrate", "--calibrate", "platt"), train("train-unknown-task", "--task", "summarize"),
        train("train-unknown-select", "--select", "grid"),
        train("train-prior-negative", "--class-prior", "billing=-1,bug=1,account=1"),
        train("train-prior-garbage", "--class-prior", "mostly billing"),
        train("train-prior-unknown-class", "--class-prior", "refund=1,bug=1,account=1"),
        train("train-shots-0", "--shots", "0"), train("train-shots-minus-1", "--shots", "-1"),
        train("train-shots-many", "--shots", "many"), train("train-test-missing", "--test", d / "test.csv"),
        train("train-test-other-cols", "--test", f["other_cols"]),
        ("train-output-exists", ["train", "--data", tk, *mini, "-o", model]),
        ("train-output-under-a-file", ["train", "--data", tk, *mini, "-o", tk / "model"]),
        ("train-overwrite-non-model", ["train", "--data", tk, *mini, "-o", f["existing"], "--overwrite"]),
        ("train-bogus-option", ["train", "--bogus"]), ("unknown-command", ["trian", "--data", tk]),
        # --- predict
        (*p("good", tx, "-o", out / "pred.csv", "-q"), "ok"), ("predict-static", ["predict", static, tx, "-q"], "ok"),
        ("predict-static-emoji", ["predict", static, "-", "-q"], "ok", "🔥🔥🔥\n😀\n".encode()),
        p("missing-input", d / "new.csv"), p("wrong-text-col", tx, "--text-col", "ticket"),
        *[p(k, f[k]) for k in ("latin1", "binary", "utf16", "empty")],
        p("output-under-a-file", tx, "-o", tk / "x.csv"), p("output-is-a-folder", tx, "-o", f["existing"]),
        p("output-exists", tx, "-o", f["pred_existing"]), p("format-xml", tx, "--format", "xml"),
        p("prior-unknown-class", tx, "--class-prior", "refund=1"), p("prior-garbage", tx, "--class-prior", "{not json"),
        p("prior-negative", tx, "--class-prior", "billing=-1,bug=1,account=1"),
        p("abstain-1.5", tx, "--abstain-below", "1.5"), p("abstain-negative", tx, "--abstain-below", "-0.1"),
        (*p("empty-stdin"), "fail", b"\n\n"), (*p("latin1-stdin"), "fail", b"ok\ncaf\xe9 charged\n"),
        p("device-tpu", tx, "--device", "tpu"), ("predict-no-model", ["predict"]),
        *on("predict", tx, models=bad),
        # --- evaluate, export, distill, suggest, generate
        ("evaluate-no-data", ["evaluate", model]), ("evaluate-missing-data", ["evaluate", model, "--data", d / "t"]),
        ("evaluate-other-cols", ["evaluate", model, "--data", f["other_cols"]]),
        ("evaluate-unknown-labels", ["evaluate", model, "--data", f["unknown_labels"]]),
        ("evaluate-max-test-minus-1", ["evaluate", model, "--data", tk, "--max-test", "-1"]),
        ("evaluate-static", ["evaluate", static, "--data", tk, "-q"], "ok"), *on("evaluate", "--data", tk),
        ("export-static-student", ["export", static]), ("export-output-exists", ["export", model, "-o", f["existing"]]),
        ("export-output-under-a-file", ["export", model, "-o", tk / "onnx"]),
        ("export-format-tflite", ["export", model, "--format", "tflite", "-o", out / "x"]),
        ("export-vocabulary-some", ["export", model, "--vocabulary", "some", "-o", out / "x"]),
        *on("export", "-o", out / "x", models=("empty-dir", "a-file", "truncated-json", "corrupt-weights")),
        ("distill-missing-pool", ["distill", model, "--unlabeled", d / "pool2.csv", "-o", out / "s", "-q"]),
        ("distill-small-pool", ["distill", model, "--unlabeled", tx, "--student", "static", "-o", out / "s", "-q"]),
        ("distill-pool-wrong-col", ["distill", model, *distill, "--text-col", "ticket"]),
        ("distill-output-exists", ["distill", model, *distill[:-1], static, "-q"]),
        ("distill-output-under-a-file", ["distill", model, "--unlabeled", pool, "-o", tk / "s", "-q"]),
        ("distill-unknown-student", ["distill", model, "--unlabeled", pool, "--student", "tiny", "-o", out / "s"]),
        ("distill-static-teacher", ["distill", static, *distill[:-1], out / "s2", "-q"], "ok"),
        *on("distill", *distill, models=("empty-dir", "a-file", "truncated-json", "corrupt-weights")),
        ("suggest-default-bald", ["suggest", model, "--pool", pool]),
        ("suggest-n-0", ["suggest", model, *suggest, "entropy", "-n", "0"]),
        ("suggest-unknown-strategy", ["suggest", model, *suggest, "random-ish"]),
        ("suggest-missing-pool", ["suggest", model, "--pool", d / "p.csv", "--strategy", "entropy"]),
        *on("suggest", *suggest, "entropy"),
        ("generate-a-classifier", ["generate", model, "--prompt", "hi"]),
        ("generate-static", ["generate", static, "--prompt", "hi"]),
        *on("generate", "--prompt", "hi", models=("missing", "empty-dir", "a-file", "truncated-json")),
        # --- serve, never on the default port: a serve that should refuse but starts is killed after 20 s
        *[(name, [*args, "--no-teach"], "fail", b"", 20) for name, args in serve + on("serve", "--port", "0",
                                                                                        models=bad)],
    ]


HTTP_OK = {200, 400, 403, 404, 405, 409, 413, 415, 422}  # anything else (a 5xx above all) is a problem


def http_cases(rng: random.Random, fuzz: int) -> list:
    """(name, method, path, body: bytes or a JSON value, headers, expected status class '2'/'4'/None)."""
    J = {"content-type": "application/json"}
    good = {"model": "model", "texts": ["I was charged twice", "the app crashes"]}
    body = json.dumps(good).encode()

    def post(name, value, want=None, path="/predict", headers=J):
        return (name, "POST", path, value, headers, want)

    C = [post("good-model", good, "2"), post("good-static", {**good, "model": "static"}, "2"),
         post("emoji-static", {"model": "static", "texts": ["🔥🔥🔥", "😀"]}, "2"),
         post("emoji-static-abstain", {"model": "static", "texts": ["🔥"], "abstain_below": 0.6}, "2"),
         post("no-model-two-served", {"texts": ["hi"]}, "4"), post("unknown-model", {**good, "model": "nope"}, "4"),
         post("traversal-model", {**good, "model": "../model"}, "4"), post("empty-texts", {**good, "texts": []}, "4"),
         post("too-many-texts", {**good, "texts": ["x"] * 65}, "4"),
         post("too-long-text", {**good, "texts": ["x" * 10_001]}, "4"),
         post("body-too-big", b'{"texts": ["' + b"x" * 4_100_000 + b'"]}', "4"),
         post("empty-string-text", {**good, "texts": [""]}), post("lone-surrogate", {**good, "texts": ["\ud800"]}, "4"),
         post("pairs-mismatch", {**good, "text_pairs": ["a"]}, "4"),
         post("pairs-to-single-model", {**good, "text_pairs": ["a", "b"]}),
         post("missing-texts", {"model": "model"}, "4"), post("empty-object", {}, "4"),
         post("generate-on-classifier", {"model": "model", "prompt": "hi"}, "4", "/generate"),
         post("generate-none-served", {"prompt": "hi"}, "4", "/generate"),
         post("train-teach-off", {"texts": ["a", "b"], "labels": ["x", "y"]}, "4", "/train"),
         post("POST-health", body, "4", "/health"),
         post("gzip-lie", body, None, "/predict", {**J, "content-encoding": "gzip"}),
         post("abstain-label-int", {**good, "abstain_label": 5}, "4"),
         post("abstain-null", {**good, "abstain_below": None}, "2")]
    C += [(f"GET{path}", "GET", path, None, {}, want) for path, want in [
        ("/train/nojob", "4"), ("/info", "2"), ("/info/model", "2"), ("/info/nope", "4"), ("/health", "2"), ("/", "2"),
        ("/page/..%2fapp.py", "4"), ("/predictions", "4"), ("/predict", "4"), ("/generate", "4"), ("/train", "4")]]
    C += [(f"{m}/predict", m, "/predict", None, {}, "4") for m in ("PUT", "DELETE", "PATCH")]
    C += [post(f"abstain-{v!r}", {**good, "abstain_below": v}, "4") for v in (1.5, -0.1, "high", True, [0.5], 1e400)]
    C += [post(f"texts-{v!r}", {**good, "texts": v}, "4")
          for v in ("I was charged", 5, [1, 2], [None], {"a": 1}, [["a"]], None)]
    C += [post(f"model-{v!r}", {**good, "model": v}, "4") for v in (5, [], {"x": 1})]
    raw = {"not-json": b'{"texts": [1,', "unquoted-keys": b'{texts: ["a"]}', "empty-body": b"", "null": b"null",
           "list": b"[]", "string": b'"hi"', "number": b"123", "trailing-garbage": b'{"texts": ["a"]} x',
           "latin1-bytes": b'{"texts": ["caf\xe9"]}', "invalid-utf8-tail": b'{"texts": ["a"]}\xff',
           "utf16-body": json.dumps(good).encode("utf-16"), "bom-body": b"\xef\xbb\xbf" + body,
           "nan": b'{"texts": ["a"], "abstain_below": NaN}', "infinity": b'{"texts": ["a"], "abstain_below": Infinity}',
           "digits-5000": b'{"texts": ["a"], "abstain_below": ' + b"7" * 5000 + b"}",
           "digits-in-texts": b'{"texts": [' + b"9" * 5000 + b"]}", "deep-arrays": b"[" * 100_000 + b"]" * 100_000,
           "deep-objects": b'{"texts": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
           "duplicate-keys": b'{"texts": ["a"], "texts": 5}', "nul": b'{"model": "model", "texts": ["a\\u0000b"]}'}
    C += [post(f"{k}{path}", v, None, path) for path in ("/predict", "/generate", "/train") for k, v in raw.items()]
    C += [post(f"content-type-{ct}", body, None, "/predict", {"content-type": ct} if ct else {}) for ct in
          ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/xml", None)]

    def rand_json(depth=0):  # a random JSON value, often shaped like a /predict body
        text = "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x2FFF), rng.randrange(0x1F300,
                       0x1F64F)])) for _ in range(rng.randrange(30)))
        kind = rng.randrange(8 if depth < 3 else 5)
        if kind < 5:
            return [None, kind == 1, rng.randint(-10**6, 10**6), rng.uniform(-2, 2), text][kind]
        items = [rand_json(depth + 1) for _ in range(rng.randrange(5))]
        keys = [rng.choice(["texts", "model", "abstain_below", "text_pairs", "x"]) for _ in items]
        return [items, dict(zip(keys, items)), {"model": rng.choice(["model", "static"]), "texts": items}][kind - 5]

    for i in range(fuzz):  # random bytes, random JSON, a valid body with a few bytes flipped / dropped / inserted
        kind = ("bytes", "json", "mutated")[i % 3]
        if kind == "bytes":
            b = rng.randbytes(rng.randrange(2000))
        elif kind == "json":
            b = json.dumps(rand_json()).encode()
        else:
            b = bytearray(json.dumps({"model": rng.choice(["model", "static"]), "texts": rng.sample(POOL, 3)}).encode())
            for _ in range(rng.randrange(1, 4)):
                at, byte = rng.randrange(len(b)), rng.randrange(256)
                b[at:at + 1] = rng.choice([bytes([byte]), b"", bytes([byte, b[at]])])
            b = bytes(b)
        C.append(post(f"fuzz-{i}-{kind}", b, None, rng.choice(["/predict", "/predict", "/generate", "/train"])))
    return C


def check_answer(name: str, resp, want) -> list:
    """What is wrong with one answer: a 5xx, a 4xx not of the {"error": "one line"} shape, a surprise."""
    code, problems = resp.status_code, []
    try:
        payload = resp.json()
    except ValueError:
        payload = None
    msg = payload.get("error") if isinstance(payload, dict) else None
    if code not in HTTP_OK:
        problems.append(f"5xx: {code}" if code >= 500 else f"unexpected status {code}")
    if code >= 400 and not (isinstance(msg, str) and msg and "\n" not in msg and set(payload) <= {"error", "detail"}):
        problems.append("not the {'error': ...} shape")
    if want and str(code)[0] != want:
        problems.append(f"expected {want}xx, got {code}")
    detail = (payload.get("detail") or [{}])[0] if isinstance(payload, dict) else {}
    # A whole body that is not a JSON object: the one line must say what the body should be. The `detail`
    # list beside it is FastAPI's own (pydantic's words, for clients that read it) and is not judged.
    if (code == 422 and detail.get("loc") == ["body"] and not detail.get("type", "").startswith(("json", "body"))
            and "JSON object" not in (msg or "")):
        problems.append("unclear: pydantic's words for the whole body (no JSON object? wrong content-type?)")
    if name.startswith("emoji") and code == 200 and not all(r.get("unknown_text") for r in payload["predictions"]):
        problems.append("an emoji-only text labeled as if the student could read it")
    return problems


def run_http(model: Path, static: Path, fuzz: int) -> list:
    from fastapi.testclient import TestClient

    from fewtune.serve import create_app

    results = []
    with TestClient(create_app({"model": model, "static": static}, teach=False)) as client:
        for name, method, path, body, headers, want in http_cases(random.Random(35), fuzz):
            content = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
            r = {"name": name, "kind": "http", "command": f"{method} {path} {(content or b'')[:80]!r}",
                 "status": None, "error_line": ""}
            try:
                resp = client.request(method, path, content=content, headers=headers)
            except Exception as e:  # noqa: BLE001 - raised through the client: what this counts
                r["problems"] = [f"exception through the client: {type(e).__name__}: {e}"[:300]]
            else:
                r["status"], r["problems"] = resp.status_code, check_answer(name, resp, want)
                r["error_line"] = resp.text[:200] if resp.status_code >= 400 or r["problems"] else ""
            results.append(r)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fewtune-probes"))
    ap.add_argument("--quick", action="store_true", help="fewer random HTTP fuzz cases (90 instead of 200)")
    args = ap.parse_args()
    work, started, cli = args.work.resolve(), time.time(), []
    model, static = work / "model", work / "static"
    for sub in ("inputs", "out"):  # only what this script made; the model and the student are kept
        shutil.rmtree(work / sub, ignore_errors=True)
    (work / "out").mkdir(parents=True)
    files = write_inputs(work / "inputs")
    print("setup: one model, one static student (reused when WORK has them)", flush=True)
    if not (model / "fewtune.json").is_file():
        shutil.rmtree(model, ignore_errors=True)
        cli.append(run_cli(work, "setup-train", ["train", "--data", files["tickets"], "--shots", "8", "--backbone",
                                                 "minilm", "-p", "max_tokens=64", "-o", model, "-q"], "ok",
                           timeout=1800))
    if (model / "fewtune.json").is_file() and not (static / "fewtune-static.json").is_file():
        shutil.rmtree(static, ignore_errors=True)
        cli.append(run_cli(work, "setup-distill", ["distill", model, "--unlabeled", files["pool"], "--student",
                                                   "static", "-o", static, "-q"], "ok", timeout=1800))
    if not (static / "fewtune-static.json").is_file():
        print("setup failed; see the report", flush=True)
        return write_report(args, work, started, cli, [])
    bad = broken_models(work / "inputs" / "models", model, static)
    with socket.socket() as taken:  # a port in use, for `serve --port`
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        probes = cli_probes(work, files, bad, model, static, taken.getsockname()[1])
        print(f"CLI: {len(probes)} invocations", flush=True)
        cli += [run_cli(work, name, cmd, *rest) for name, cmd, *rest in probes]
    print("HTTP: TestClient", flush=True)
    return write_report(args, work, started, cli, run_http(model, static, 90 if args.quick else 200))


def write_report(args, work: Path, started: float, cli: list, http: list) -> int:
    def count(rows, *prefixes):
        return sum(any(p.startswith(prefixes) for p in r["problems"]) for r in rows)

    counts = {"tracebacks": count(cli, "traceback"), "unclear_messages": count(cli, "unclear"),
              "leftovers": count(cli, "leftovers"), "did_not_refuse": count(cli, "did not refuse"),
              "good_commands_failed": count(cli, "failed", "timed out"), "noisy_refusals": count(cli, "noisy"),
              "slow_refusals": count(cli, "slow"), "http_5xx": count(http, "5xx"),
              "http_exceptions": count(http, "exception"), "http_bad_shape": count(http, "not the"),
              "http_unclear": count(http, "unclear"),
              "http_unexpected_status": count(http, "expected", "unexpected", "an emoji")}
    failing = [{"name": r["name"], "command": r["command"], "what": r["problems"], "stderr_line": r["error_line"],
                "exit": r.get("exit", r.get("status"))} for r in cli + http if r["problems"]]
    report = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              **run_context("fewtune", "torch", "fastapi"), "load_average": os.getloadavg(),
              "args": {"work": str(work), "quick": args.quick}, "seconds": round(time.time() - started, 1),
              "totals": {"cli_invocations": len(cli), "http_requests": len(http)}, "counts": counts,
              "failing": failing, "cli": cli, "http": [{k: r[k] for k in ("name", "status", "error_line")}
                                                       for r in http]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\n{'what':<26}{'count':>7}")
    for key, value in {**report["totals"], **counts}.items():
        print(f"{key:<26}{value:>7}")
    print(f"\n{len(failing)} failing probes ({report['seconds']:.0f} s; all in {RESULTS}):")
    for p in failing:
        print(f"  {p['name']}: {'; '.join(p['what'])}\n      {p['command'][:150]}\n      -> {p['stderr_line'][:220]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
