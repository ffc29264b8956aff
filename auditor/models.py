"""Model registry and the residual / plain networks used for CIFAR-10 audits.

The registry follows timm's pattern: every public network is a small factory
function decorated with `@register_model`, which stores it under the
function's own name. Callers never import the factories directly; they use

    create_model("resnet20", num_classes=10, norm="batch")
    list_models()            # sorted names
    model_info("resnet20")   # static description for the report's table

Each built-in factory is registered together with a frozen `ModelInfo`, so the
report can describe an architecture without instantiating it.

Two families share one implementation (`ResNet`), both with a CIFAR stem (3x3
conv, stride 1, no max-pool):

* "resnet-imagenet-style": resnet18/34/50, i.e. torchvision's ResNets with
  conv1 replaced by a 3x3 stride-1 conv, the max-pool removed and a 10-way head.
  Shortcuts that change shape are projections (1x1 conv + norm); bottleneck
  blocks put the stride on the 3x3 conv (ResNet v1.5).
* "resnet-cifar" / "plain-cifar": He et al. 2016, Sec. 4.2. Depth 6n+2,
  stages of 16/32/64 channels with n basic blocks each. The residual nets use
  option-A shortcuts (subsample + zero-pad channels, parameter-free), so each
  plain net has exactly the parameter count of its residual twin.

All randomness during construction comes from torch's global RNG, so
`torch.manual_seed(s); create_model(...)` is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal, TypeVar, overload

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from auditor.spec import ModelSpec

__all__ = [
    "NORMS",
    "BasicBlock",
    "Bottleneck",
    "ModelInfo",
    "ResNet",
    "UnknownModelError",
    "count_parameters",
    "create_model",
    "group_count",
    "list_models",
    "make_norm",
    "model_info",
    "register_model",
]

Norm = Literal["batch", "group", "none"]
ShortcutKind = Literal["projection", "zeropad", "none"]
NORMS: tuple[str, ...] = ("batch", "group", "none")
MAX_GROUPS = 32  # GroupNorm default group count (Wu & He 2018)

# What `_init_weights` draws, for the sheet (tests/test_models.py checks the drawn weights against
# it). Norm layers and conv biases exist by `model.norm`: `ModelInfo.for_norm` keeps the right one.
_INIT_NORM_LAYERS = "norm layers weight 1, bias 0"
_INIT_CONV_BIASES = "conv biases 0"
INIT_SCHEME = (f"convolutions Kaiming normal (fan_out, ReLU gain: std sqrt(2 / fan_out)); {_INIT_NORM_LAYERS}; "
               "linear head normal with std 1 / sqrt(in_features), bias 0")  # fmt: skip

ModelFactory = Callable[..., nn.Module]
_F = TypeVar("_F", bound=ModelFactory)


class UnknownModelError(KeyError, ValueError):
    """Raised by `create_model` / `model_info` for a name that is not registered.

    It is both a `KeyError` (lookup failure) and a `ValueError` (bad argument),
    so callers can catch either.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and add quotes.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ModelInfo:
    """Static description of a registered architecture, for the report table.

    `stage_widths` are the per-stage base widths as in the papers' tables; for
    bottleneck blocks the stage's output has `4 * width` channels.
    """

    name: str
    family: Literal["resnet-imagenet-style", "resnet-cifar", "plain-cifar"]
    block: Literal["basic", "bottleneck"]
    depth: int
    stem: str
    stage_widths: tuple[int, ...]
    blocks_per_stage: tuple[int, ...]
    shortcut: str
    init: str = "not described (the model's ModelInfo gives no init)"  # how its factory draws the parameters

    def for_norm(self, norm: str) -> ModelInfo:
        """This description for a model built with `norm` (`model.norm`): without norm layers a
        projection shortcut is a 1x1 conv with a bias (`_conv`), whose bias starts at 0, and the
        text says so."""
        if norm != "none":
            return self
        return replace(self, shortcut=self.shortcut.replace("1x1 conv + norm", "1x1 conv with bias, no norm"),
                       init=self.init.replace(_INIT_NORM_LAYERS, _INIT_CONV_BIASES))


