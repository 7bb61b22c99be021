"""`python -m fewtune.cli ...` (what `accelerate launch -m fewtune.cli pretrain ...` runs)."""

import sys

from . import main

sys.exit(main())
