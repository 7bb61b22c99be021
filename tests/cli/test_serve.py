"""`fewtune serve`'s address: a bad port, a host this machine cannot listen on, a port in use are one
"error:" line and exit 2 before any model loads; the sockets checked are the ones uvicorn serves on."""

from __future__ import annotations

import socket

import pytest

import fewtune.serve
from tests.helpers.cli import run_cli


@pytest.fixture
def no_model_load(monkeypatch):
    """create_app is where models load (seconds to minutes): an address error must come before it."""
    loaded = []
    monkeypatch.setattr(fewtune.serve, "create_app", lambda *a, **k: loaded.append(a) or pytest.fail("a model loaded"))
    return loaded


def one_line_error(result, *fragments: str) -> str:
    assert result.code == 2, (result.code, result.err)
    assert "Traceback" not in result.err and len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("error: ") and "serving" not in result.err, line
    for fragment in fragments:
        assert fragment in line, line
    return line


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_a_port_out_of_range_is_one_line_before_any_model_loads(capfd, tmp_path, no_model_load, port):
    result = run_cli(capfd, "serve", tmp_path / "model", "--port", port)
    one_line_error(result, f"--port {port}", "1 to 65535")
    assert not no_model_load


@pytest.mark.parametrize("host, fragment", [("999.1.1.1", "not an address this machine can listen on"),
                                            ("no-such-host.invalid", "not an address this machine can listen on"),
                                            ("192.0.2.1", "not an address of this machine")])  # TEST-NET-1
def test_a_host_this_machine_cannot_listen_on_is_one_line(capfd, tmp_path, no_model_load, host, fragment):
    result = run_cli(capfd, "serve", tmp_path / "model", "--host", host, "--port", "0")
    one_line_error(result, host, fragment, "127.0.0.1")
    assert not no_model_load


def test_a_port_in_use_is_one_line_naming_host_and_port(capfd, tmp_path, no_model_load):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = run_cli(capfd, "serve", tmp_path / "model", "--port", port)
    one_line_error(result, f"port {port} on 127.0.0.1 is in use", "--port")
    assert not no_model_load


@pytest.fixture
def fake_uvicorn(monkeypatch):
    """uvicorn.Server.run recording the sockets it is given instead of serving forever."""
    import uvicorn

    calls = []

    def run(self, sockets=None):
        calls.append([s.getsockname() for s in sockets or []])
        self.started = outcome["started"]
        if outcome.get("raise"):
            raise outcome["raise"]

    outcome = {"started": True}
    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setattr(fewtune.serve, "create_app", lambda *a, **k: object())
    return calls, outcome


def test_the_server_runs_on_the_sockets_checked_before_loading(capfd, tmp_path, fake_uvicorn):
    calls, _ = fake_uvicorn
    result = run_cli(capfd, "serve", tmp_path / "model", "--port", "0")
    assert result.code == 0, result.err
    (bound,) = calls
    assert len(bound) == 1 and bound[0][0] == "127.0.0.1" and bound[0][1] > 0
    assert f"on http://127.0.0.1:{bound[0][1]}/" in result.err  # --port 0: the port it got
    with socket.socket() as again:  # closed after the server stops: the port is free again
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", bound[0][1]))


@pytest.mark.parametrize("failure", [{"started": False}, {"started": False, "raise": OSError(98, "Address in use")}])
def test_a_server_that_does_not_start_is_one_line_and_not_exit_0(capfd, tmp_path, fake_uvicorn, failure):
    fake_uvicorn[1].update(failure)
    result = run_cli(capfd, "serve", tmp_path / "model", "--port", "0")
    assert result.code == 2 and "Traceback" not in result.err, result.err
    errors = [line for line in result.err_lines if line.startswith("error:")]
    assert len(errors) == 1 and "127.0.0.1:" in errors[0], result.err


@pytest.mark.parametrize("flag", ["--max-texts", "--max-text-chars", "--max-new-tokens", "--threads"])
def test_a_limit_that_would_refuse_every_request_is_one_line_before_any_model_loads(capfd, tmp_path, no_model_load,
                                                                                   flag):
    result = run_cli(capfd, "serve", tmp_path / "model", "--port", "0", flag, "0")
    one_line_error(result, flag, "at least 1")
    assert not no_model_load
