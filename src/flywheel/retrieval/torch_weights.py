"""Read a `pytorch_model.bin` state dict into NumPy arrays without torch and without running its pickle.

Since torch 1.6 `torch.save` writes a zip: `<name>/data.pkl` (a pickle of the state dict, in which each tensor
is a call to torch._utils._rebuild_tensor_v2 over a "persistent id" naming a storage) and `<name>/data/<key>`
(each storage's raw little-endian bytes). The unpickler here resolves only the globals such a state dict uses —
OrderedDict, the tensor/parameter rebuild functions, the typed storage classes — and maps them to NumPy; any
other global (os.system, builtins.eval, …: what a malicious pickle calls) is refused with a UserError, so no code
from the file ever runs. The legacy pre-1.6 format (not a zip) is refused too: convert the folder's weights to
safetensors (`model.save_pretrained(dir, safe_serialization=True)`).
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from flywheel.errors import UserError

_STORAGES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage": np.float64,
             "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
             "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _StorageType:
    def __init__(self, dtype: Any):
        self.dtype = dtype


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> np.ndarray:
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    span = 1 + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if all(size) else 0
    if offset + span > storage.size:
        raise ValueError("a tensor reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride], writeable=False)
    return np.array(view)  # a copy: owns its memory, C-contiguous


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(dtype) for name, dtype in _STORAGES.items()},
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str, source: Path):
        super().__init__(file)
        self.archive = archive
        self.prefix = prefix
        self.source = source
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get((module, name))
        if found is None:
            raise UserError(f"{self.source} refers to `{module}.{name}`, which a weights file never needs: "
                            "refusing to load it (a pickle can run any code)",
                            hint="use a model.safetensors from a source you trust")
        return found

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UserError(f"{self.source} holds an unexpected persistent id {str(pid)[:60]!r}",
                            hint="use a model.safetensors instead")
        dtype, key = pid[1].dtype, str(pid[2])
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            if dtype == "bfloat16":  # NumPy has no bfloat16: it is the top half of a float32
                self.storages[key] = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                self.storages[key] = np.frombuffer(raw, np.dtype(dtype).newbyteorder("<"))
        return self.storages[key]


def read_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    """name → array of a torch.save'd state dict (zip format); UserError for anything else."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a zip-format torch checkpoint (saved before torch 1.6, or not a "
                        "checkpoint): flywheel reads it without torch only in the zip format",
                        hint="save the model again with safetensors: model.save_pretrained(DIR, "
                             "safe_serialization=True)")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise UserError(f"{path} does not look like a torch checkpoint (no <name>/data.pkl inside)",
                            hint="use a model.safetensors instead")
        prefix = pickles[0][: -len("data.pkl")]
        order = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in archive.namelist() \
            else "little"
        if order != "little":
            raise UserError(f"{path} was saved on a big-endian machine", hint="use a model.safetensors instead")
        with archive.open(pickles[0]) as f:
            try:
                state = _StateDictUnpickler(f, archive, prefix, path).load()
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - a damaged or unusual file: say so, never crash
                raise UserError(f"cannot read {path}: {type(exc).__name__}: {exc}",
                                hint="use a model.safetensors instead") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of tensors",
                        hint="use a model.safetensors instead")
    return {str(k): v for k, v in state.items() if isinstance(v, np.ndarray)}
