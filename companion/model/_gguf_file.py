"""A GGUF file's header, metadata and tensor table, read straight from a memory map.

gguf.GGUFReader builds a numpy memmap view for every element of every metadata array: on a
262,144-token vocabulary (Gemma 3) that is ~790,000 views and tens of seconds before the
first tensor can be read (measured 2026-11-30: 65 s on the 2-core dev machine, under load).
This reader walks the same format (ggml's gguf.h, version 2 and 3) with `struct` and hands
out arrays as Python lists, in about a second. The gguf package still names the types
(GGMLQuantizationType, GGML_QUANT_SIZES) and dequantizes."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as QT

# GGUF metadata value types (gguf.h: enum gguf_type) -> struct format of one value
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
          7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}  # fmt: skip
_STRING, _ARRAY = 8, 9
# tensor types whose data is a plain numpy array (anything else is (..., bytes per row) uint8)
_PLAIN = {QT.F32: np.float32, QT.F16: np.float16, QT.F64: np.float64, QT.I8: np.int8, QT.I16: np.int16,
          QT.I32: np.int32, QT.I64: np.int64}  # fmt: skip


@dataclass(frozen=True)
class RawTensor:
    """One entry of the tensor table."""

    name: str
    ggml_type: QT
    dims: tuple[int, ...]  # GGUF order (innermost first), as the file stores them
    offset: int  # absolute byte offset of the data
    n_bytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy order: (rows, cols) for matrices."""
        return tuple(reversed(self.dims))


class GGUFFile:
    """A GGUF file opened read-only: `metadata` (key -> value, arrays as lists), `tensors`,
    and `data`, the whole file as a uint8 memory map."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data = np.memmap(self.path, dtype=np.uint8, mode="r")
        self._buf = memoryview(self.data)  # type: ignore[arg-type]  # zero-copy reads for struct
        self._pos = 0
        magic = bytes(self._read(4))
        if magic != b"GGUF":
            raise ValueError(f"bad magic {magic!r}")
        (self.version,) = self._unpack("<I")
        if self.version not in (2, 3):
            raise ValueError(f"GGUF version {self.version} is not supported (2 and 3 are)")
        n_tensors, n_kv = self._unpack("<QQ")
        self.metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self._str()
            (vtype,) = self._unpack("<I")
            self.metadata[key] = self._value(vtype)
        infos = []
        for _ in range(n_tensors):
            name = self._str()
            (n_dims,) = self._unpack("<I")
            dims = self._unpack(f"<{n_dims}Q")
            qtype, offset = self._unpack("<IQ")
            infos.append((name, QT(qtype), tuple(int(d) for d in dims), int(offset)))
        align = int(self.metadata.get("general.alignment", 32))
        start = -(-self._pos // align) * align
        self.tensors: list[RawTensor] = []
        for name, qtype, dims, offset in infos:
            block, type_size = GGML_QUANT_SIZES[qtype]
            n = int(np.prod(dims)) if dims else 1
            if n % block:
                raise ValueError(f"tensor {name} has {n} values, not a whole number of {qtype.name} blocks")
            self.tensors.append(RawTensor(name, qtype, dims, start + offset, n // block * type_size))

    def typed(self, t: RawTensor) -> np.ndarray:
        """gguf.GGUFReader's view of a tensor's data: the values for plain types, else
        (numpy-order rows..., bytes per row) uint8."""
        raw = self.data[t.offset : t.offset + t.n_bytes]
        dtype = _PLAIN.get(t.ggml_type)
        if dtype is not None:
            return raw.view(dtype).reshape(t.shape)
        block, type_size = GGML_QUANT_SIZES[t.ggml_type]
        shape = t.shape
        return raw.reshape(*shape[:-1], shape[-1] // block * type_size)

    # -- parsing
    def _read(self, n: int) -> memoryview:
        if self._pos + n > len(self._buf):
            raise ValueError(f"file ends at byte {len(self._buf)} inside the header (needs {self._pos + n})")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def _unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self._read(struct.calcsize(fmt)))

    def _str(self) -> str:
        (n,) = self._unpack("<Q")
        return str(self._read(n), "utf-8", errors="replace")

    def _value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self._str()
        if vtype in _SCALARS:
            (v,) = self._unpack("<" + _SCALARS[vtype])
            return v
        if vtype != _ARRAY:
            raise ValueError(f"unknown metadata value type {vtype}")
        itype, count = self._unpack("<IQ")
        if itype in _NUMPY:
            size = np.dtype(_NUMPY[itype]).itemsize
            return np.frombuffer(self._read(count * size), dtype=_NUMPY[itype]).tolist()
        return [self._value(itype) for _ in range(count)]
