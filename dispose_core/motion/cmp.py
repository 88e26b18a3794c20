"""CMP (conditional motion propagation, ``resnet50_vip+mpii_liteflow``) as a plain torch module.

Same parameter names as the official checkpoint (minus its ``module.`` wrapper prefix), widths
taken from a config that the loader reads off the checkpoint's tensor shapes, so the real 28.6 M
parameter file and the tiny test files load through one strict path.

Network (official ``CMP`` with ``MotionDecoderSkipLayer``): a dilated ResNet-50 encodes the image
(x*2-1, output stride 8) plus two skip features; a shallow net encodes the 4-channel sparse input
(flow x, flow y, mask, mask); a 4-branch decoder predicts 2 x 99 bin logits at half resolution,
turned into a flow by a per-axis softmax over bin centres and a bilinear (align_corners) upsample.

Speed: everything that depends on the image only - the ResNet, the decoder's two skip
convolutions and the image part of each decoder convolution over a concatenation - is computed
once per video (``encode_image``); the per-frame part runs batched over frames (``propagate``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ModelFileError
from ..loading.checkpoint import load_strict, read_checkpoint, strip_prefix
from ..loading.layout import BY_KEY

_EXPANSION = 4  # ResNet-50 bottleneck
_LAYER_STRIDES = (1, 2, 2, 2)  # before the dilation trick; decides where downsample convs exist
_LAYER_DILATIONS = (1, 1, 2, 4)  # layer3/layer4: stride 1, dilated (output stride 8)
PREFIX = "module."


@dataclass(frozen=True)
class CMPConfig:
    """Widths of the network; defaults are the real ``resnet50_vip+mpii_liteflow`` values."""

    stem: int = 64
    planes: tuple[int, int, int, int] = (64, 128, 256, 512)
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    image_dim: int = 256
    sparse_hidden: int = 16
    sparse_dim: int = 16
    branch: int = 128
    fusion8: int = 256
    skip4: int = 128
    fusion4: int = 128
    skip2: int = 32
    fusion2: int = 64
    nbins: int = 99
    fmax: float = 50.0  # not stored in the checkpoint; the official value

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, torch.Tensor]) -> CMPConfig:
        """Read the widths off the tensor shapes (unprefixed keys); defaults where a key is absent.

        Absent keys are not an error here: the strict key check that follows lists them.
        """
        def width(key: str, default: int) -> int:
            return int(sd[key].shape[0]) if key in sd and sd[key].ndim >= 1 else default

        d = cls()
        blocks = []
        for i, default in enumerate(d.blocks):
            prefix = f"image_encoder.layer{i + 1}."
            found = {int(k[len(prefix):].split(".")[0]) for k in sd if k.startswith(prefix)}
            blocks.append(max(found) + 1 if found else default)
        head = width("flow_decoder.head.weight", 2 * d.nbins)
        return cls(
            stem=width("image_encoder.conv1.weight", d.stem),
            planes=tuple(width(f"image_encoder.layer{i + 1}.0.conv1.weight", p) for i, p in enumerate(d.planes)),
            blocks=tuple(blocks),
            image_dim=width("image_encoder.conv5.weight", d.image_dim),
            sparse_hidden=width("flow_encoder.features.0.weight", d.sparse_hidden),
            sparse_dim=width("flow_encoder.features.4.weight", d.sparse_dim),
            branch=width("flow_decoder.decoder1.0.weight", d.branch),
            fusion8=width("flow_decoder.fusion8.0.weight", d.fusion8),
            skip4=width("flow_decoder.skipconv4.0.weight", d.skip4),
            fusion4=width("flow_decoder.fusion4.0.weight", d.fusion4),
            skip2=width("flow_decoder.skipconv2.0.weight", d.skip2),
            fusion2=width("flow_decoder.fusion2.0.weight", d.fusion2),
            nbins=head // 2 if head % 2 == 0 else d.nbins,
        )


def _conv_bn_relu(cin: int, cout: int, k: int = 3, **kw) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, padding=k // 2, **kw), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _bin_centers(cfg: CMPConfig) -> torch.Tensor:
    """Centres of the flow bins: -fmax + step/2 ... fmax - step/2, step = 2 fmax / nbins."""
    step = 2 * cfg.fmax / cfg.nbins
    return torch.arange(cfg.nbins, dtype=torch.float32) * step - cfg.fmax + step / 2


class _Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int, dilation: int, downsample: bool):
        super().__init__()
        cout = planes * _EXPANSION
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if downsample else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ImageEncoder(nn.Module):
    """Dilated ResNet-50 (output stride 8) + 1x1 projection; also returns its two skip features."""

    def __init__(self, cfg: CMPConfig):
        super().__init__()
        self.conv1 = nn.Conv2d(3, cfg.stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = cfg.stem
        for i, (planes, n) in enumerate(zip(cfg.planes, cfg.blocks)):
            dilation = _LAYER_DILATIONS[i]
            stride = _LAYER_STRIDES[i] if dilation == 1 else 1
            downsample = _LAYER_STRIDES[i] != 1 or cin != planes * _EXPANSION
            layer = [_Bottleneck(cin, planes, stride, dilation, downsample)]
            cin = planes * _EXPANSION
            layer += [_Bottleneck(cin, planes, 1, dilation, False) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.conv5 = nn.Conv2d(cin, cfg.image_dim, 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        half = self.relu(self.bn1(self.conv1(image)))  # 1/2
        quarter = self.layer1(self.maxpool(half))  # 1/4
        x = self.layer4(self.layer3(self.layer2(quarter)))  # 1/8
        return self.conv5(x), half, quarter


class FlowEncoder(nn.Module):
    """``shallownet8x``: sparse flow + mask (4 channels) -> features at 1/8."""

    def __init__(self, cfg: CMPConfig):
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn_relu(4, cfg.sparse_hidden, 5, stride=2),
            nn.MaxPool2d(2, 2),
            *_conv_bn_relu(cfg.sparse_hidden, cfg.sparse_dim, 3),
            nn.AvgPool2d(2, 2),
        )

    def forward(self, sparse: torch.Tensor) -> torch.Tensor:
        return self.features(sparse)


_POOLS = (1, 2, 4, 8)  # the decoder's four propagation scales (decoder1, decoder2, decoder4, decoder8)


def _branch(cin: int, width: int, pool: int) -> nn.Sequential:
    layers = [nn.MaxPool2d(pool, pool)] if pool > 1 else []
    layers += _conv_bn_relu(cin, width) + _conv_bn_relu(width, width) + _conv_bn_relu(width, width)
    return nn.Sequential(*layers)


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)


def _pool(x: torch.Tensor, k: int) -> torch.Tensor:
    return x if k == 1 else F.max_pool2d(x, k, k)


def _conv_part(conv: nn.Conv2d, x: torch.Tensor, channels: slice, with_bias: bool) -> torch.Tensor:
    """What input ``channels`` of ``conv`` contribute: a conv over a concatenation is the sum of
    its parts, so the image-only part can be computed once and the per-frame part per frame."""
    bias = conv.bias if with_bias else None
    return F.conv2d(x, conv.weight[:, channels], bias, conv.stride, conv.padding, conv.dilation)


class ImageFeatures(NamedTuple):
    """Everything CMP computes from the image alone (batch 1), reused for every frame: the
    image-only contributions to the decoder's convolutions over concatenated inputs."""

    branches: tuple[torch.Tensor, ...]  # first conv of decoder1/2/4/8 on the (pooled) image encoding
    fusion4: torch.Tensor  # fusion4's conv on skipconv4(layer1), bias included
    fusion2: torch.Tensor  # fusion2's conv on skipconv2(conv1), bias included


