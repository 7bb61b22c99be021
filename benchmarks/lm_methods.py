"""Label-word methods on SmolLM2 (zero-shot, prompt, icl) beside the encoder's setfit and the majority baseline, on the same k-shot splits.

The runner is encoder_methods.py's, i.e. `fewtune bench`'s (resumable JSON lines, the same splits
and test subset for every method); this script only sets issue 4's defaults. Label-word
methods use the data set's own template and label words (fewtune.data.builtin), as
`fewtune train --dataset` does, and the default causal LM; setfit uses MiniLM.

    .venv/bin/python benchmarks/lm_methods.py                      # mr, tweets × K=8,16 × seeds 0-2
    .venv/bin/python benchmarks/lm_methods.py --datasets mr --shots 8 --seeds 0 --max-test 100

Any encoder_methods.py option given here overrides the default (argparse keeps the last value).
Summarise with: python benchmarks/summarize.py --in benchmarks/results/lm_methods.jsonl
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import encoder_methods  # noqa: E402

DEFAULTS = ["--datasets", "mr,tweets", "--shots", "8,16", "--seeds", "0,1,2",
            "--methods", "majority,zero-shot,prompt,icl,setfit", "--anchor", "none", "--l2sp", "off",
            "--max-test", "300", "--out", str(HERE / "results" / "lm_methods.jsonl"),
            "--python", str(HERE.parent / ".venv" / "bin" / "python")]

if __name__ == "__main__":
    sys.exit(encoder_methods.main(DEFAULTS + sys.argv[1:]))
