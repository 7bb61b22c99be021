"""`fewtune serve`: the REST API and the page, over uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..backbones.registry import DEFAULT_ENCODER
from ..errors import FewtuneError


def serve(
    models: Annotated[Optional[list[str]], typer.Argument(help="Model folders (saved by `fewtune train` or `fewtune export`), each DIR or NAME=DIR; a bare DIR is served under its folder name.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    teach: Annotated[bool, typer.Option(help="Let the page train new models (in memory, one at a time).")] = True,
    teach_backbone: Annotated[str, typer.Option(help="Backbone the page trains on.")] = DEFAULT_ENCODER,
    max_texts: Annotated[int, typer.Option(help="Texts per /predict request.")] = 64,
    max_text_chars: Annotated[int, typer.Option(help="Characters per text.")] = 10_000,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per /generate request.")] = 256,
    threads: Annotated[Optional[int], typer.Option(help="ONNX Runtime threads per exported model (default: one per core).")] = None,
):
    """Serve models over HTTP: POST /predict, /generate, GET /health, /info, OpenAPI docs at /docs, and a page at / to try and teach."""
    import uvicorn

    from ..serve import Limits, TeachConfig, create_app

    named = {}
    for item in models or []:
        name, sep, folder = item.partition("=")
        if not sep:
            name, folder = Path(item).resolve().name, item
        if name in named:
            raise FewtuneError(f"two models named {name!r}; name them: NAME=DIR")
        named[name] = Path(folder)
    if not named and not teach:
        raise FewtuneError("nothing to serve: give a model folder, or leave --teach on")
    limits = Limits(max_texts=max_texts, max_text_chars=max_text_chars, max_new_tokens=max_new_tokens)
    app = create_app(named, limits, teach=TeachConfig(backbone=teach_backbone) if teach else False, threads=threads)
    typer.echo(f"serving {', '.join(named) or 'no model yet'} on http://{host}:{port}/ (API docs at /docs)", err=True)
    # Bounded connections and idle time: a client that opens many connections or trickles a request
    # gets 503 or a closed connection instead of tying up the server.
    uvicorn.run(app, host=host, port=port, log_level="warning", limit_concurrency=64, timeout_keep_alive=5,
                h11_max_incomplete_event_size=64 * 1024)