class FlowDecoder(nn.Module):
    """``MotionDecoderSkipLayer``: multi-scale propagation at 1/8, then two skip-fusion stages to 1/2.

    The official decoder convolves concatenations [image encoding, sparse encoding] and
    [upsampled features, image skip]; here those convolutions are split (exactly, up to float
    rounding) into the image part, computed once by ``image_terms``, and the per-frame part.
    """

    def __init__(self, cfg: CMPConfig):
        super().__init__()
        cin = cfg.image_dim + cfg.sparse_dim
        self.image_dim, self.fusion8_dim, self.fusion4_dim = cfg.image_dim, cfg.fusion8, cfg.fusion4
        self.decoder1 = _branch(cin, cfg.branch, 1)
        self.decoder2 = _branch(cin, cfg.branch, 2)
        self.decoder4 = _branch(cin, cfg.branch, 4)
        self.decoder8 = _branch(cin, cfg.branch, 8)
        self.fusion8 = nn.Sequential(*_conv_bn_relu(4 * cfg.branch, cfg.fusion8))
        self.skipconv4 = nn.Sequential(*_conv_bn_relu(cfg.planes[0] * _EXPANSION, cfg.skip4))
        self.fusion4 = nn.Sequential(*_conv_bn_relu(cfg.fusion8 + cfg.skip4, cfg.fusion4))
        self.skipconv2 = nn.Sequential(*_conv_bn_relu(cfg.stem, cfg.skip2))
        self.fusion2 = nn.Sequential(*_conv_bn_relu(cfg.fusion4 + cfg.skip2, cfg.fusion2))
        self.head = nn.Conv2d(cfg.fusion2, 2 * cfg.nbins, 1)

    def _branches(self) -> tuple[tuple[nn.Conv2d, nn.Sequential, int], ...]:
        """(first conv, layers after it, pooling) of each propagation branch."""
        out = []
        for pool, branch in zip(_POOLS, (self.decoder1, self.decoder2, self.decoder4, self.decoder8)):
            first = 0 if pool == 1 else 1
            out.append((branch[first], branch[first + 1:], pool))
        return tuple(out)

    def image_terms(self, encoded: torch.Tensor, quarter: torch.Tensor, half: torch.Tensor) -> ImageFeatures:
        """Image-only terms from the image encoding and the encoder's 1/4 and 1/2 skip features."""
        image = slice(0, self.image_dim)
        branches = tuple(_conv_part(conv, _pool(encoded, pool), image, True) for conv, _, pool in self._branches())
        skip = slice(self.fusion8_dim, None)
        fusion4 = _conv_part(self.fusion4[0], self.skipconv4(quarter), skip, True)
        fusion2 = _conv_part(self.fusion2[0], self.skipconv2(half), slice(self.fusion4_dim, None), True)
        return ImageFeatures(branches, fusion4, fusion2)

    def forward(self, sparse: torch.Tensor, terms: ImageFeatures) -> torch.Tensor:
        """Bin logits from the sparse encoding (B, sparse_dim, h/8, w/8) and the image terms."""
        frame = slice(self.image_dim, None)
        scales = [rest(_conv_part(conv, _pool(sparse, pool), frame, False) + term)
                  for (conv, rest, pool), term in zip(self._branches(), terms.branches)]
        x1 = scales[0]
        f8 = self.fusion8(torch.cat([x1] + [_up(x, x1) for x in scales[1:]], 1))
        f8 = _up(f8, terms.fusion4)
        f4 = self.fusion4[1:](_conv_part(self.fusion4[0], f8, slice(0, self.fusion8_dim), False) + terms.fusion4)
        f4 = _up(f4, terms.fusion2)
        f2 = self.fusion2[1:](_conv_part(self.fusion2[0], f4, slice(0, self.fusion4_dim), False) + terms.fusion2)
        return self.head(f2)


