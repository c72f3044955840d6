"""tn.save / tn.load: exact round trips, refusal of unsafe or damaged files, atomic writes."""
import io
import json
import math
import os
import pickle
import zipfile

import numpy as np
import pytest

import tinynn as tn
from tinynn import optim
from tinynn.serialization import CheckpointError, load, save
from tinynn.tensor import Tensor

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.bool_, np.complex64]


def sample_object():
    rng = np.random.default_rng(1)
    return {
        "weights": {f"w_{np.dtype(d).name}": Tensor((rng.standard_normal((3, 2)) * 10).astype(d)) for d in DTYPES},
        "scalar_tensor": Tensor(np.array(2.5, dtype=np.float32)),
        "empty": Tensor(np.zeros((0, 3), dtype=np.float32)),
        "transposed": np.arange(12.0).reshape(3, 4).T,  # not C-contiguous
        "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        "numpy_scalars": [np.float32(1.5), np.float64(2.5), np.int64(-3), np.bool_(True), np.complex128(1 - 2j)],
        "ints": [0, -1, 2 ** 70, True, False],
        "floats": [0.1, -0.0, 1e-300, math.inf, -math.inf, 3.0],
        "strings": ["", "hello", "ünïcødé ✓", '{"type": "dict"}'],
        "none": None,
        "tuple": (1, 2.0, "three", (None,)),
        "nested": [[[]], {}, [{"a": [1, {"b": (2,)}]}]],
        0: "int key",
        1.5: "float key",
        True: "bool key",
        None: "None key",
        ("conv", 1): "tuple key",
        "type": {"type": "tensor", "key": "arr_0"},  # user data that looks like our own tags
    }


def assert_same(a, b, where="obj"):
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, Tensor):
        assert b.device == tn.device("cpu")
        assert a.requires_grad == b.requires_grad, where
        assert_same(a.data, b.data, where)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a == b, where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert type(key) is type(next(k for k in b if k == key and type(k) is type(key)))
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b, where
        if isinstance(a, float):
            assert math.copysign(1.0, a) == math.copysign(1.0, b), where


def test_round_trip_of_every_type(tmp_path):
    obj = sample_object()
    path = tmp_path / "checkpoint.pt"
    save(obj, path)
    loaded = load(path)
    assert_same(obj, loaded)
    assert loaded[0] == "int key" and loaded[True] == "bool key" and loaded[1.5] == "float key"
    loaded["weights"]["w_float32"].data[0, 0] = 1.0  # loaded arrays are ordinary writable arrays


def test_numpy_strings_come_back_as_str(tmp_path):
    save([np.str_("numpy string")], tmp_path / "c")
    (value,) = load(tmp_path / "c")
    assert type(value) is str and value == "numpy string"


def test_nan_and_requires_grad(tmp_path):
    obj = {"nan": math.nan, "param": Tensor(np.ones(3), requires_grad=True), "plain": Tensor(np.ones(2))}
    save(obj, tmp_path / "c")
    loaded = load(tmp_path / "c")
    assert math.isnan(loaded["nan"])
    assert loaded["param"].requires_grad and not loaded["plain"].requires_grad


def test_path_is_used_exactly_and_no_temporary_files_remain(tmp_path):
    for name in ("model.pt", "no_suffix", "weights.npz"):
        save({"x": np.ones(2)}, tmp_path / name)
        save({"x": np.zeros(2)}, str(tmp_path / name))  # overwrite, str path
    assert sorted(os.listdir(tmp_path)) == ["model.pt", "no_suffix", "weights.npz"]
    np.testing.assert_array_equal(load(tmp_path / "model.pt")["x"], np.zeros(2))


def test_file_objects(tmp_path):
    buffer = io.BytesIO()
    save([Tensor(np.arange(3)), "x"], buffer)
    buffer.seek(0)
    loaded = load(buffer)
    np.testing.assert_array_equal(loaded[0].data, np.arange(3))
    assert loaded[1] == "x"


def test_file_is_a_plain_npz(tmp_path):
    save({"w": np.arange(4.0)}, tmp_path / "c")
    with np.load(tmp_path / "c", allow_pickle=False) as npz:
        structure = json.loads(npz["__tinynn__"].tobytes().decode())
        assert structure["format"] == "tinynn.checkpoint"
        np.testing.assert_array_equal(npz["arr_0"], np.arange(4.0))


@pytest.mark.parametrize("bad", [lambda: None, {1, 2}, object(), np.array([1, "a"], dtype=object),
                                 {"k": [b"bytes"]}, {frozenset(): 1}])
def test_unsupported_objects_raise_before_writing(bad, tmp_path):
    path = tmp_path / "c"
    with pytest.raises(TypeError, match="tn.save"):
        save({"x": bad}, path)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- unsafe and damaged files

class _RunsShellOnUnpickle:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def assert_refused(path):
    with pytest.raises(CheckpointError, match="not a (valid )?tinynn checkpoint|corrupt"):
        load(path)


def test_pickle_with_reduce_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"state": _RunsShellOnUnpickle(marker)}))
    assert_refused(path)
    assert not marker.exists()


def test_npz_with_object_array_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    structure = {"format": "tinynn.checkpoint", "version": 1, "root": {"type": "ndarray", "key": "arr_0"}}
    with open(path, "wb") as f:
        np.savez(f, arr_0=np.array([_RunsShellOnUnpickle(marker)], dtype=object),
                 __tinynn__=np.frombuffer(json.dumps(structure).encode(), dtype=np.uint8))
    assert_refused(path)
    assert not marker.exists()