_REGISTRY: dict[str, ModelFactory] = {}
_INFO: dict[str, ModelInfo] = {}


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------


@overload
def register_model(fn: _F, *, info: ModelInfo | None = None) -> _F: ...
@overload
def register_model(
    fn: None = None, *, info: ModelInfo | None = None
) -> Callable[[_F], _F]: ...
def register_model(
    fn: _F | None = None, *, info: ModelInfo | None = None
) -> _F | Callable[[_F], _F]:
    """Register a model factory under its function name.

    Usable bare (`@register_model`) or with a description
    (`@register_model(info=ModelInfo(...))`). The factory must accept the
    keyword arguments `num_classes` and `norm` and return an `nn.Module`.
    Registering a name twice, or an info whose name differs from the
    function's, raises `ValueError`.
    """

    def decorator(factory: _F) -> _F:
        name = factory.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        if info is not None and info.name != name:
            raise ValueError(f"ModelInfo name {info.name!r} != factory name {name!r}")
        _REGISTRY[name] = factory
        if info is not None:
            _INFO[name] = info
        return factory

    return decorator if fn is None else decorator(fn)


def list_models() -> list[str]:
    """Return the names of all registered models, sorted."""
    return sorted(_REGISTRY)


def _unknown(name: str) -> UnknownModelError:
    known = ", ".join(list_models())
    return UnknownModelError(f"unknown model {name!r}; known models: {known}")


def create_model(name: str, *, num_classes: int = 10, norm: str = "batch") -> nn.Module:
    """Build the registered model `name` with a `num_classes`-way linear head.

    `norm` is "batch" (BatchNorm2d), "group" (GroupNorm, see `make_norm`) or
    "none" (Identity; convs then carry a bias). Raises `UnknownModelError`
    for an unregistered name and `ValueError` for a bad `norm` or
    `num_classes`. Parameters are drawn from torch's global RNG.
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        raise _unknown(name)
    _check_norm(norm)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    return factory(num_classes=num_classes, norm=norm)


def build_model(spec: ModelSpec) -> nn.Module:
    """The model stage: the spec's model, its parameters drawn from torch's global RNG."""
    return create_model(spec.name, num_classes=spec.num_classes, norm=spec.norm)


def model_info(name: str) -> ModelInfo:
    """Return the static `ModelInfo` of a registered model (no model is built).

    Raises `UnknownModelError` for an unregistered name and `LookupError` for
    a model registered without an info.
    """
    if name not in _REGISTRY:
        raise _unknown(name)
    if name not in _INFO:
        raise LookupError(f"model {name!r} was registered without a ModelInfo")
    return _INFO[name]


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return (total, trainable) parameter counts; shared tensors count once."""
    params = list(model.parameters())  # .parameters() already de-duplicates
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return total, trainable


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")


def group_count(channels: int) -> int:
    """GroupNorm group count: the largest divisor of `channels` that is <= 32.

    For the power-of-two widths used here this is min(32, channels), e.g. 16
    groups for the 16-channel CIFAR stage and 32 groups from 32 channels up.
    """
    return max(g for g in range(1, min(MAX_GROUPS, channels) + 1) if channels % g == 0)


def norm_groups(name: str, num_classes: int = 10) -> dict[str, int]:
    """GroupNorm's group count for each channel count that model `name`, built with group norm,
    normalises (keys are channel counts, as text for JSON), read off the net itself. It is built
    on the meta device: no memory for its weights, and no draw from the RNG that seeds training."""
    with torch.device("meta"):
        net = create_model(name, num_classes=num_classes, norm="group")
    found = {m.num_channels: m.num_groups for m in net.modules() if isinstance(m, nn.GroupNorm)}
    return {str(c): found[c] for c in sorted(found)}


def make_norm(norm: str, channels: int) -> nn.Module:
    """Normalisation layer for `channels` feature maps: batch, group or none."""
    _check_norm(norm)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(group_count(channels), channels)
    return nn.Identity()


