"""What a model folder's checksums catch, and what a signature adds.

Every folder's JSON (fewtune.json, an export's manifest) lists the sha256 of each file and, since
format facts_sha256, the sha256 of its own facts: classes, method, parameters, the file list. Loading
checks both, which catches corruption, truncation and a careless edit (a class renamed by hand). It
does not catch deliberate tampering: whoever edits the folder can recompute every hash.

A signature does. With FEWTUNE_SIGN_KEY naming a file that holds a secret key, saving adds an
HMAC-SHA256 of the facts (which include every file's hash), and loading refuses a folder whose
signature is missing or does not match. Without the key nobody can make a signature that matches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

from ..errors import ModelFolderError

SIGN_KEY_ENV = "FEWTUNE_SIGN_KEY"
SEAL_KEYS = ("facts_sha256", "signature")


def facts_digest(facts: dict[str, Any]) -> str:
    """sha256 of the JSON facts, their seal left out, in one canonical spelling (sorted keys, no spaces)."""
    body = {k: v for k, v in facts.items() if k not in SEAL_KEYS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                                     default=str).encode("utf-8")).hexdigest()


def signing_key() -> bytes | None:
    """The secret in the file FEWTUNE_SIGN_KEY names, or None when it is not set."""
    where = os.environ.get(SIGN_KEY_ENV)
    if not where:
        return None
    path = Path(where)
    try:
        key = path.read_bytes().strip()
    except OSError as e:
        raise ModelFolderError(f"{SIGN_KEY_ENV}={where}: cannot read the signing key ({e.strerror})") from None
    if len(key) < 16:
        raise ModelFolderError(f"{SIGN_KEY_ENV}={where}: a signing key needs at least 16 bytes")
    return key


def seal(facts: dict[str, Any]) -> dict[str, Any]:
    """`facts` with facts_sha256 and, when a signing key is set, its HMAC-SHA256 signature."""
    digest = facts_digest(facts)
    sealed = {**{k: v for k, v in facts.items() if k not in SEAL_KEYS}, "facts_sha256": digest}
    key = signing_key()
    if key is not None:
        sealed["signature"] = {"alg": "hmac-sha256", "value": hmac.new(key, digest.encode(), "sha256").hexdigest()}
    return sealed


def check_seal(facts: dict[str, Any], file: Path) -> None:
    """Refuse facts edited since they were saved and, with a signing key set, an unsigned or wrongly signed
    folder. Folders saved before facts_sha256 existed have none to check (unless a key is set)."""
    stored = facts.get("facts_sha256")
    digest = facts_digest(facts)
    if stored is not None and stored != digest:
        raise ModelFolderError(f"{file}: edited since it was saved (its classes, method, parameters or file "
                               "list no longer match facts_sha256)")
    key = signing_key()
    if key is None:
        return
    signature = facts.get("signature")
    if not isinstance(signature, dict) or "value" not in signature:
        raise ModelFolderError(f"{file}: not signed, and {SIGN_KEY_ENV} is set: refusing an unsigned model")
    expected = hmac.new(key, digest.encode(), "sha256").hexdigest()
    if not hmac.compare_digest(str(signature["value"]), expected):
        raise ModelFolderError(f"{file}: the signature does not match: the folder was changed after it was "
                               f"signed, or signed with another key")
