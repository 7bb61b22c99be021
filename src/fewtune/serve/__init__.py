"""Serving: a REST API over saved and exported models, and a page to try them and teach new ones.

    from fewtune.serve import create_app
    app = create_app({"reviews": "my-model"})   # FastAPI; `fewtune serve my-model` runs it with uvicorn

The app is imported on first use, so the command line's `--help` does not import FastAPI (the optional
[serve] extra); TeachConfig needs none of it.
"""

from .teach import TeachConfig

__all__ = ["Limits", "TeachConfig", "create_app"]


def __getattr__(name: str):
    if name in ("Limits", "create_app"):
        from . import app  # why: FastAPI, the optional [serve] extra, which `import fewtune.serve` must not need

        return getattr(app, name)
    raise AttributeError(f"module 'fewtune.serve' has no attribute {name!r}")