def _conv(cin: int, cout: int, kernel: int, stride: int, norm: str) -> nn.Conv2d:
    # A following norm layer absorbs any bias; without one the conv needs its own.
    return nn.Conv2d(
        cin, cout, kernel, stride=stride, padding=kernel // 2, bias=norm == "none"
    )


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut (He et al. 2016): subsample by `stride`, zero-pad channels.

    Parameter-free. The new channels are appended after the input channels.
    """

    def __init__(self, stride: int, extra_channels: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra_channels = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C + extra, ceil(H/s), ceil(W/s))."""
        # A 1x1 average pool is exactly x[:, :, ::s, ::s] (same values, same gradient), but
        # its backward keeps channels_last; the slice's backward writes a contiguous (NCHW)
        # gradient, and the mixed-format ReLU backward upstream ran 26-35x slower on CPU (its
        # backward alone at batch 128 and resnet20's map sizes, on the machine of bench/RESULTS.md).
        x = F.avg_pool2d(x, kernel_size=1, stride=self.stride)
        # F.pad pads dims from the last backwards: (W_l, W_r, H_t, H_b, C_front, C_back).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class GlobalAvgPool(nn.Module):
    """Mean over the spatial dimensions: (N, C, H, W) -> (N, C).

    An average pool whose window is the whole map. AdaptiveAvgPool2d(1) computes the same
    mean, but on CPU its backward returns a contiguous (NCHW) gradient for a channels_last
    input, which makes the last ReLU's backward mix formats (26-35x slower there), and on
    CUDA its backward has no deterministic implementation (torch.use_deterministic_algorithms
    raises), while avg_pool2d's has. The two sum in different orders, so their last bits may
    differ: runs trained before this module replaced AdaptiveAvgPool2d are not bitwise
    comparable with runs trained after.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C): the mean over the spatial dimensions."""
        return torch.flatten(F.avg_pool2d(x, kernel_size=x.shape[-2:]), 1)


def _make_shortcut(
    kind: ShortcutKind, cin: int, cout: int, stride: int, norm: str
) -> nn.Module | None:
    """Shortcut branch for a block; None means the block has no skip at all."""
    if kind == "none":
        return None
    if stride == 1 and cin == cout:
        return nn.Identity()
    if kind == "projection":
        return nn.Sequential(_conv(cin, cout, 1, stride, norm), make_norm(norm, cout))
    if kind == "zeropad":
        return ZeroPadShortcut(stride, cout - cin)
    raise ValueError(f"unknown shortcut kind {kind!r}")


