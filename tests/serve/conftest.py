"""What the server's tests share: limits small enough to hit, and model folders served by name."""

from __future__ import annotations

import pytest

from fewtune import FewShotClassifier, FewShotGenerator
from fewtune.export import export_onnx
from fewtune.serve import Limits
from tests.helpers.fast import FAST_SETFIT as FAST

TEXTS = ["a great film", "wonderful acting", "loved every minute", "excellent", "an awful film", "terrible acting",
         "hated every minute", "boring"]
LABELS = ["pos"] * 4 + ["neg"] * 4
LIMITS = Limits(max_texts=8, max_text_chars=200, max_body_bytes=20_000, max_new_tokens=16, max_train_examples=20)


@pytest.fixture(scope="package")
def folders(st_folder, chat_llama_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    FewShotClassifier(str(st_folder), params=FAST, seed=0).fit(TEXTS, LABELS).save(root / "reviews")
    export_onnx(root / "reviews", root / "reviews-onnx")
    gen = FewShotGenerator(str(chat_llama_folder), params={"lora": False, "epochs": 1, "batch_size": 2},
                           show_progress=False)
    gen.fit([("hello how are you", "i am fine thanks"), ("do you like movies", "yes i love movies")])
    gen.save(root / "bot")
    return root
