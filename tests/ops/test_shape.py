"""Shape ops: reshape view flatten unflatten squeeze unsqueeze transpose permute expand repeat
contiguous, cat stack split chunk, pad (every mode), tril triu."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
from tests.ops.harness import OpCase, op_tests, torch_module


def method_case(name, method, ref, shapes, **options) -> OpCase:
    """An op called the same way on tinynn and torch tensors (``method``), e.g. ``a.reshape(4, 6)``."""
    return OpCase(name, method, ref, method, shapes, **options)


def _torch_pad(a, pad, mode="constant", value=0.0):
    import torch.nn.functional as F
    return F.pad(a, pad, mode=mode, value=value) if mode == "constant" else F.pad(a, pad, mode=mode)


def _np_pad(a, pad, mode="constant", value=0.0):
    widths = [(0, 0)] * a.ndim
    for i in range(len(pad) // 2):
        widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    numpy_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    extra = dict(constant_values=value) if mode == "constant" else {}
    return np.pad(a, widths, mode=numpy_mode, **extra)


def _tensor_list(*tensors):
    return list(tensors)


CASES: list[OpCase] = [
    method_case("reshape", lambda a: a.reshape(4, 6), lambda a: a.reshape(4, 6), [(2, 3, 4)]),
    method_case("reshape_infer", lambda a: a.reshape(-1, 3), lambda a: a.reshape(-1, 3), [(2, 3, 4)]),
    method_case("reshape_tuple", lambda a: a.reshape((3, 2, 4)), lambda a: a.reshape(3, 2, 4), [(2, 3, 4)]),
    method_case("view", lambda a: a.view(6, 4), lambda a: a.reshape(6, 4), [(2, 3, 4)]),
    method_case("reshape_0d", lambda a: a.reshape(1, 1), lambda a: a.reshape(1, 1), [()]),
    method_case("flatten", lambda a: a.flatten(), lambda a: a.reshape(-1), [(2, 3, 4)]),
    method_case("flatten_1_2", lambda a: a.flatten(1), lambda a: a.reshape(2, 12), [(2, 3, 4)]),
    method_case("flatten_0_1", lambda a: a.flatten(0, 1), lambda a: a.reshape(6, 4), [(2, 3, 4)]),
    method_case("unflatten", lambda a: a.unflatten(1, (2, 3)), lambda a: a.reshape(4, 2, 3, 2), [(4, 6, 2)]),
    method_case("unflatten_infer", lambda a: a.unflatten(-1, (-1, 2)), lambda a: a.reshape(4, 3, 2), [(4, 6)]),
    method_case("squeeze", lambda a: a.squeeze(), lambda a: a.squeeze(), [(1, 3, 1, 2)]),
    method_case("squeeze_dim", lambda a: a.squeeze(2), lambda a: a.squeeze(2), [(1, 3, 1, 2)]),
    method_case("squeeze_non_one", lambda a: a.squeeze(1), lambda a: a, [(1, 3, 1, 2)]),
    method_case("unsqueeze", lambda a: a.unsqueeze(1), lambda a: a[:, None], [(2, 3)]),
    method_case("unsqueeze_neg", lambda a: a.unsqueeze(-1), lambda a: a[..., None], [(2, 3)]),
    method_case("transpose", lambda a: a.transpose(0, 2), lambda a: a.transpose(2, 1, 0), [(2, 3, 4)]),
    method_case("transpose_neg", lambda a: a.transpose(-1, -2), lambda a: a.transpose(0, 2, 1), [(2, 3, 4)]),
    method_case("T", lambda a: a.T, lambda a: a.T, [(2, 3)]),
    method_case("mT", lambda a: a.mT, lambda a: a.transpose(0, 2, 1), [(2, 3, 4)]),
    method_case("permute", lambda a: a.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1), [(2, 3, 4)]),
    method_case("permute_tuple", lambda a: a.permute((1, 2, 0)), lambda a: a.transpose(1, 2, 0), [(2, 3, 4)]),
    method_case("expand", lambda a: a.expand(2, 3, 4), lambda a: np.broadcast_to(a, (2, 3, 4)), [(3, 1)]),
    method_case("expand_keep", lambda a: a.expand(-1, 4), lambda a: np.broadcast_to(a, (3, 4)), [(3, 1)]),
    method_case("expand_as", lambda a, b: a.expand_as(b) * b, lambda a, b: a * b, [(3, 1), (2, 3, 4)]),
    method_case("repeat", lambda a: a.repeat(2, 3), lambda a: np.tile(a, (2, 3)), [(2, 3)]),
    method_case("repeat_more_dims", lambda a: a.repeat(2, 1, 2), lambda a: np.tile(a, (2, 1, 2)), [(2, 3)]),
    method_case("contiguous", lambda a: a.T.contiguous() * 1.0, lambda a: np.ascontiguousarray(a.T), [(2, 3)]),
    method_case("flip", lambda a: a.flip(1), lambda a: np.flip(a, 1), [(2, 3)]),
    method_case("flip_two_dims", lambda a: a.flip((0, 1)), lambda a: np.flip(a, (0, 1)), [(2, 3)]),
    method_case("movedim", lambda a: a.movedim(0, -1), lambda a: np.moveaxis(a, 0, -1), [(2, 3, 4)]),
    OpCase("cat", lambda a, b, c: tn.cat([a, b, c], 1), lambda a, b, c: np.concatenate([a, b, c], 1),
           lambda a, b, c: torch_module().cat([a, b, c], 1), [(2, 1, 3), (2, 2, 3), (2, 4, 3)]),
    OpCase("cat_neg_dim", lambda a, b: tn.cat((a, b), -1), lambda a, b: np.concatenate([a, b], -1),
           lambda a, b: torch_module().cat((a, b), -1), [(2, 3), (2, 2)]),
    OpCase("stack", lambda a, b: tn.stack([a, b], 1), lambda a, b: np.stack([a, b], 1),
           lambda a, b: torch_module().stack([a, b], 1), [(2, 3), (2, 3)]),
    OpCase("stack_last", lambda a, b: tn.stack([a, b], -1), lambda a, b: np.stack([a, b], -1),
           lambda a, b: torch_module().stack([a, b], -1), [(2, 3), (2, 3)]),
    method_case("split_size", lambda a: a.split(2, 1), lambda a: np.split(a, [2, 4], 1), [(2, 5)]),
    method_case("split_sections", lambda a: a.split([1, 3, 1], 1), lambda a: np.split(a, [1, 4], 1), [(2, 5)]),
    method_case("chunk", lambda a: a.chunk(3, 0), lambda a: np.split(a, [2, 4], 0), [(5, 2)]),
    method_case("chunk_even", lambda a: a.chunk(2, -1), lambda a: np.split(a, 2, -1), [(3, 4)]),
    method_case("unbind", lambda a: a.unbind(1), lambda a: tuple(a[:, i] for i in range(3)), [(2, 3)]),
    method_case("narrow", lambda a: a.narrow(1, 1, 2), lambda a: a[:, 1:3], [(2, 4)]),
    method_case("tril", lambda a: a.tril(), lambda a: np.tril(a), [(3, 4)]),
    method_case("tril_batched_k", lambda a: a.tril(-1), lambda a: np.tril(a, -1), [(2, 3, 3)]),
    method_case("triu", lambda a: a.triu(), lambda a: np.triu(a), [(4, 3)]),
    method_case("triu_k", lambda a: a.triu(1), lambda a: np.triu(a, 1), [(2, 3, 4)]),
    *[OpCase(f"pad_{mode}{pad}", lambda a, pad=pad, mode=mode: tn.pad(a, pad, mode=mode),
             lambda a, pad=pad, mode=mode: _np_pad(a, pad, mode), lambda a, pad=pad, mode=mode: _torch_pad(a, pad, mode),
             [(2, 3, 4) if len(pad) == 2 else (1, 2, 3, 4)])  # the ranks PyTorch's non-constant pads accept
      for mode in ["constant", "reflect", "replicate", "circular"] for pad in [(1, 2), (2, 1, 1, 2)]],
    OpCase("pad_constant_value", lambda a: tn.pad(a, (1, 1), value=2.5), lambda a: _np_pad(a, (1, 1), value=2.5),
           lambda a: _torch_pad(a, (1, 1), value=2.5), [(2, 3)]),
    OpCase("pad_constant_3d", lambda a: tn.pad(a, (1, 0, 0, 2, 1, 1)), lambda a: _np_pad(a, (1, 0, 0, 2, 1, 1)),
           lambda a: _torch_pad(a, (1, 0, 0, 2, 1, 1)), [(2, 2, 3)]),
    OpCase("pad_negative_crops", lambda a: tn.pad(a, (-1, 2)), lambda a: np.pad(a[:, 1:], ((0, 0), (0, 2))),
           lambda a: _torch_pad(a, (-1, 2)), [(2, 4)]),
]

(test_forward, test_non_contiguous_inputs, test_gradcheck, test_gradgradcheck,
 test_torch_parity) = op_tests(CASES)


# --- behaviour beyond the table --------------------------------------------------------------


def test_reshape_to_same_shape_returns_input():
    x = tn.ones(2, 3)
    assert x.reshape(2, 3) is x


def test_contiguous_of_contiguous_is_identity():
    x = tn.ones(2, 3)
    assert x.contiguous() is x and x.T.contiguous().is_contiguous()


def test_split_gradient_reaches_only_used_pieces():
    x = tn.ones(2, 5, requires_grad=True)
    a, b, c = x.split(2, 1)
    (b * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 0, 3, 3, 0]] * 2)


def test_cat_promotes_dtypes():
    out = tn.cat([tn.ones(2), tn.ones(2, dtype=tn.float64)])
    assert out.dtype == tn.float64


@pytest.mark.parametrize("call, message", [
    (lambda: tn.ones(2, 3).reshape(4, 2), r"reshape.*\(4, 2\).*6"),
    (lambda: tn.ones(2, 3).reshape(-1, -1), r"reshape.*one dimension"),
    (lambda: tn.ones(2, 3).permute(0), r"permute.*\(2, 3\)"),
    (lambda: tn.ones(2, 3).permute(0, 0), r"permute.*repeated"),
    (lambda: tn.ones(2, 3).expand(4, 3), r"expand.*\(2, 3\)"),
    (lambda: tn.ones(2, 3).transpose(0, 2), r"transpose.*dimension 2"),
    (lambda: tn.cat([tn.ones(2, 3), tn.ones(3, 4)]), r"cat.*\(2, 3\).*\(3, 4\)"),
    (lambda: tn.stack([tn.ones(2, 3), tn.ones(3, 2)]), r"stack.*\(2, 3\).*\(3, 2\)"),
    (lambda: tn.ones(2, 5).split([2, 2], 1), r"split.*\[2, 2\].*5"),
    (lambda: tn.pad(tn.ones(2, 3), (1,)), r"pad.*even"),
    (lambda: tn.pad(tn.ones(2, 3), (3, 3), mode="reflect"), r"pad.*reflect"),
    (lambda: tn.ones(2, 3).repeat(2), r"repeat"),
    (lambda: tn.ones(2, 3).flatten(1, 0), r"flatten"),
    (lambda: tn.ones(3).tril(), r"tril.*2 dimensions.*\(3,\)"),
    (lambda: tn.ones(3).triu(), r"triu.*2 dimensions"),
])
def test_shape_errors_name_op_and_shapes(call, message):
    with pytest.raises((RuntimeError, ValueError, IndexError), match=message):
        call()
