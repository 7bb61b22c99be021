"""The history rows of a wandb offline run, read back from its `.wandb` file.

wandb 0.31 reads that file only in its Go core (the Python datastore reader is gone, and `wandb.Api`
needs a server), so this reads it as written: LevelDB's log format (32 KiB blocks, a 7-byte header per
chunk: CRC, length, type) after wandb's own 7-byte file header, each record a protobuf `Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7
FULL, LAST = 1, 4


def records(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, pending, found = HEADER, b"", []
    while pos + HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # the block's tail is padding
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if kind == 0 and length == 0:
            pos += room
            continue
        pending += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (FULL, LAST):
            found.append(pending)
            pending = b""
    return found


def history(path: Path) -> list[dict]:
    """Each logged row as {key: value}, wandb's own keys (_step, _runtime, ...) included."""
    from wandb.proto import wandb_internal_pb2 as pb

    rows = []
    for raw in records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows
