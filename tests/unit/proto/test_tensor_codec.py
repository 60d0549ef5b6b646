"""Tensor messages carry little-endian row-major bytes and decode back to the same array."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from hybridrl.proto.tensor_codec import array_from_tensor, tensor_from_array
from hybridrl.proto.v1 import common_pb2


def test_float32_logprobs_encode_as_little_endian_bytes() -> None:
    tensor = tensor_from_array(np.array([-0.5, -1.25, -2.0], dtype=np.float32))
    assert tensor.dtype == common_pb2.DATA_TYPE_FLOAT32
    assert list(tensor.shape) == [3]
    assert tensor.data == struct.pack("<3f", -0.5, -1.25, -2.0)


def test_big_endian_input_is_written_little_endian() -> None:
    tensor = tensor_from_array(np.array([1.0], dtype=">f4"))
    assert tensor.dtype == common_pb2.DATA_TYPE_FLOAT32
    assert tensor.data == b"\x00\x00\x80\x3f"


def test_transposed_array_is_written_in_row_major_order_of_its_view() -> None:
    transposed = np.arange(6, dtype=np.int64).reshape(2, 3).T  # [[0, 3], [1, 4], [2, 5]]
    tensor = tensor_from_array(transposed)
    assert list(tensor.shape) == [3, 2]
    assert tensor.data == struct.pack("<6q", 0, 3, 1, 4, 2, 5)
    np.testing.assert_array_equal(array_from_tensor(tensor), transposed)


@pytest.mark.parametrize(
    ("dtype", "proto_dtype"),
    [
        (np.float16, common_pb2.DATA_TYPE_FLOAT16),
        (np.float64, common_pb2.DATA_TYPE_FLOAT64),
        (np.int32, common_pb2.DATA_TYPE_INT32),
        (np.uint8, common_pb2.DATA_TYPE_UINT8),
        (np.bool_, common_pb2.DATA_TYPE_BOOL),
    ],
)
def test_supported_dtypes_round_trip(dtype: type, proto_dtype: int) -> None:
    array: npt.NDArray[Any] = np.array([[1, 0], [0, 1]], dtype=dtype)
    tensor = common_pb2.Tensor.FromString(tensor_from_array(array).SerializeToString())
    assert tensor.dtype == proto_dtype
    decoded = array_from_tensor(tensor)
    assert decoded.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(decoded, array)


def test_scalar_has_empty_shape_and_one_element() -> None:
    tensor = tensor_from_array(np.array(7, dtype=np.int32))
    assert list(tensor.shape) == []
    assert array_from_tensor(tensor).item() == 7


def test_empty_array_round_trips() -> None:
    tensor = tensor_from_array(np.zeros((0, 4), dtype=np.float32))
    assert tensor.data == b""
    assert array_from_tensor(tensor).shape == (0, 4)


def test_decoded_array_is_a_read_only_view() -> None:
    decoded = array_from_tensor(tensor_from_array(np.array([1.5], dtype=np.float32)))
    assert not decoded.flags.writeable


def test_unsupported_numpy_dtype_is_rejected() -> None:
    with pytest.raises(ValueError, match="complex64 cannot be sent as a Tensor"):
        tensor_from_array(np.array([1 + 2j], dtype=np.complex64))


def test_unset_dtype_is_rejected() -> None:
    with pytest.raises(ValueError, match="DATA_TYPE_UNSPECIFIED cannot be decoded"):
        array_from_tensor(common_pb2.Tensor(shape=[1], data=b"\x00\x00\x00\x00"))


def test_unknown_dtype_number_is_rejected() -> None:
    tensor = common_pb2.Tensor.FromString(b"\x08\x63")  # dtype = 99, from a newer writer
    with pytest.raises(ValueError, match="dtype 99 cannot be decoded"):
        array_from_tensor(tensor)


def test_byte_count_that_does_not_match_shape_is_rejected() -> None:
    tensor = common_pb2.Tensor(dtype=common_pb2.DATA_TYPE_FLOAT32, shape=[2, 3], data=b"\x00" * 20)
    with pytest.raises(
        ValueError, match=r"20 bytes but shape \[2, 3\] of DATA_TYPE_FLOAT32 needs 24"
    ):
        array_from_tensor(tensor)


def test_bool_tensor_with_byte_other_than_zero_or_one_is_rejected() -> None:
    tensor = common_pb2.Tensor(dtype=common_pb2.DATA_TYPE_BOOL, shape=[3], data=b"\x01\x00\x02")
    with pytest.raises(ValueError, match="bytes other than 0 and 1"):
        array_from_tensor(tensor)