class BasicBlock(nn.Module):
    """Two 3x3 convs (stride on the first), each followed by norm; ReLU after the add."""

    expansion = 1

    def __init__(
        self, cin: int, width: int, stride: int, norm: str, shortcut: ShortcutKind
    ) -> None:
        super().__init__()
        self.conv1 = _conv(cin, width, 3, stride, norm)
        self.norm1 = make_norm(norm, width)
        self.conv2 = _conv(width, width, 3, 1, norm)
        self.norm2 = make_norm(norm, width)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _make_shortcut(shortcut, cin, width, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, width, H/stride, W/stride)."""
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        if self.shortcut is not None:  # fixed at construction: no data-dependent branch
            # In place: the norm's backward (or, with norm "none", the convolution's) reads its
            # inputs, never its output, so the gradients are the same bit for bit, and a step
            # allocates and writes one activation-sized tensor less per block. An in-place add
            # keeps `out`'s dtype; under autocast both sides have one dtype here (the norm's, which
            # the shortcut's own norm or input shares), so the sum is the out-of-place one
            # (tests/test_models.py). The price: a hook on norm2 sees its output overwritten, and a
            # full backward hook there is refused by autograd; nothing here registers hooks.
            out += self.shortcut(x)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, ResNet v1.5), 1x1 expand by 4."""

    expansion = 4

    def __init__(
        self, cin: int, width: int, stride: int, norm: str, shortcut: ShortcutKind
    ) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = _conv(cin, width, 1, 1, norm)
        self.norm1 = make_norm(norm, width)
        self.conv2 = _conv(width, width, 3, stride, norm)
        self.norm2 = make_norm(norm, width)
        self.conv3 = _conv(width, cout, 1, 1, norm)
        self.norm3 = make_norm(norm, cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _make_shortcut(shortcut, cin, cout, stride, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, cin, H, W) -> (N, 4 * width, H/stride, W/stride)."""
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        if self.shortcut is not None:
            out += self.shortcut(x)  # in place, as in BasicBlock.forward
        return self.relu(out)


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------


class ResNet(nn.Module):
    """Stem (3x3 conv stride 1 + norm + ReLU, no max-pool), stages, GAP, linear.

    Stage i has `blocks[i]` blocks of base width `widths[i]`; its first block
    uses `strides[i]`. `shortcut` selects how blocks skip: "projection",
    "zeropad" (option A) or "none" (plain network).
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: Sequence[int],
        widths: Sequence[int],
        strides: Sequence[int],
        *,
        stem_width: int,
        shortcut: ShortcutKind,
        num_classes: int,
        norm: str,
    ) -> None:
        super().__init__()
        _check_norm(norm)
        self.conv1 = _conv(3, stem_width, 3, 1, norm)
        self.norm1 = make_norm(norm, stem_width)
        self.relu = nn.ReLU(inplace=True)
        stages, cin = [], stem_width
        for n, width, stride in zip(blocks, widths, strides, strict=True):
            stages.append(_make_stage(block, n, cin, width, stride, norm, shortcut))
            cin = width * block.expansion
        self.stages = nn.Sequential(*stages)
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(cin, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images -> (N, num_classes) logits."""
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.stages(x)
        return self.fc(self.pool(x))


def _make_stage(
    block: type[BasicBlock | Bottleneck],
    n: int,
    cin: int,
    width: int,
    stride: int,
    norm: str,
    shortcut: ShortcutKind,
) -> nn.Sequential:
    layers = [block(cin, width, stride, norm, shortcut)]
    cout = width * block.expansion
    layers += [block(cout, width, 1, norm, shortcut) for _ in range(n - 1)]
    return nn.Sequential(*layers)


def _init_weights(model: nn.Module) -> None:
    """Kaiming init for convs and the head; norm layers to identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            # The head feeds softmax, not a ReLU: fan_in with gain 1 (nonlinearity
            # "linear") gives std 1/sqrt(in_features) and unit-scale logits.
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="linear")
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------
# Built-in models
# --------------------------------------------------------------------------

_IMAGENET_WIDTHS = (64, 128, 256, 512)
_IMAGENET_STEM = "3x3 conv (64 ch), stride 1, no max-pool"
_CIFAR_WIDTHS = (16, 32, 64)
_CIFAR_STEM = "3x3 conv (16 ch), stride 1, no max-pool"


def _imagenet_info(name: str, block: Literal["basic", "bottleneck"], depth: int,
                   blocks: tuple[int, ...]) -> ModelInfo:
    return ModelInfo(
        name=name,
        family="resnet-imagenet-style",
        block=block,
        depth=depth,
        stem=_IMAGENET_STEM,
        stage_widths=_IMAGENET_WIDTHS,
        blocks_per_stage=blocks,
        shortcut="projection (1x1 conv + norm) when shape changes, else identity",
        init=INIT_SCHEME,
    )


def _imagenet_style(
    block: type[BasicBlock | Bottleneck], blocks: tuple[int, ...], num_classes: int, norm: str
) -> ResNet:
    return ResNet(
        block, blocks, _IMAGENET_WIDTHS, (1, 2, 2, 2),
        stem_width=64, shortcut="projection", num_classes=num_classes, norm=norm,
    )


