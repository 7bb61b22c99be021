"""`--config FILE` and `--print-config` for the commands with many settings (train, bench).

A config file is YAML or JSON (JSON is YAML), one `name: value` per setting, named as the command's
options are (`max_test` or `max-test`). Its values become the command's defaults (the context's default_map),
so any flag given on the command line overrides them, and each override that changes a value is said in
one line. Everything wrong with the file (missing, not UTF-8, a YAML error, not a mapping, an unknown
setting, a value of the wrong type) is one line naming the file and the setting, before anything else
runs. `--print-config` prints the resolved settings as YAML and exits, as LightningCLI's
`--print_config` does; `--config` of that output runs the same thing again.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import FewtuneError
from ..storage.model_folder import SPEC_NAME

_META = "fewtune.config"  # where the loaded file waits in click's context for the command to read it
_OWN = ("config", "print_config")  # options of this mechanism, never settings in a file
# Settings a command reads from the file in a shape its options do not have (train's `params`, a mapping,
# where the flag is a repeatable KEY=VALUE): command -> key -> a check of the value (raising one line).
EXTRA_KEYS: dict[str, dict[str, Any]] = {}


def read_config(path: Path) -> dict[str, Any]:
    """The settings in `path` (a YAML/JSON file, or a model folder: its spec.yaml), keys with '_' not '-'."""
    if path.is_dir():
        if not (path / SPEC_NAME).is_file():
            raise FewtuneError(f"--config {path}: a folder without {SPEC_NAME} (only models trained by `fewtune "
                               "train` carry one)")
        path = path / SPEC_NAME
    if not path.is_file():
        raise FewtuneError(f"--config {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise FewtuneError(f"--config {path}: not UTF-8 text (byte {e.start})") from None
    import yaml  # here: only a run with --config reads YAML

    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise FewtuneError(f"--config {path}{where}: not valid YAML or JSON: {problem}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise FewtuneError(f"--config {path}: expected settings as `name: value` lines (a mapping), got a "
                           f"{type(values).__name__}")
    return {str(key).replace("-", "_"): value for key, value in values.items()}


def _settings(command: Any) -> dict[str, Any]:
    return {p.name: p for p in command.params if p.name not in _OWN}


def _check_value(ctx: typer.Context, param: Any, value: Any, where: str) -> Any:
    """`value` as the option would take it from the command line, or one line saying why not."""
    if value is None:
        return None
    if param.multiple:
        value = value if isinstance(value, list) else [value]
    elif isinstance(value, (dict, list)):
        raise FewtuneError(f"{where}: must be a single value, got {value!r}")
    is_flag = bool(getattr(param, "is_flag", False))
    items = value if isinstance(value, list) else [value]
    if is_flag and not isinstance(value, bool):
        raise FewtuneError(f"{where}: must be true or false, got {value!r}")
    if not is_flag and any(isinstance(v, bool) for v in items):  # YAML's `yes` is a bool, not a number
        raise FewtuneError(f"{where}: got {value!r}, which is true/false, not a value of this setting")
    if not is_flag and any(isinstance(v, (dict, list)) for v in items):
        raise FewtuneError(f"{where}: each value must be a single value, got {value!r}")
    try:
        runtime = getattr(param, "get_runtime_param", None)  # typer's own coercion (typer >= 0.2x)
        if runtime is not None:
            return runtime().coerce(value, param=param, ctx=ctx)
        return param.type_cast_value(ctx, value)
    except typer.BadParameter as e:  # typer's own (it vendors click)
        raise FewtuneError(f"{where}: {e.message}") from None


def load(ctx: typer.Context, param: Any, value: Optional[Path]) -> Optional[Path]:
    """The --config callback (eager, so it runs before the other options take their defaults)."""
    if value is None:
        return None
    values = read_config(value)
    settings = _settings(ctx.command)
    extra = EXTRA_KEYS.get(ctx.command.name, {})
    taken = {}  # the file's settings as their options take them: cast here, once
    for key, given in values.items():
        where = f"--config {value}: {key}"
        if key in extra:
            extra[key](given, where)
            taken[key] = given
        elif key in settings:
            taken[key] = _check_value(ctx, settings[key], given, where)
        else:
            names = sorted({*settings, *extra})
            near = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(names)}"
            raise FewtuneError(f"--config {value}: unknown setting {key!r}{hint}")
    defaults = {key: cast for key, cast in taken.items() if key in settings and cast is not None}
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[_META] = (value, taken)
    return value


Config = Annotated[Optional[Path], typer.Option(
    "--config", is_eager=True, callback=load, metavar="FILE",
    help="Read the settings from a YAML or JSON file (or a model folder's spec.yaml); flags given on the command "
         "line override it.")]
PrintConfig = Annotated[bool, typer.Option(
    "--print-config", help="Print every setting of this run as YAML (for --config) and exit without running.")]


def from_file(ctx: typer.Context) -> dict[str, Any]:
    """The settings the --config file gave, as their options take them (EXTRA_KEYS as written; empty
    without --config). Read only: it is the context's own."""
    return ctx.meta.get(_META, (None, {}))[1]


def overrides(ctx: typer.Context) -> list[str]:
    """One line per flag on the command line that replaced a different value from the --config file."""
    path, values = ctx.meta.get(_META, (None, {}))
    settings = _settings(ctx.command)
    lines = []
    for key, given in values.items():
        if key not in settings or getattr(ctx.get_parameter_source(key), "name", None) != "COMMANDLINE":
            continue
        option = settings[key]
        if _comparable(given) != _comparable(ctx.params.get(key)):
            flag = max(option.opts, key=len)
            lines.append(f"note: {flag} {_shown(ctx.params.get(key))} overrides {key}: {_shown(given)} in {path}")
    return lines


def resolved(ctx: typer.Context) -> dict[str, Any]:
    """The command's settings as it will run, in the order its options are declared."""
    return {name: ctx.params[name] for name in _settings(ctx.command) if name in ctx.params}


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)

