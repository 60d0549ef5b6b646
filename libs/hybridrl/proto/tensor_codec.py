"""Conversion between numpy arrays and the hybridrl.v1 ``Tensor`` message.

A ``Tensor`` is raw little-endian, row-major bytes plus a dtype and a shape. Services use
these two functions at their edges (behaviour log-probs in rollouts, samples and streamed
completions) so that the layout rule lives in one place; the core math never sees a message.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from hybridrl.proto.v1 import common_pb2

_NUMPY_DTYPES: Final[dict[common_pb2.DataType.ValueType, np.dtype[Any]]] = {
    common_pb2.DATA_TYPE_FLOAT32: np.dtype("<f4"),
    common_pb2.DATA_TYPE_FLOAT16: np.dtype("<f2"),
    common_pb2.DATA_TYPE_FLOAT64: np.dtype("<f8"),
    common_pb2.DATA_TYPE_INT32: np.dtype("<i4"),
    common_pb2.DATA_TYPE_INT64: np.dtype("<i8"),
    common_pb2.DATA_TYPE_UINT8: np.dtype("u1"),
    common_pb2.DATA_TYPE_BOOL: np.dtype("?"),
}


def _proto_dtype(dtype: np.dtype[Any]) -> common_pb2.DataType.ValueType:
    """The proto DataType for a numpy dtype of either byte order."""
    little_endian = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
    for proto_dtype, numpy_dtype in _NUMPY_DTYPES.items():
        if numpy_dtype == little_endian:
            return proto_dtype
    supported = ", ".join(str(d) for d in _NUMPY_DTYPES.values())
    raise ValueError(f"dtype {dtype} cannot be sent as a Tensor; supported: {supported}")


def _dtype_name(proto_dtype: common_pb2.DataType.ValueType) -> str:
    """The enum name of a proto dtype, or its number when this code does not know it."""
    if proto_dtype in common_pb2.DataType.values():
        return common_pb2.DataType.Name(proto_dtype)
    return str(proto_dtype)


def tensor_from_array(array: npt.NDArray[Any]) -> common_pb2.Tensor:
    """Encode ``array`` (any shape, including a 0-d scalar) as a Tensor message.

    The bytes are written little-endian in row-major order whatever the array's own layout.
    """
    proto_dtype = _proto_dtype(array.dtype)
    little_endian = np.ascontiguousarray(array, dtype=_NUMPY_DTYPES[proto_dtype])
    return common_pb2.Tensor(
        dtype=proto_dtype, shape=list(array.shape), data=little_endian.tobytes(order="C")
    )


def array_from_tensor(tensor: common_pb2.Tensor) -> npt.NDArray[Any]:
    """Decode a Tensor message into a read-only numpy array viewing the message's bytes.

    Raises ValueError when the dtype is unset or unknown, when the byte count does not match
    ``product(shape) * itemsize``, or when a bool tensor holds bytes other than 0 and 1.
    Copy the result (``.copy()``) before writing to it.
    """
    numpy_dtype = _NUMPY_DTYPES.get(tensor.dtype)
    if numpy_dtype is None:
        raise ValueError(f"Tensor dtype {_dtype_name(tensor.dtype)} cannot be decoded")
    shape = tuple(tensor.shape)
    expected_bytes = math.prod(shape) * numpy_dtype.itemsize
    if len(tensor.data) != expected_bytes:
        raise ValueError(
            f"Tensor data is {len(tensor.data)} bytes but shape {list(shape)} of "
            f"{_dtype_name(tensor.dtype)} needs {expected_bytes}"
        )
    if (
        numpy_dtype == np.dtype("?")
        and np.frombuffer(tensor.data, dtype=np.uint8).max(initial=0) > 1
    ):
        raise ValueError("Tensor of DATA_TYPE_BOOL holds bytes other than 0 and 1")
    return np.frombuffer(tensor.data, dtype=numpy_dtype).reshape(shape)
