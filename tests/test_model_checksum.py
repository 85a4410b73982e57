"""Model files carry the CRC-32 of their tensor data (``fastinv.crc32``), written at export
and verified by the C++ loader: a changed byte is a clear error naming the file; files
without a checksum load with a warning.

Reference: zlib.crc32 of the data section, computed here from the raw bytes.
"""

from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path

import fastinv
import numpy as np
import pytest
from fastinv._warnings import FastinvUserWarning

torch = pytest.importorskip("torch")


def _split(raw: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _join(header: dict, data: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head + data


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(6, 16, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 3, 1))
    path = tmp_path_factory.mktemp("ck") / "net.safetensors"
    fastinv.export(net, path, torch.zeros(1, 6, 2, 2))
    return path


def test_export_stores_the_crc_of_the_data(model_file):
    header, data = _split(model_file.read_bytes())
    assert header["__metadata__"]["fastinv.crc32"] == f"{zlib.crc32(data):08x}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastinvUserWarning)  # no "no checksum" warning
        fastinv.load(model_file)
        shipped = ("deepem", "deepem21", "stokes_hinode", "stokes_visp", "me_init_hinode", "me_init_visp")
        for name in shipped:  # the shipped models have one too
            fastinv.load(Path(fastinv.__file__).parent / "data" / f"{name}.safetensors")


def test_every_changed_data_byte_is_an_error_naming_the_file(model_file, tmp_path):
    raw = model_file.read_bytes()
    header, data = _split(raw)
    start = len(raw) - len(data)
    rng = np.random.default_rng(1)
    bad = tmp_path / "flipped.safetensors"
    for pos in rng.choice(len(data), 40, replace=False):
        b = bytearray(raw)
        b[start + pos] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(b))
        with pytest.raises(ValueError, match="damaged") as exc:
            fastinv.load(bad)
        assert str(bad) in str(exc.value)
    from fastinv.export.serialize import read_safetensors

    with pytest.raises(ValueError, match="damaged"):  # the Python reader (update_card) checks too
        read_safetensors(bad)


def test_missing_or_malformed_checksum(model_file, tmp_path):
    header, data = _split(model_file.read_bytes())
    old = tmp_path / "old.safetensors"
    del header["__metadata__"]["fastinv.crc32"]
    old.write_bytes(_join(header, data))
    with pytest.warns(FastinvUserWarning, match="no checksum"):
        m = fastinv.load(old)
    x = np.ones((6, 1, 2), np.float32)
    np.testing.assert_array_equal(m(x), fastinv.load(model_file)(x))
    header["__metadata__"]["fastinv.crc32"] = "not-hex!"
    old.write_bytes(_join(header, data))
    with pytest.raises(ValueError, match="8 lowercase hex digits"):
        fastinv.load(old)
