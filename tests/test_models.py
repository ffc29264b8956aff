"""Tests for the model registry and the ResNet / plain networks."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from auditor.models import (
    BasicBlock,
    Bottleneck,
    GlobalAvgPool,
    ModelInfo,
    UnknownModelError,
    ZeroPadShortcut,
    count_parameters,
    create_model,
    group_count,
    list_models,
    model_info,
    norm_groups,
    register_model,
)

# Too big to backprop through quickly on a 2-core CPU: forward-only, eval, no_grad.
FORWARD_ONLY = {"resnet50", "resnet110", "plain110"}

EXACT_PARAMS = {
    "resnet18": 11_173_962,
    "resnet34": 21_282_122,
    "resnet50": 23_520_842,
    # Option-A (parameter-free) shortcuts. The often-quoted 272,474 is the
    # count with option-B (1x1 conv + BN) projections: 272,474 - 2,752.
    "resnet20": 269_722,
    # He et al.'s CIFAR nets with option-A shortcuts, counted from their definition (3x3 stem of
    # 16, three stages of 16/32/64 with (depth - 2) / 6 basic blocks each, BN, a 10-way head);
    # Table 6 rounds them (0.27M, 0.46M, 0.66M, 0.85M, 1.7M). A plain net has its twin's count.
    "resnet8": 75_290, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018, "resnet110": 1_727_962,
}
EXACT_PARAMS |= {f"plain{k.removeprefix('resnet')}": v for k, v in EXACT_PARAMS.items() if k[6:] in {"8", "20", "32", "44", "56", "110"}}
PAPER_PARAMS = {"resnet56": 0.85e6, "resnet110": 1.7e6}  # He et al. 2016, Table 6
CIFAR_DEPTHS = (8, 20, 32, 44, 56, 110)


def _images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_registry_contents() -> None:
    names = list_models()
    assert names == sorted(names)
    expected = {"resnet18", "resnet34", "resnet50"}
    expected |= {f"{kind}{d}" for kind in ("resnet", "plain") for d in CIFAR_DEPTHS}
    assert set(names) == expected


@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name: str) -> None:
    model = create_model(name, num_classes=7)
    x = _images()
    if name in FORWARD_ONLY:
        model.eval()
        with torch.no_grad():
            assert model(x).shape == (2, 7)
        return
    logits = model(x)
    assert logits.shape == (2, 7)
    logits.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", sorted(EXACT_PARAMS))
def test_exact_parameter_counts(name: str) -> None:
    total, trainable = count_parameters(create_model(name, num_classes=10, norm="batch"))
    assert total == trainable == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_paper_parameter_counts(name: str) -> None:
    total, _ = count_parameters(create_model(name))
    assert total == pytest.approx(PAPER_PARAMS[name], rel=0.03)


@pytest.mark.parametrize("depth", CIFAR_DEPTHS)
def test_plain_twin_has_same_parameter_count(depth: int) -> None:
    resnet = count_parameters(create_model(f"resnet{depth}"))
    plain = count_parameters(create_model(f"plain{depth}"))
    assert resnet == plain


def test_count_parameters_trainable_split() -> None:
    model = create_model("resnet8")
    model.fc.requires_grad_(False)
    total, trainable = count_parameters(model)
    assert total - trainable == model.fc.weight.numel() + model.fc.bias.numel()


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_norm_variants(norm: str) -> None:
    model = create_model("resnet8", norm=norm)
    norm_type = {"batch": nn.BatchNorm2d, "group": nn.GroupNorm}.get(norm)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if norm_type is None:
        assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in model.modules())
        assert all(c.bias is not None for c in convs)
    else:
        assert any(isinstance(m, norm_type) for m in model.modules())
        assert all(c.bias is None for c in convs)
    logits = model(_images())
    assert logits.shape == (2, 10)
    logits.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_group_norm_group_rule() -> None:
    assert [group_count(c) for c in (16, 32, 64, 2048)] == [16, 32, 32, 32]
    assert group_count(48) == 24 and group_count(7) == 7
    gns = [m for m in create_model("resnet8", norm="group").modules()
           if isinstance(m, nn.GroupNorm)]
    assert {(m.num_channels, m.num_groups) for m in gns} == {(16, 16), (32, 32), (64, 32)}


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(UnknownModelError) as excinfo:
        create_model("resnet9000")
    message = str(excinfo.value)
    assert "resnet9000" in message
    assert all(name in message for name in list_models())
    assert isinstance(excinfo.value, KeyError) and isinstance(excinfo.value, ValueError)
    with pytest.raises(UnknownModelError):
        model_info("resnet9000")


@pytest.mark.parametrize("norm", ["layer", "Batch", "", None])
def test_invalid_norm_raises(norm: object) -> None:
    with pytest.raises(ValueError, match="norm"):
        create_model("resnet8", norm=norm)  # type: ignore[arg-type]


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_invalid_num_classes_raises(num_classes: object) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet8", num_classes=num_classes)  # type: ignore[arg-type]


def test_duplicate_registration_rejected() -> None:
    def resnet8(*, num_classes: int = 10, norm: str = "batch") -> nn.Module:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="already registered"):
        register_model(resnet8)


@pytest.mark.parametrize("name", ["resnet8", "resnet18"])
def test_same_seed_same_weights(name: str) -> None:
    torch.manual_seed(123)
    a = create_model(name).state_dict()
    torch.manual_seed(123)
    b = create_model(name).state_dict()
    torch.manual_seed(124)
    c = create_model(name).state_dict()
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_state_dict_keys_are_plain() -> None:
    keys = list(create_model("resnet8").state_dict())
    assert keys[0] == "conv1.weight"
    assert "fc.weight" in keys and "stages.0.0.conv1.weight" in keys
    assert not any(k.startswith(("module.", "_orig_mod.", "model.")) for k in keys)


@pytest.mark.parametrize("name", list_models())
def test_group_norm_has_batch_norm_s_parameter_count(name: str) -> None:
    """`auditor models` says its counts hold for group norm too."""
    assert count_parameters(create_model(name, norm="group")) == count_parameters(create_model(name))


@pytest.mark.parametrize("name", list_models())
def test_recorded_group_counts_are_those_of_the_built_net(name: str) -> None:
    """The sheet's GroupNorm row reads `norm_groups`: it must list every GroupNorm the net holds."""
    built = {str(m.num_channels): m.num_groups for m in create_model(name, norm="group").modules()
             if isinstance(m, nn.GroupNorm)}  # fmt: skip
    before = torch.random.get_rng_state()
    recorded = norm_groups(name)
    assert recorded == built and list(recorded) == sorted(built, key=int)  # by channel count
    assert torch.equal(torch.random.get_rng_state(), before)  # read without drawing from training's RNG