class CMPModel(nn.Module):
    """CMP with the image encoding split from the per-frame propagation."""

    def __init__(self, config: CMPConfig | None = None):
        super().__init__()
        self.config = config or CMPConfig()
        self.image_encoder = ImageEncoder(self.config)
        self.flow_encoder = FlowEncoder(self.config)
        self.flow_decoder = FlowDecoder(self.config)
        self.register_buffer("bin_centers", _bin_centers(self.config), persistent=False)

    def encode_image(self, image: torch.Tensor) -> ImageFeatures:
        """``image`` (1, 3, h, w) RGB in [0, 1] (the official x*2-1, not the config's mean/std)."""
        encoded, half, quarter = self.image_encoder(image.contiguous() * 2 - 1)
        return self.flow_decoder.image_terms(encoded, quarter, half)

    def logits(self, features: ImageFeatures, sparse_flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Bin logits (B, 2 nbins, h/2, w/2) for a sparse flow and its mask (B, 2, h, w)."""
        sparse = self.flow_encoder(torch.cat([sparse_flow, mask.to(sparse_flow.dtype)], 1))
        return self.flow_decoder(sparse, features)

    def propagate(self, features: ImageFeatures, sparse_flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Dense flow (B, 2, h, w) in input pixels from a sparse flow and its mask (B, 2, h, w)."""
        flow = self.logits_to_flow(self.logits(features, sparse_flow, mask))
        if flow.shape[-2:] != sparse_flow.shape[-2:]:
            flow = F.interpolate(flow, size=sparse_flow.shape[-2:], mode="bilinear", align_corners=True)
        return flow

    def logits_to_flow(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected displacement per axis: softmax over the bins times the bin centres."""
        b, _, h, w = logits.shape
        probs = logits.view(b * 2, self.config.nbins, h * w).softmax(1)  # x bins, then y bins
        return (self.bin_centers.to(logits.dtype) @ probs).view(b, 2, h, w)

    def forward(self, image: torch.Tensor, sparse_flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """One full network call per image (the official way; kept for comparison and single frames)."""
        return torch.cat([
            self.propagate(self.encode_image(image[i:i + 1]), sparse_flow[i:i + 1], mask[i:i + 1])
            for i in range(image.shape[0])
        ])

    @property
    def dtype(self) -> torch.dtype:
        return self.flow_decoder.head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.flow_decoder.head.weight.device


def _unwrap(obj: Mapping, path: Path) -> dict[str, torch.Tensor]:
    """The state dict of an official container ({'state_dict', 'step', ...}) or a flat file, unprefixed."""
    sd = obj["state_dict"] if isinstance(obj.get("state_dict"), Mapping) else obj
    not_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ModelFileError(
            f"CMP: '{path}' is not a CMP checkpoint (entries that are not tensors: {not_tensors[:5]}). "
            f"Use {BY_KEY['cmp'].name} from {BY_KEY['cmp'].source}."
        )
    if sd and all(k.startswith(PREFIX) for k in sd):
        return strip_prefix(sd, PREFIX)
    return dict(sd)


def load_cmp(path: str | Path, dtype: torch.dtype = torch.float32) -> CMPModel:
    """Load ``ckpt_iter_42000.pth.tar`` (or a flat/safetensors state dict) strictly, in eval mode.

    Accepts keys with or without the ``module.`` prefix. A file written before BatchNorm counted
    its batches (no ``num_batches_tracked`` at all) is accepted: those counters are unused in eval.
    """
    path = BY_KEY["cmp"].require(path)
    sd = _unwrap(read_checkpoint(path, "CMP"), path)
    with torch.device("meta"):
        model = CMPModel(CMPConfig.from_state_dict(sd))
    expected = model.state_dict()
    if not any(k.endswith("num_batches_tracked") for k in sd):
        sd.update({k: torch.zeros((), dtype=torch.long) for k in expected if k.endswith("num_batches_tracked")})
    load_strict(model, sd, file=path, what="CMP")
    model.bin_centers = _bin_centers(model.config)  # built on the meta device with the model
    return model.to(dtype=dtype).eval().requires_grad_(False)