def test_torch_style_zip_with_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "torch_like.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(_RunsShellOnUnpickle(marker)))
    assert_refused(path)
    assert not marker.exists()


def test_truncated_files_are_refused(tmp_path):
    path = tmp_path / "c"
    save(sample_object(), path)
    raw = path.read_bytes()
    for length in (0, 3, 10, len(raw) // 3, len(raw) // 2, len(raw) - 30, len(raw) - 1):
        path.write_bytes(raw[:length])
        assert_refused(path)


def test_corrupted_array_bytes_are_refused(tmp_path):
    path = tmp_path / "c"
    save({"w": np.arange(1000.0)}, path)
    raw = bytearray(path.read_bytes())
    offset = raw.index(np.arange(1000.0)[500:502].tobytes())  # inside the array data
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert_refused(path)  # the zip CRC no longer matches


def test_random_bytes_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "c"
    for prefix in (b"", b"PK\x03\x04", b"\x93NUMPY"):
        path.write_bytes(prefix + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
        assert_refused(path)


@pytest.mark.parametrize("structure", [
    b"not json",
    json.dumps({"format": "other", "version": 1, "root": None}).encode(),
    json.dumps({"format": "tinynn.checkpoint", "version": 99, "root": None}).encode(),
    json.dumps({"format": "tinynn.checkpoint", "version": 1, "root": {"type": "pickle", "data": "x"}}).encode(),
    json.dumps({"format": "tinynn.checkpoint", "version": 1, "root": {"type": "tensor", "key": "arr_9"}}).encode(),
    json.dumps({"format": "tinynn.checkpoint", "version": 1, "root": {"type": "dict", "keys": [[1]],
                                                                      "values": [2]}}).encode(),
    json.dumps({"format": "tinynn.checkpoint", "version": 1, "root": {"type": "float", "value": "1e5"}}).encode(),
])
def test_malformed_structure_is_refused(structure, tmp_path):
    path = tmp_path / "c"
    with open(path, "wb") as f:
        np.savez(f, arr_0=np.ones(2), __tinynn__=np.frombuffer(structure, dtype=np.uint8))
    assert_refused(path)


def test_npz_without_structure_is_refused(tmp_path):
    path = tmp_path / "c"
    with open(path, "wb") as f:
        np.savez(f, weights=np.ones(3))
    assert_refused(path)


def test_exported_at_top_level():
    assert tn.save is save and tn.load is load


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# --------------------------------------------------------------------------- atomic writes

def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    save({"epoch": 1, "w": np.arange(5.0)}, path)
    before = path.read_bytes()

    real_write_array = np.lib.format.write_array
    calls = []

    def write_then_fail(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first array made it into the file, the second fails midway
            fp.write(b"\x00" * 64)
            raise OSError("disk full")
        return real_write_array(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save({"epoch": 2, "w": np.zeros(500), "v": np.ones(500)}, path)
    monkeypatch.undo()

    assert len(calls) == 2
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.pt"]  # the temporary file was removed
    loaded = load(path)
    assert loaded["epoch"] == 1
    np.testing.assert_array_equal(loaded["w"], np.arange(5.0))


def test_state_dicts_of_optimizers_round_trip(tmp_path):
    p = Tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([p], lr=0.1, betas=(0.8, 0.9))
    p.grad = Tensor(np.full(3, 0.5))
    opt.step()
    state = opt.state_dict()
    save(state, tmp_path / "opt")
    loaded = load(tmp_path / "opt")
    assert list(loaded["state"]) == [0]
    assert loaded["state"][0]["step"] == 1
    assert loaded["param_groups"][0]["betas"] == (0.8, 0.9)
    assert loaded["param_groups"][0]["params"] == [0]
    assert_same(state["state"][0]["exp_avg"].data, loaded["state"][0]["exp_avg"].data)


@pytest.mark.cuda
def test_cuda_tensors_come_back_on_the_cpu(tmp_path):
    cupy = pytest.importorskip("cupy")
    if not tn.cuda.is_available():
        pytest.skip("no CUDA device")
    t = tn.tensor(np.arange(6, dtype=np.float16).reshape(2, 3), device="cuda")
    save({"t": t}, tmp_path / "c")
    loaded = load(tmp_path / "c")["t"]
    assert loaded.device == tn.device("cpu") and loaded.dtype == np.float16
    np.testing.assert_array_equal(loaded.data, t.data.get())
    on_gpu = load(tmp_path / "c", map_location="cuda")["t"]
    assert on_gpu.device == tn.device("cuda") and isinstance(on_gpu.data, cupy.ndarray)
    np.testing.assert_array_equal(on_gpu.data.get(), t.data.get())


def test_new_checkpoint_gets_ordinary_file_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        save({"x": 1}, tmp_path / "c")
    finally:
        os.umask(umask)
    assert (os.stat(tmp_path / "c").st_mode & 0o777) == 0o644


def test_load_accepts_torch_style_arguments(tmp_path):
    save({"w": Tensor(np.ones(2))}, tmp_path / "c")
    loaded = load(tmp_path / "c", map_location="cpu", weights_only=True)
    assert loaded["w"].device == tn.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        load(tmp_path / "c", map_location="tpu")