@pytest.mark.parametrize("norm", ["batch", "none"])
@pytest.mark.parametrize("name", list_models())
def test_the_recorded_init_scheme_is_what_the_net_draws(name: str, norm: str) -> None:
    """The sheet's Initialisation row is `model_info(...).for_norm(norm).init`: check the weights drawn
    against it, pooled over each kind of layer (a single small conv is too few draws to test)."""
    torch.manual_seed(0)
    model = create_model(name, norm=norm)
    text = model_info(name).for_norm(norm).init
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    heads = [m for m in model.modules() if isinstance(m, nn.Linear)]
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    # Each weight over the std the text gives it: pooled, a standard normal sample.
    fan_out = [c.out_channels * c.kernel_size[0] * c.kernel_size[1] for c in convs]
    scaled = torch.cat([c.weight.detach().flatten() / math.sqrt(2 / f) for c, f in zip(convs, fan_out, strict=True)])
    assert "Kaiming normal (fan_out, ReLU gain: std sqrt(2 / fan_out))" in text
    assert abs(scaled.std().item() - 1) < 0.02 and abs(scaled.mean().item()) < 0.02
    head = torch.cat([h.weight.detach().flatten() * math.sqrt(h.in_features) for h in heads])
    assert "linear head normal with std 1 / sqrt(in_features), bias 0" in text and len(heads) == 1
    assert abs(head.std().item() - 1) < 0.15 and all(not h.bias.any() for h in heads)  # 10 x (64 .. 2048) draws
    if norm == "none":
        assert not norms and "norm layers" not in text and "conv biases 0" in text
        assert all(c.bias is not None and not c.bias.any() for c in convs)
    else:
        assert norms and "norm layers weight 1, bias 0" in text and all(c.bias is None for c in convs)
        assert all(bool((n.weight == 1).all() and not n.bias.any()) for n in norms)


