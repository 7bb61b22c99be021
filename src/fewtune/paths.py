"""Where fewtune keeps converted backbones and other caches."""

import os
from pathlib import Path

import platformdirs


def fewtune_home() -> Path:
    """FEWTUNE_HOME if set, else the user's cache folder (e.g. ~/.cache/fewtune)."""
    env = os.environ.get("FEWTUNE_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("fewtune"))
