"""The few ONNX protobuf messages a BERT graph needs (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto, ValueInfoProto), written by hand in the protobuf wire format, so a graph can be built at run time
with onnxruntime alone (the `onnx` package is a development tool, not part of the `local` extra).

Fields are written in field-number order, proto2 style (repeated scalars unpacked), exactly as
`onnx.helper` + `SerializeToString(deterministic=True)` write them: tests/test_retrieval_onnx.py checks that
the shipped MiniLM graph comes out byte for byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

FLOAT, UINT8, INT32, INT64, FLOAT16 = 1, 2, 6, 7, 10
_NP_TYPES = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UINT8, np.dtype(np.int32): INT32,
             np.dtype(np.int64): INT64, np.dtype(np.float16): FLOAT16}
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 two's complement, as protobuf writes negative int32/int64
    out = bytearray()
    while True:
        bits = n & 0x7F
        n >>= 7
        if n:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int(field: int, value: int) -> bytes:
    return _tag(field, 0) + _varint(value)


def _bytes(field: int, payload: bytes) -> bytes:
    return _tag(field, 2) + _varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode("utf-8"))


def attribute(name: str, value: float | Sequence[int]) -> bytes:
    if isinstance(value, int):  # bool is an int too
        body = _str(1, name) + _int(3, int(value)) + _int(20, _ATTR_INT)
    elif isinstance(value, float):
        body = _str(1, name) + _tag(2, 5) + struct.pack("<f", value) + _int(20, _ATTR_FLOAT)
    else:
        body = _str(1, name) + b"".join(_int(8, int(v)) for v in value) + _int(20, _ATTR_INTS)
    return body


def node(op_type: str, inputs: Sequence[str], outputs: Sequence[str], name: str, domain: str | None = None,
         **attrs: float | Sequence[int]) -> bytes:
    """A NodeProto; attributes sorted by name, as onnx.helper.make_node writes them."""
    body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    body += _str(3, name) + _str(4, op_type)
    body += b"".join(_bytes(5, attribute(k, v)) for k, v in sorted(attrs.items()))
    if domain is not None:
        body += _str(7, domain)
    return body


def tensor(name: str, array: np.ndarray) -> bytes:
    """A TensorProto holding `array` (raw little-endian data), as onnx.numpy_helper.from_array writes it."""
    array = np.asarray(array)
    data_type = _NP_TYPES[array.dtype]
    body = b"".join(_int(1, d) for d in array.shape) + _int(2, data_type) + _str(8, name)
    return body + _bytes(9, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())


def external_tensor(name: str, data_type: int, dims: Sequence[int], location: str, offset: int, length: int
                    ) -> bytes:
    """A TensorProto whose data stays in another file (`location`, next to the graph): ONNX external data."""
    body = b"".join(_int(1, d) for d in dims) + _int(2, data_type) + _str(8, name)
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        body += _bytes(13, _str(1, key) + _str(2, value))
    return body + _int(14, 1)  # data_location = EXTERNAL


def value_info(name: str, elem_type: int, shape: Sequence[int | str]) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def model(nodes: Sequence[bytes], name: str, initializers: Sequence[bytes], inputs: Sequence[bytes],
          outputs: Sequence[bytes], opsets: Sequence[tuple[str, int]], producer: str, ir_version: int) -> bytes:
    graph = b"".join(_bytes(1, n) for n in nodes) + _str(2, name)
    graph += b"".join(_bytes(5, t) for t in initializers)
    graph += b"".join(_bytes(11, i) for i in inputs) + b"".join(_bytes(12, o) for o in outputs)
    body = _int(1, ir_version) + _str(2, producer) + _bytes(7, graph)
    return body + b"".join(_bytes(8, _str(1, domain) + _int(2, version)) for domain, version in opsets)