def test_a_model_info_that_gives_no_init_does_not_claim_ours() -> None:
    """A model of one's own need not call `_init_weights`: its sheet must not say it did."""
    info = ModelInfo(name="mine", family="plain-cifar", block="basic", depth=8, stem="s", stage_widths=(16,),
                     blocks_per_stage=(1,), shortcut="none")  # fmt: skip
    assert info.init == info.for_norm("none").init == "not described (the model's ModelInfo gives no init)"


@pytest.mark.parametrize("name", list_models())
def test_channels_last_matches_contiguous(name: str) -> None:
    model = create_model(name).eval()
    x = _images()
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        actual = model(x.to(memory_format=torch.channels_last))
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5 * max(scale, 1.0))


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_zeropad_shortcut_is_subsample_and_pad(memory_format: torch.memory_format) -> None:
    """The pooled shortcut equals the textbook slice + pad, in value and in gradient."""
    x = torch.randn(4, 3, 7, 9).contiguous(memory_format=memory_format).requires_grad_()
    y = ZeroPadShortcut(stride=2, extra_channels=5)(x)
    ref = torch.nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, 5))
    assert y.shape == (4, 8, 4, 5) and torch.equal(y, ref)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    (gref,) = torch.autograd.grad(ref, x, g)
    assert torch.equal(gx, gref)
    assert gx.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_global_avg_pool_is_the_spatial_mean(memory_format: torch.memory_format) -> None:
    """Same mean as AdaptiveAvgPool2d(1) + flatten (up to summation order), non-square maps too."""
    x = torch.randn(3, 5, 3, 7).contiguous(memory_format=memory_format).requires_grad_()
    y = GlobalAvgPool()(x)
    ref = torch.flatten(nn.AdaptiveAvgPool2d(1)(x), 1)
    assert y.shape == (3, 5)
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(gx, torch.autograd.grad(ref, x, g)[0])
    assert gx.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("name", sorted(set(list_models()) - FORWARD_ONLY))
def test_channels_last_gradients_stay_channels_last(name: str) -> None:
    """Every activation's gradient keeps channels_last, so no backward op mixes formats
    (a mixed-format ReLU backward is 26-35x slower on CPU than a same-format one)."""
    model = create_model(name).to(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 16, 16).contiguous(memory_format=torch.channels_last)
    mixed: list[str] = []

    def watch(label: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, out: torch.Tensor) -> None:
            def check(g: torch.Tensor) -> None:
                if not g.is_contiguous(memory_format=torch.channels_last):
                    mixed.append(f"{label}: grad strides {g.stride()}")

            out.register_hook(check)

        return hook

    for label, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU)):
            mod.register_forward_hook(watch(label))
    model(x).sum().backward()
    assert not mixed, mixed


@pytest.mark.parametrize("name", list_models())
def test_model_info(name: str) -> None:
    info = model_info(name)
    assert isinstance(info, ModelInfo) and info.name == name
    assert info.depth == int(name.removeprefix("resnet").removeprefix("plain"))
    assert len(info.stage_widths) == len(info.blocks_per_stage)
    assert "no max-pool" in info.stem
    if name.startswith("plain"):
        assert (info.family, info.shortcut) == ("plain-cifar", "none")
    elif info.family == "resnet-cifar":
        assert info.stage_widths == (16, 32, 64)
        assert 6 * info.blocks_per_stage[0] + 2 == info.depth
    else:
        assert info.family == "resnet-imagenet-style"
        assert info.stage_widths == (64, 128, 256, 512)
    with pytest.raises(AttributeError):
        info.depth = 0  # type: ignore[misc]  # frozen


