"""Read TensorFlow (V2 format, "TensorBundle") checkpoints without TensorFlow.

SimCLRv2's weights (Pixel Invariance's paper models) are released only as TensorFlow
checkpoints: ``model.ckpt-N.index`` and ``model.ckpt-N.data-00000-of-00001``. Converting them
used to need TensorFlow (about 600 MB installed; the authors of Pixel Invariance ran
Separius/SimCLRv2-Pytorch's ``convert.py``). This module reads the two files directly:

* the ``.index`` file is a LevelDB-style sorted table (footer, index block, data blocks of
  prefix-compressed keys); each key is a variable name, each value a ``BundleEntryProto``
  (dtype, shape, shard, offset, size); the empty key holds the ``BundleHeaderProto``;
* the ``.data-SSSSS-of-NNNNN`` shards hold the raw little-endian tensor bytes at those offsets.

Written by hand because no maintained library does it without TensorFlow: the one pure-Python
package on PyPI (``tensorflow-checkpoint-reader``) is an unmaintained, self-declared "in
development" port. About 120 lines: a protobuf wire-format decoder for the two small messages
and the table reader. Only uncompressed tables (what TensorFlow writes for bundles) and
unpartitioned variables are supported; anything else raises a clear error. The per-tensor
crc32c is not checked (the artefact files are checked by sha256 when fetched).
``tests/test_tf_checkpoint.py`` reads a checkpoint written by TensorFlow 2.21 and compares with
TensorFlow's own outputs.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["TFCheckpoint", "TFCheckpointError"]

_MAGIC = 0xDB4775248B80FB57
#: TensorFlow DataType enum -> numpy dtype (DT_BFLOAT16 = 14 is handled through torch)
_DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}


class TFCheckpointError(ValueError):
    """The file is not a TensorFlow V2 checkpoint this reader supports."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFCheckpointError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Protobuf wire format: yield (field number, value) with ints for varint/fixed, bytes for
    length-delimited."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise TFCheckpointError(f"unsupported protobuf wire type {wire}")
        yield field, value


@dataclass(frozen=True)
class _Entry:
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    sliced: bool


def _entry(buf: bytes) -> _Entry:
    dtype, shape, shard, offset, size, sliced = 0, [], 0, 0, 0, False
    for field, value in _fields(buf):
        if field == 1:
            dtype = value
        elif field == 2:  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
            for f, dim in _fields(value):
                if f == 2:
                    shape.append(next((v for g, v in _fields(dim) if g == 1), 0))
        elif field == 3:
            shard = value
        elif field == 4:
            offset = value
        elif field == 5:
            size = value
        elif field == 7:
            sliced = True
    return _Entry(dtype, tuple(shape), shard, offset, size, sliced)


def _block(data: bytes, handle: bytes) -> list[tuple[bytes, bytes]]:
    """Decode the table block that ``handle`` (varint offset, varint size) points at."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    block = data[offset : offset + size]
    if data[offset + size : offset + size + 1] not in (b"\x00", b""):
        raise TFCheckpointError(
            "compressed index blocks are not supported (TensorFlow writes them uncompressed)"
        )
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        n_value, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos : pos + n_value]))
        pos += n_value
    return entries


class TFCheckpoint:
    """The variables of a TensorFlow V2 checkpoint, as torch tensors.

    ``path`` is the checkpoint prefix (``.../model.ckpt-250228``), its ``.index`` file, or a folder
    holding exactly one ``*.index``. ``ckpt[name]`` reads one variable (``torch.Tensor``, TF layout,
    e.g. HWIO for convolution kernels); ``ckpt.keys()``, ``ckpt.shape(name)`` and ``name in ckpt``
    inspect without reading the data.
    """

    def __init__(self, path: str | Path) -> None:
        self.prefix = self._prefix(Path(path))
        index = Path(str(self.prefix) + ".index").read_bytes()
        if len(index) < 48 or struct.unpack_from("<Q", index, len(index) - 8)[0] != _MAGIC:
            raise TFCheckpointError(
                f"{self.prefix}.index is not a TensorFlow checkpoint index (bad table magic)"
            )
        footer = index[-48:-8]
        _, pos = _varint(footer, 0)  # metaindex handle (unused)
        _, pos = _varint(footer, pos)
        self._entries: dict[str, _Entry] = {}
        header = None
        for _, handle in _block(index, footer[pos:]):
            for key, value in _block(index, handle):
                if key == b"":
                    header = dict(_fields(value))
                else:
                    self._entries[key.decode()] = _entry(value)
        if header is None:
            raise TFCheckpointError(f"{self.prefix}.index has no bundle header")
        if header.get(2, 0) != 0:
            raise TFCheckpointError("big-endian checkpoints are not supported")
        self.num_shards = int(header.get(1, 1))

    @staticmethod
    def _prefix(path: Path) -> Path:
        if path.is_dir():
            found = sorted(path.glob("*.index"))
            if len(found) != 1:
                raise TFCheckpointError(
                    f"expected exactly one *.index file in {path}, found {[p.name for p in found]}"
                )
            path = found[0]
        if path.suffix == ".index":
            path = path.with_suffix("")
        if not Path(str(path) + ".index").is_file():
            raise FileNotFoundError(
                f"no TensorFlow checkpoint at {path} (expected {path}.index and {path}.data-*)"
            )
        return path

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._get(name).shape

    def _get(self, name: str) -> _Entry:
        if name not in self._entries:
            raise KeyError(f"{name!r} is not in {self.prefix} ({len(self._entries)} variables)")
        return self._entries[name]

    def __getitem__(self, name: str) -> torch.Tensor:
        e = self._get(name)
        if e.sliced:
            raise TFCheckpointError(f"{name} is a partitioned variable; not supported")
        shard = Path(f"{self.prefix}.data-{e.shard:05d}-of-{self.num_shards:05d}")
        with open(shard, "rb") as f:
            f.seek(e.offset)
            raw = f.read(e.size)
        if len(raw) != e.size:
            raise TFCheckpointError(f"{shard} is truncated (variable {name})")
        if e.dtype == 14:  # bfloat16
            return torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).reshape(e.shape).clone()
        if e.dtype not in _DTYPES:
            raise TFCheckpointError(
                f"{name}: TensorFlow dtype enum {e.dtype} is not supported (strings, resources, "
                "...)"
            )
        return torch.from_numpy(np.frombuffer(raw, dtype=_DTYPES[e.dtype]).reshape(e.shape).copy())
