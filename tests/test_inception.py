"""models.inception: Inception-v3 features from a local weights file (FID Inception or torchvision),
tried on randomly initialised weights saved here; files that are not one are refused naming them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import one_torch_thread

from models.inception import load_inception, tf1_resize
from models.pretrained import ModelFileError

one_thread = pytest.fixture(scope="module", autouse=True)(one_torch_thread)


def random_inception(path, classes: int, aux: bool = False, seed: int = 0):
    """A random torchvision inception_v3 state dict with ``classes`` outputs, saved to ``path``."""
    from torchvision.models import inception_v3

    torch.manual_seed(seed)
    net = inception_v3(weights=None, aux_logits=aux, init_weights=False, num_classes=classes)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(net.state_dict(), str(path))
    else:
        torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def fid_file(tmp_path_factory):
    return random_inception(tmp_path_factory.mktemp("inception") / "pt_inception-random.pth", 1008)


def test_tf1_resize_has_no_half_pixel_offset():
    x = torch.tensor([0.0, 10.0]).view(1, 1, 1, 2).expand(1, 1, 2, 2)
    assert tf1_resize(x, 4)[0, 0, 0].tolist() == [0.0, 5.0, 10.0, 10.0]  # TF1: source = i * in / out, edge repeated


def test_fid_inception_file_gives_pool_features_and_probabilities(fid_file):
    net = load_inception(fid_file)
    assert net.kind == "fid" and net.name == "FID Inception-v3 (TF 2015-12-05 weights, pt_inception-random.pth)"
    images = torch.rand(3, 3, 32, 32)
    pool, probs = net(images)
    assert pool.shape == (3, 2048) and probs.shape == (3, 1008) and torch.isfinite(pool).all()
    assert torch.allclose(probs.sum(1), torch.ones(3), atol=1e-5)
    assert torch.equal(pool, net(images)[0])  # eval mode, deterministic
    # the graph's pools leave the padding out (and the last block max-pools): not what torchvision's blocks compute
    from torchvision.models import inception_v3

    plain = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008, transform_input=False).eval()
    plain.load_state_dict(torch.load(fid_file, weights_only=True))
    swapped, net.net = net.net, plain
    assert not torch.allclose(net(images)[0], pool, rtol=1e-3)
    net.net = swapped


def test_torchvision_state_dict_with_aux_logits_loads_as_torchvision(tmp_path):
    net = load_inception(random_inception(tmp_path / "inception_v3.safetensors", 1000, aux=True))
    assert net.kind == "torchvision" and "not the FID Inception" in net.name
    pool, probs = net(torch.rand(2, 3, 40, 40))
    assert pool.shape == (2, 2048) and probs.shape == (2, 1000)


def test_a_file_that_is_not_an_inception_state_dict_is_refused_naming_it(tmp_path):
    from torchvision.models import resnet18

    torch.save(resnet18().state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(ModelFileError, match=r"resnet.pth: not an Inception-v3 state dict \(fc.weight of shape \(1000, 512\)"):
        load_inception(tmp_path / "resnet.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a weights file")
    with pytest.raises(ModelFileError, match="junk.pth: not a"):
        load_inception(tmp_path / "junk.pth")
    state = torch.load(random_inception(tmp_path / "cut.pth", 1008), weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("Mixed_7c")}, tmp_path / "cut.pth")
    with pytest.raises(ModelFileError, match=r"cut.pth: not an Inception-v3 state dict \(\d+ tensors missing \(e.g. Mixed_7c"):
        load_inception(tmp_path / "cut.pth")
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_inception(tmp_path / "nothing.pth")


def test_inception_scores_of_generated_sets_beside_the_real_images(fid_file):
    from flows.jobs.diffusion_eval import inception_scores

    real = torch.rand(6, 3, 16, 16)
    report = inception_scores(str(fid_file), {"generated": real.flip(3), "untrained": torch.rand(6, 3, 16, 16)}, real)
    assert report["name"].startswith("FID Inception-v3") and report["weights"] == str(fid_file) and report["n_images"] == 6
    sc = report["scores"]
    assert set(sc) == {"generated", "untrained", "real", "real half vs half (floor)"}
    assert all(np.isfinite(sc[k]["fid"]["value"]) and sc[k]["is"] >= 1 - 1e-6 for k in ("generated", "untrained"))
