"""Elementwise MIL ops: unary math, binary arithmetic/comparison/logic, activations, cast.

Float inputs arrive as fp32 (fp16 vars widened); the executor rounds results to the declared
output dtype, so these kernels are plain fp32/int32 torch math.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import kernel

# ---------------------------------------------------------------- binary


def _binary(op_type: str, fn) -> None:
    def run(x, y):
        return fn(x, y)

    kernel(op_type)(run)


def _real_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # MIL real_div keeps the input dtype; integer results truncate like numpy astype.
    if x.is_floating_point() or y.is_floating_point():
        return torch.div(x, y)
    return torch.div(x, y, rounding_mode="trunc")


for _name, _fn in {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "real_div": _real_div,
    "floor_div": lambda x, y: torch.div(x, y, rounding_mode="floor"),
    "mod": torch.remainder,  # numpy/Python sign convention, like value_inference
    "pow": torch.pow,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "equal": torch.eq,
    "not_equal": torch.ne,
    "greater": torch.gt,
    "greater_equal": torch.ge,
    "less": torch.lt,
    "less_equal": torch.le,
    "logical_and": torch.logical_and,
    "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}.items():
    _binary(_name, _fn)


# ---------------------------------------------------------------- unary

_UNARY = {
    "abs": torch.abs,
    "acos": torch.acos,
    "asin": torch.asin,
    "atan": torch.atan,
    "atanh": torch.atanh,
    "ceil": torch.ceil,
    "cos": torch.cos,
    "cosh": torch.cosh,
    "erf": torch.erf,
    "exp": torch.exp,
    "exp2": lambda x: torch.exp2(x.float()) if not x.is_floating_point() else torch.exp2(x),
    "floor": torch.floor,
    "logical_not": torch.logical_not,
    "round": torch.round,  # half to even, as numpy (value_inference) does
    "sign": torch.sign,
    "sin": torch.sin,
    "sinh": torch.sinh,
    "sqrt": torch.sqrt,
    "square": torch.square,
    "tan": torch.tan,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "relu6": lambda x: torch.clamp(x, 0.0, 6.0),
    "sigmoid": torch.sigmoid,
    "silu": F.silu,
    "softsign": F.softsign,
    "softplus": lambda x: torch.log1p(torch.exp(-torch.abs(x))) + torch.clamp(x, min=0),
}
def _unary(fn):
    def run(x):
        return fn(x)

    return run


for _name, _fn in _UNARY.items():
    kernel(_name)(_unary(_fn))


@kernel("inverse", static=("epsilon",))
def _inverse(x, epsilon=1e-4):
    return torch.reciprocal(x + epsilon)


@kernel("log", static=("epsilon",))
def _log(x, epsilon=1e-45):
    return torch.log(x + epsilon)


@kernel("rsqrt", static=("epsilon",))
def _rsqrt(x, epsilon=1e-12):
    return torch.rsqrt(x + epsilon)


@kernel("threshold", static=("alpha",))
def _threshold(x, alpha):
    return torch.clamp(x, min=alpha)


@kernel("clip", static=("alpha", "beta"))
def _clip(x, alpha, beta):
    return torch.clamp(x, alpha, beta)


# ---------------------------------------------------------------- activations


@kernel("clamped_relu", static=("alpha", "beta"))
def _clamped_relu(x, alpha, beta):
    # Same formula as coremltools' value_inference.
    return torch.clamp(x, 0, beta) + torch.clamp(torch.clamp(x, max=0) * alpha, max=beta)


@kernel("elu", static=("alpha",))
def _elu(x, alpha):
    return torch.where(x < 0, alpha * torch.expm1(x), x)


@kernel("gelu", static=("mode",))
def _gelu(x, mode="EXACT"):
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    return F.gelu(x)


@kernel("leaky_relu", static=("alpha",))
def _leaky_relu(x, alpha):
    return torch.where(x < 0, x * alpha, x)


@kernel("linear_activation", static=("alpha", "beta"))
def _linear_activation(x, alpha, beta):
    return x * alpha + beta


def _channel(v: torch.Tensor, rank: int) -> torch.Tensor:
    """Per-channel vector broadcast on axis 1 of a rank-``rank`` tensor."""
    return v.reshape([1, -1] + [1] * (rank - 2))


@kernel("prelu")
def _prelu(x, alpha):
    return torch.clamp(x, min=0) + torch.clamp(x, max=0) * _channel(alpha, x.dim())


@kernel("scaled_tanh", static=("alpha", "beta"))
def _scaled_tanh(x, alpha, beta):
    return alpha * torch.tanh(x * beta)


@kernel("sigmoid_hard", static=("alpha", "beta"))
def _sigmoid_hard(x, alpha, beta):
    return torch.clamp(alpha * x + beta, 0, 1)


@kernel("softplus_parametric")
def _softplus_parametric(x, alpha, beta):
    a, b = _channel(alpha, x.dim()), _channel(beta, x.dim())
    return a * torch.log1p(torch.exp(x * b))


@kernel("thresholded_relu", static=("alpha",))
def _thresholded_relu(x, alpha):
    return torch.where(x < alpha, torch.zeros_like(x), x)


@kernel("softmax", static=("axis",))
def _softmax(x, axis=-1):
    return torch.softmax(x, dim=axis)


# ---------------------------------------------------------------- casts


@kernel("cast", static=("dtype",), movement=True)
def _cast(x, dtype):
    # The executor converts every output to its declared dtype with torch's exact
    # conversions (round-to-nearest-even to fp16, truncation toward zero to ints, like
    # numpy's astype in coremltools' value_inference), so cast itself is the identity.
    return x


@kernel("identity", movement=True)
def _identity(x):
    return x


# ---------------------------------------------------------------- activation quantisation


def _axis_view(p: torch.Tensor, rank: int, axis: int | None) -> torch.Tensor:
    if p.dim() == 0 or axis is None:
        return p
    axis = axis % rank
    return p.reshape([-1 if i == axis else 1 for i in range(rank)])


@kernel("quantize", static=("axis", "output_dtype"))
def _quantize(input, scale, zero_point=None, axis=None, output_dtype="int8"):
    info = {"int8": (-128, 127), "uint8": (0, 255)}[output_dtype]
    s = _axis_view(scale.float(), input.dim(), axis)
    q = torch.round(input / s)
    if zero_point is not None:
        q = q + _axis_view(zero_point.float(), input.dim(), axis)
    return torch.clamp(q, *info)


@kernel("dequantize", static=("axis",))
def _dequantize(input, scale, zero_point=None, axis=None):
    x = input.float()
    if zero_point is not None:
        x = x - _axis_view(zero_point.float(), input.dim(), axis)
    return x * _axis_view(scale.float(), input.dim(), axis)

