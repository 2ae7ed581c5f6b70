import pytest
import torch

from intriguing import imagenet


def test_efficientnet_lite0_loads_strictly_and_classifies_the_shipped_images():
    net = imagenet.efficientnet_lite0()
    samples = imagenet.imagenet_samples()
    assert samples.images.shape == (20, 3, 224, 224) and 0 <= samples.images.min() and samples.images.max() <= 1
    with torch.no_grad():
        correct = (net(samples.images).argmax(1) == samples.labels).sum().item()
    # A network of about 75 % top-1 gets 13 or more of 20 right with probability about 0.9; ours gets 17.
    assert correct >= 13


def test_a_state_dict_with_a_missing_key_is_refused(tmp_path):
    state = imagenet.efficientnet_lite0().state_dict()
    del state["_fc.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(RuntimeError, match="_fc.bias"):
        imagenet.efficientnet_lite0(tmp_path / "broken.pth")


def test_the_shipped_weights_are_checksummed(monkeypatch):
    monkeypatch.setattr(imagenet, "EFFICIENTNET_LITE0_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="fails its checksum"):
        imagenet.efficientnet_lite0()


def test_image_folder_reads_the_imagefolder_layout(tmp_path, monkeypatch):
    from PIL import Image

    for label, colour in [("a_class", (255, 0, 0)), ("b_class", (0, 0, 255))]:
        (tmp_path / label).mkdir()
        Image.new("RGB", (40, 30), colour).save(tmp_path / label / "x.png")
    monkeypatch.setenv(imagenet.IMAGENET_DIR_VAR, str(tmp_path))
    images = imagenet.image_folder(size=16)
    assert images.images.shape == (2, 3, 16, 16) and images.labels.tolist() == [0, 1]
    assert images.images[0, 0].mean() == pytest.approx(1.0) and images.images[1, 2].mean() == pytest.approx(1.0)
    monkeypatch.delenv(imagenet.IMAGENET_DIR_VAR)
    with pytest.raises(FileNotFoundError, match="INTRIGUING_IMAGENET_DIR"):
        imagenet.image_folder()


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.jpg"):
        imagenet.image_folder(tmp_path)


def test_alexnet_says_why_it_is_unavailable():
    try:
        imagenet.alexnet()
    except RuntimeError as reason:
        assert "torchvision" in str(reason) or "weights" in str(reason)