def _cifar_n(depth: int) -> int:
    """Blocks per stage for a He et al. CIFAR net of depth 6n+2."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}")
    return (depth - 2) // 6


def _cifar_info(name: str, depth: int, residual: bool) -> ModelInfo:
    n = _cifar_n(depth)
    return ModelInfo(
        name=name,
        family="resnet-cifar" if residual else "plain-cifar",
        block="basic",
        depth=depth,
        stem=_CIFAR_STEM,
        stage_widths=_CIFAR_WIDTHS,
        blocks_per_stage=(n, n, n),
        shortcut=(
            "option A (stride-2 subsample + zero-pad channels) when shape changes, "
            "else identity" if residual else "none"
        ),
        init=INIT_SCHEME,
    )


def _cifar_net(depth: int, residual: bool, num_classes: int, norm: str) -> ResNet:
    n = _cifar_n(depth)
    return ResNet(
        BasicBlock, (n, n, n), _CIFAR_WIDTHS, (1, 2, 2),
        stem_width=16, shortcut="zeropad" if residual else "none",
        num_classes=num_classes, norm=norm,
    )


@register_model(info=_imagenet_info("resnet18", "basic", 18, (2, 2, 2, 2)))
def resnet18(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """ResNet-18 with a CIFAR stem (11,173,962 params for 10 classes, batch norm)."""
    return _imagenet_style(BasicBlock, (2, 2, 2, 2), num_classes, norm)


@register_model(info=_imagenet_info("resnet34", "basic", 34, (3, 4, 6, 3)))
def resnet34(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """ResNet-34 with a CIFAR stem (21,282,122 params for 10 classes, batch norm)."""
    return _imagenet_style(BasicBlock, (3, 4, 6, 3), num_classes, norm)


@register_model(info=_imagenet_info("resnet50", "bottleneck", 50, (3, 4, 6, 3)))
def resnet50(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """ResNet-50 (v1.5) with a CIFAR stem (23,520,842 params for 10 classes, batch norm)."""
    return _imagenet_style(Bottleneck, (3, 4, 6, 3), num_classes, norm)


@register_model(info=_cifar_info("resnet8", 8, residual=True))
def resnet8(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """He et al. CIFAR ResNet, n=1 (tiny; for smoke tests)."""
    return _cifar_net(8, True, num_classes, norm)


@register_model(info=_cifar_info("resnet20", 20, residual=True))
def resnet20(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """He et al. CIFAR ResNet-20, n=3, option-A shortcuts."""
    return _cifar_net(20, True, num_classes, norm)


@register_model(info=_cifar_info("resnet32", 32, residual=True))
def resnet32(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """He et al. CIFAR ResNet-32, n=5, option-A shortcuts."""
    return _cifar_net(32, True, num_classes, norm)


@register_model(info=_cifar_info("resnet44", 44, residual=True))
def resnet44(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """He et al. CIFAR ResNet-44, n=7, option-A shortcuts."""
    return _cifar_net(44, True, num_classes, norm)


@register_model(info=_cifar_info("resnet56", 56, residual=True))
def resnet56(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """He et al. CIFAR ResNet-56, n=9, option-A shortcuts (paper: 0.85M params)."""
    return _cifar_net(56, True, num_classes, norm)


@register_model(info=_cifar_info("resnet110", 110, residual=True))
def resnet110(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """He et al. CIFAR ResNet-110, n=18, option-A shortcuts (paper: 1.7M params)."""
    return _cifar_net(110, True, num_classes, norm)


@register_model(info=_cifar_info("plain8", 8, residual=False))
def plain8(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """Plain (no shortcut) twin of resnet8."""
    return _cifar_net(8, False, num_classes, norm)


@register_model(info=_cifar_info("plain20", 20, residual=False))
def plain20(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """Plain (no shortcut) twin of resnet20."""
    return _cifar_net(20, False, num_classes, norm)


@register_model(info=_cifar_info("plain32", 32, residual=False))
def plain32(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """Plain (no shortcut) twin of resnet32."""
    return _cifar_net(32, False, num_classes, norm)


@register_model(info=_cifar_info("plain44", 44, residual=False))
def plain44(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """Plain (no shortcut) twin of resnet44."""
    return _cifar_net(44, False, num_classes, norm)


@register_model(info=_cifar_info("plain56", 56, residual=False))
def plain56(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """Plain (no shortcut) twin of resnet56."""
    return _cifar_net(56, False, num_classes, norm)


@register_model(info=_cifar_info("plain110", 110, residual=False))
def plain110(*, num_classes: int = 10, norm: str = "batch") -> ResNet:
    """Plain (no shortcut) twin of resnet110."""
    return _cifar_net(110, False, num_classes, norm)