@pytest.mark.parametrize("name", list_models())
def test_model_info_describes_the_module_built(name: str) -> None:
    """The sheet's architecture table comes from ModelInfo: it must be what create_model builds."""
    from auditor.models import BasicBlock, Bottleneck

    info, model = model_info(name), create_model(name)
    stages = list(model.stages)
    assert info.blocks_per_stage == tuple(len(stage) for stage in stages)
    assert info.stage_widths == tuple(stage[0].conv1.out_channels for stage in stages)
    kind = {BasicBlock: "basic", Bottleneck: "bottleneck"}
    assert {kind[type(b)] for stage in stages for b in stage} == {info.block}
    convs_per_block = 2 if info.block == "basic" else 3
    assert info.depth == 1 + convs_per_block * sum(info.blocks_per_stage) + 1  # stem, blocks' convs, head
    assert (model.conv1.kernel_size, model.conv1.stride) == ((3, 3), (1, 1)) and "3x3" in info.stem
    shortcuts = [b.shortcut for stage in stages for b in stage]
    if info.shortcut == "none":
        assert all(s is None for s in shortcuts)
    elif "option A" in info.shortcut:
        assert any(isinstance(s, ZeroPadShortcut) for s in shortcuts) and all(s is not None for s in shortcuts)
    else:
        assert info.shortcut.startswith("projection") and any(isinstance(s, nn.Sequential) for s in shortcuts)


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_the_shortcut_text_says_what_a_projection_is_under_each_norm(norm: str) -> None:
    info = model_info("resnet18").for_norm(norm)
    projection = next(b.shortcut for stage in create_model("resnet18", norm=norm).stages for b in stage
                      if isinstance(b.shortcut, nn.Sequential))  # fmt: skip
    has_norm = not isinstance(projection[1], nn.Identity)
    assert ("1x1 conv + norm" in info.shortcut) is has_norm is (norm != "none")
    assert ("1x1 conv with bias, no norm" in info.shortcut) is (projection[0].bias is not None) is (norm == "none")
    assert model_info("resnet20").for_norm(norm).shortcut == model_info("resnet20").shortcut  # option A: no conv


def test_model_info_block_kinds() -> None:
    assert model_info("resnet50").block == "bottleneck"
    assert model_info("resnet18").block == model_info("plain20").block == "basic"


@pytest.mark.parametrize("name", ["resnet8", "plain8"])
def test_traces_without_graph_breaks(name: str) -> None:
    # Dynamo tracing only (backend="eager"): fails on any graph break or
    # data-dependent Python control flow, without paying for codegen.
    torch._dynamo.reset()
    model = create_model(name).to(memory_format=torch.channels_last).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = _images().to(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    torch._dynamo.reset()


def _out_of_place(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A block's forward with the shortcut added into a new tensor: the reference for its in-place add."""
    out = block.relu(block.norm1(block.conv1(x)))
    if isinstance(block, Bottleneck):
        out = block.relu(block.norm2(block.conv2(out)))
        out = block.norm3(block.conv3(out))
    else:
        out = block.norm2(block.conv2(out))
    return block.relu(out + block.shortcut(x) if block.shortcut is not None else out)


# One model per kind of block and shortcut: zero-pad (resnet8), projection (resnet18),
# bottleneck (resnet50), none (plain8).
@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize("norm", ["batch", "group", "none"])
@pytest.mark.parametrize("name", ["resnet8", "resnet18", "resnet50", "plain8"])
def test_blocks_add_in_place_what_an_out_of_place_add_computes(
    name: str, norm: str, amp: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output and every gradient bit for bit, in fp32 and under CPU bf16 autocast."""
    torch.manual_seed(0)
    model, x = create_model(name, norm=norm), _images(2)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            out = model(x)
        out.float().square().sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    out, grads = run()
    for cls in (BasicBlock, Bottleneck):
        monkeypatch.setattr(cls, "forward", _out_of_place)
    ref_out, ref_grads = run()
    assert out.dtype == ref_out.dtype and torch.equal(out, ref_out)
    assert all(torch.equal(g, r) for g, r in zip(grads, ref_grads, strict=True))
