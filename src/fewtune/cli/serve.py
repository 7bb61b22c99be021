"""`fewtune serve`: the REST API and the page, over uvicorn."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..backbones.catalog import DEFAULT_ENCODER
from ..errors import FewtuneError


def serve(
    models: Annotated[Optional[list[str]], typer.Argument(help="Model folders (saved by `fewtune train` or `fewtune export`), each DIR or NAME=DIR; a bare DIR is served under its folder name.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8000,
    teach: Annotated[bool, typer.Option(help="Let the page train new models (in memory, one at a time).")] = True,
    teach_backbone: Annotated[str, typer.Option(help="Backbone the page trains on.")] = DEFAULT_ENCODER,
    max_texts: Annotated[int, typer.Option(help="Texts per /predict request.")] = 64,
    max_text_chars: Annotated[int, typer.Option(help="Characters per text.")] = 10_000,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per /generate request.")] = 256,
    threads: Annotated[Optional[int], typer.Option(help="ONNX Runtime threads per exported model (default: one per core).")] = None,
):
    """Serve models over HTTP: POST /predict, /generate, GET /health, /info, OpenAPI docs at /docs, and a page at / to try and teach."""
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
    for flag, value in (("--max-texts", max_texts), ("--max-text-chars", max_text_chars),
                        ("--max-new-tokens", max_new_tokens), ("--threads", 1 if threads is None else threads)):
        if value < 1:  # a server that would refuse every request is an error now, not a surprise later
            raise FewtuneError(f"{flag} must be at least 1, got {value}")
    # The address is taken before the models load (seconds to minutes): a busy port or a mistyped host
    # is one line at once, and the sockets bound here are the ones uvicorn serves on, so no other
    # process can take the port in between.
    sockets = listen_sockets(host, port)
    try:
        port = sockets[0].getsockname()[1]  # the port --port 0 got
        _run(named, sockets, host, port, teach=teach, teach_backbone=teach_backbone, max_texts=max_texts,
             max_text_chars=max_text_chars, max_new_tokens=max_new_tokens, threads=threads)
    finally:
        for sock in sockets:
            sock.close()


def _run(named: dict, sockets: list[socket.socket], host: str, port: int, *, teach: bool, teach_backbone: str,
         max_texts: int, max_text_chars: int, max_new_tokens: int, threads: Optional[int]) -> None:
    import uvicorn

    from ..serve import Limits, TeachConfig, create_app

    limits = Limits(max_texts=max_texts, max_text_chars=max_text_chars, max_new_tokens=max_new_tokens)
    app = create_app(named, limits, teach=TeachConfig(backbone=teach_backbone) if teach else False, threads=threads)
    where = address(host, port)
    typer.echo(f"serving {', '.join(named) or 'no model yet'} on http://{where}/ (API docs at /docs)", err=True)
    # Bounded connections and idle time: a client that opens many connections or trickles a request
    # gets 503 or a closed connection instead of tying up the server.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", limit_concurrency=64,
                            timeout_keep_alive=5, h11_max_incomplete_event_size=64 * 1024)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:  # Ctrl-C while starting; once started, uvicorn shuts down on it by itself
        return
    except OSError as e:
        raise FewtuneError(f"cannot serve on {where}: {e.strerror or e}") from None
    except SystemExit:  # uvicorn exits when the app's startup fails; it has logged why
        if server.started:
            raise
    if not server.started:
        raise FewtuneError(f"the server did not start on {where} (the lines above say why)")


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_sockets(host: str, port: int) -> list[socket.socket]:
    """Sockets bound to every address `host` names (as asyncio's create_server binds them), or a
    FewtuneError that says what to change: a port out of range, a host that does not resolve or is not
    this machine's, a port in use or reserved."""
    if not 0 <= port <= 65535:
        raise FewtuneError(f"--port {port}: a port is a number from 1 to 65535 (0: any free port); the default "
                           "is 8000")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError, ValueError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        raise FewtuneError(f"--host {host!r}: not an address this machine can listen on ({reason}); use 127.0.0.1 "
                           "(this machine only) or 0.0.0.0 (every network interface)") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in dict.fromkeys(infos):
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does: TIME_WAIT is no refusal
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # every address on the one port the first got
                sockaddr = (sockaddr[0], sockets[0].getsockname()[1], *sockaddr[2:])
            try:
                sock.bind(sockaddr)
            except OSError as e:
                raise FewtuneError(_bind_refusal(e, host, sockaddr[1])) from None
        if not sockets:
            raise FewtuneError(f"--host {host!r}: names no IPv4 or IPv6 address; use 127.0.0.1 or 0.0.0.0")
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind_refusal(e: OSError, host: str, port: int) -> str:
    if e.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is in use (another server is listening there); pick another with --port, "
                "or stop the other server")
    if e.errno == errno.EADDRNOTAVAIL:
        return (f"--host {host}: not an address of this machine; use 127.0.0.1 (this machine only), 0.0.0.0 "
                "(every network interface) or one of this machine's addresses")
    if e.errno == errno.EACCES:
        return (f"port {port} on {host}: permission denied (ports below 1024 need administrator rights); pick one "
                "above 1023 with --port")
    return f"cannot listen on {address(host, port)}: {e.strerror or e}; pick another --host or --port"
