"""Serialisation: the traced graph as fastinv's JSON graph plus tensors, and the safetensors
container (written by hand: fastinv does not depend on the safetensors package)."""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from .._atomic import atomic_output
from .ir import _Node

if TYPE_CHECKING:
    from .trace import Tracer

#: Version of the ``fastinv.graph`` JSON written by this exporter.
FORMAT_VERSION = 1

#: Metadata key of the CRC-32 (zlib) of the file's whole data section, 8 lowercase hex
#: digits; the C++ loader verifies it (``kChecksumKey`` in cpp/src/safetensors.hpp).
CHECKSUM_KEY = "fastinv.crc32"


def graph_json(g: Tracer) -> tuple[dict, dict[str, np.ndarray]]:
    """The fastinv graph (JSON-ready dict) and its named float32 tensors."""
    tensors: dict[str, np.ndarray] = {}
    nodes_json = []
    for nd in g.nodes:
        entry: dict[str, Any] = {"name": nd.name, "op": nd.op, "inputs": list(nd.inputs)}
        entry.update(nd.attrs)
        for role in ("weight", "bias", "scale", "shift"):
            if role not in nd.tensors:
                continue
            arr = np.ascontiguousarray(nd.tensors[role], dtype=np.float32)
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{nd.what}: its {role} has non-finite values (NaN or inf)")
            entry[role] = _store(tensors, arr, nd, role)
        nodes_json.append(entry)
    graph = {
        "format": "fastinv.graph",
        "version": FORMAT_VERSION,
        "input": {"name": g.input_name, "shape": list(g._input_shape()), "layout": g.layout},
        "nodes": nodes_json,
        "output": g.output,
    }
    return graph, tensors


def _store(tensors: dict[str, np.ndarray], arr: np.ndarray, nd: _Node, role: str) -> str:
    """Name a tensor after its module; a module used several times shares identical tensors."""
    candidates = [f"{nd.tensor_base or nd.name}.{role}", f"{nd.name}.{role}"]
    i = 1
    while True:
        for key in candidates:
            have = tensors.get(key)
            if have is None:
                tensors[key] = arr
                return key
            if have.shape == arr.shape and have.tobytes() == arr.tobytes():
                return key
        candidates = [f"{nd.name}.{role}.{i}"]
        i += 1


def write_safetensors(path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    """Write float32 ``tensors`` and ``metadata`` (plus the data checksum) atomically."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    blobs = []
    offset = 0
    crc = 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        crc = zlib.crc32(data, crc)
        offset += len(data)
    header["__metadata__"][CHECKSUM_KEY] = f"{crc:08x}"
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    head += b" " * (-len(head) % 8)  # safetensors pads with spaces so the data start is 8-aligned
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(len(head).to_bytes(8, "little"))
        f.write(head)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a float32 safetensors file (what :func:`export` writes)."""
    raw = Path(path).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    metadata = header.pop("__metadata__", {})
    data = memoryview(raw)[8 + n :]
    want = metadata.get(CHECKSUM_KEY)
    if want is not None and want != f"{zlib.crc32(data):08x}":
        raise ValueError(f"{path}: model file is damaged: its tensor data do not match {CHECKSUM_KEY} = {want}")
    tensors = {}
    for name, entry in header.items():
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name!r} is {entry['dtype']}, not F32")
        begin, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype="<f4").reshape(entry["shape"])
    return tensors, metadata
