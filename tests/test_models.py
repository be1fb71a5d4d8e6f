import numpy as np
import pytest
import torch

from hccr.augment import AugmentConfig, gaussian_blur, random_warp, stretch_to_content
from hccr.losses import binary_focal_loss, deep_supervision
from hccr.models import create_model, list_models
from hccr.preprocess import gaussian_kernel1d

SIZES = {"charnet": 128, "charnet-s": 64, "resnet-lean": 64}


@pytest.mark.parametrize("name", [m for m in list_models() if m != "charnet"])
def test_model_contract(name):
    torch.manual_seed(0)
    m = create_model(name, num_classes=7, image_size=SIZES[name])
    x = torch.rand(3, 1, SIZES[name], SIZES[name])
    logits, aux = m.train()(x)
    assert logits.shape == (3, 7) and all(a.shape == (3, 7) for a in aux)
    (logits.sum() + sum(a.sum() for a in aux)).backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    m.eval()
    out = m(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 7)  # no aux outputs at prediction time
    torch.testing.assert_close(m.forward_head(m.forward_features(x)), out)


@pytest.mark.slow
def test_charnet_at_256_matches_the_paper():
    m = create_model("charnet", num_classes=5, image_size=256)
    x = torch.rand(2, 1, 256, 256)
    outs = m._stage_outputs(x)
    assert [tuple(o.shape[1:]) for o in outs] == [(160, 64, 64), (320, 16, 16), (640, 4, 4), (1280, 1, 1), (512, 1, 1)]
    assert m.aux_heads[0][1].in_features == 655_360
    logits, aux = m.train()(x)
    assert logits.shape == (2, 5) and len(aux) == 4
    deep_supervision(logits, aux, torch.tensor([1, 3]), lambda a, y: binary_focal_loss(a, y),
                     1.0, (0.025, 0.05, 0.5, 0.2)).backward()
    assert m.aux_heads[0][1].weight.grad.abs().sum() > 0
    big = create_model("charnet", num_classes=7330, image_size=256)
    assert 390e6 < sum(p.numel() for p in big.parameters()) < 420e6  # "about 400 M"


def test_charnet_s_never_runs_at_full_resolution():
    # The speed of CharNet-S on CPUs comes from its small maps: stages at 16, 8, 4, 2 px for 64 px input.
    m = create_model("charnet-s", num_classes=5, image_size=64)
    outs = m._stage_outputs(torch.rand(2, 1, 64, 64))
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]


def test_unknown_model_argument_is_a_clear_error():
    from hccr.errors import HccrError

    with pytest.raises(HccrError, match="has no argument 'widht'"):
        create_model("charnet-s", num_classes=5, image_size=64, widht=3)


def test_checkpoint_rebuilds_a_non_default_architecture(tmp_path):
    from hccr.checkpoint import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    m = create_model("charnet-s", num_classes=5, image_size=32, widths=(8, 16, 16, 32), strides=(2, 2, 1, 1),
                     conv_stages=(1, 3)).eval()
    save_checkpoint(tmp_path / "ck", m, {"arch": "charnet-s", "charset": "一二三四五",
                                          "preprocessing": {"image_size": 32, "ink": "high"},
                                          "model_args": {"num_classes": 5, "image_size": 32, **m.arch_args}})
    loaded, meta = load_checkpoint(tmp_path / "ck.json")
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(loaded(x), m(x))
    assert meta["model_args"]["strides"] == [2, 2, 1, 1] and meta["model_args"]["conv_stages"] == [1, 3]


def _aux_checkpoint(tmp_path):
    from hccr.checkpoint import save_checkpoint

    torch.manual_seed(0)
    m = create_model("charnet-s", num_classes=5, image_size=32, widths=(8, 16, 16, 32), strides=(2, 2, 1, 1)).eval()
    assert len(m.aux_heads) == 4
    meta = {"arch": "charnet-s", "charset": "一二三四五", "preprocessing": {"image_size": 32, "ink": "high"},
            "model_args": {"num_classes": 5, "image_size": 32, **m.arch_args}}
    return m, save_checkpoint(tmp_path / "ck", m, meta)


def test_prediction_loads_a_run_without_its_training_only_heads(tmp_path):
    """The paper's CharNet at 256 px is 400 M parameters, 384 M of them in auxiliary heads that no prediction reads:
    predict, export and package load the network without them, and it answers exactly as the whole one does."""
    from hccr.checkpoint import load_checkpoint
    from hccr.predict import Recognizer

    m, path = _aux_checkpoint(tmp_path)
    lean, meta = load_checkpoint(path, heads=False)
    assert len(lean.aux_heads) == 0 and meta["model_args"]["aux"] is False
    whole, _ = load_checkpoint(path)
    assert len(whole.aux_heads) == 4  # averaging and fine-tuning still get every tensor
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(lean(x), m(x))
    assert not any(n.startswith("aux_heads") for n in Recognizer.from_checkpoint(path).model.state_dict())


def test_the_paper_network_at_its_own_size_is_within_the_loaders_limit(tmp_path):
    """A paper-1..3 run (CharNet at 256 px, 6,763 classes, heads included) must load: the parameter limit that
    guards against hostile metadata once refused every paper run after its training."""
    import json

    from hccr.checkpoint import MAX_PARAMETERS, load_checkpoint
    from hccr.errors import HccrError

    with torch.device("meta"):
        paper = sum(p.numel() for p in create_model("charnet", num_classes=6763, image_size=256).parameters())
    assert 390e6 < paper <= MAX_PARAMETERS
    _, path = _aux_checkpoint(tmp_path)
    meta = json.loads(path.read_text())
    meta.update(arch="charnet", model_args={"num_classes": 5, "image_size": 256, "aux": True},
                preprocessing={**meta["preprocessing"], "image_size": 256})
    path.write_text(json.dumps(meta))
    with pytest.raises(HccrError) as e:  # these weights are not that network's: refused for that, not for its size
        load_checkpoint(path)
    assert "at most" not in str(e.value) and "weights do not fit charnet" in str(e.value), str(e.value)


def test_focal_loss_matches_float64_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 11, generator=g) * 3
    y = torch.randint(0, 11, (6,), generator=g)
    z, t = logits.double(), torch.nn.functional.one_hot(y, 11).double()
    p = 1 / (1 + torch.exp(-z))
    bce = -(t * torch.log(p) + (1 - t) * torch.log(1 - p))
    pt = t * p + (1 - t) * (1 - p)
    at = t * 0.25 + (1 - t) * 0.75
    ref = (at * (1 - pt) ** 4 * bce).mean()
    got = binary_focal_loss(logits, y, gamma=4.0, alpha=0.25)
    assert abs(float(got) - float(ref)) < 1e-6


def test_blur_has_opencv_semantics():
    img = torch.rand(1, 1, 9, 9, dtype=torch.float64)
    k = gaussian_kernel1d(7, 50.0)
    assert np.allclose(k, k.mean(), rtol=1e-3)  # sigma 50 on 7 taps is nearly a box filter
    # Reference: 2-D correlation with BORDER_REFLECT_101 padding, in numpy.
    a = np.pad(img[0, 0].numpy(), 3, mode="reflect")
    k2 = np.outer(k, k)
    ref = np.array([[np.sum(a[i : i + 7, j : j + 7] * k2) for j in range(9)] for i in range(9)])
    np.testing.assert_allclose(gaussian_blur(img, 7, 50.0)[0, 0].numpy(), ref, atol=1e-12)


def test_augmentation_is_batched_and_identity_when_off():
    x = torch.zeros(4, 1, 32, 32)
    x[:, :, 8:24, 14:18] = 1
    assert torch.equal(random_warp(x, AugmentConfig()), x)
    y = random_warp(x, AugmentConfig(rotation=15, shear=0.2, scale=(0.8, 1.1), translate=0.1, elastic=0.05),
                    torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.allclose(y[0], y[1])  # a different warp per sample
    assert 0.5 < float(y.sum() / x.sum()) < 1.6  # ink mass roughly preserved


def test_stretch_fills_the_square():
    x = torch.zeros(1, 1, 32, 32)
    x[:, :, :, 8:24] = 1  # a tall character padded left and right (aspect kept)
    out = stretch_to_content(x, torch.tensor([[64, 32]]))  # original 64 high, 32 wide
    assert out[0, 0, 16, 1] > 0.9 and out[0, 0, 16, 30] > 0.9


def test_pen_and_ink_augmentation_change_stroke_weight_and_darkness():
    from hccr.augment import AugmentConfig, random_pen_ink

    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 8:24, 14:18] = 1.0  # a 4 px wide stroke, full ink
    g = torch.Generator().manual_seed(0)
    y = random_pen_ink(x, AugmentConfig(pen=1.0), g)
    ink = y.sum((1, 2, 3))
    heavier, lighter = ink > x[0].sum() * 1.2, ink < x[0].sum() * 0.8
    assert heavier.any() and lighter.any() and bool((heavier | lighter).all())  # every sample changed weight
    z = random_pen_ink(x, AugmentConfig(ink=0.5), g)
    peak = z.amax((1, 2, 3))
    assert float(peak.min()) >= 0.5 and float(peak.min()) < 0.9 and bool((z <= x).all())  # paler, never darker
    assert torch.equal(random_pen_ink(x, AugmentConfig(), g), x)  # off: untouched


def test_blur_and_noise_augmentation_soften_strokes_and_add_grain_per_sample():
    from hccr.augment import AugmentConfig, batched_blur, random_pen_ink

    x = torch.zeros(64, 1, 32, 32)
    x[:, :, 8:24, 14:18] = 1.0
    g = torch.Generator().manual_seed(0)
    y = random_pen_ink(x, AugmentConfig(blur=0.5, blur_sigma=(0.8, 1.2)), g)
    soft = y.amax((1, 2, 3)) < 0.99
    assert 10 < int(soft.sum()) < 54  # about half the samples blurred, the others untouched
    assert torch.equal(y[~soft], x[~soft])
    assert torch.allclose(y.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=1e-3)  # ink spread, not lost
    # Each sample its own width: a wider sigma spreads further.
    b = batched_blur(x[:2], torch.tensor([0.5, 2.0]), 2.0)
    assert float(b[0, 0, 16, 12]) < float(b[1, 0, 16, 12])
    n = random_pen_ink(x, AugmentConfig(noise=0.2), g)
    assert float(n.min()) >= 0 and float(n.max()) <= 1 and float((n - x).abs().mean()) > 0.01


def test_erase_blanks_one_rectangle_in_about_the_chosen_share_of_samples():
    from hccr.augment import AugmentConfig, random_erase

    x = torch.ones(200, 1, 32, 32)  # all ink: what is erased shows as zeros
    y = random_erase(x, AugmentConfig(erase=0.5, erase_size=(0.25, 0.25)), torch.Generator().manual_seed(0))
    gone = (y == 0).sum((1, 2, 3))
    hit = gone > 0
    assert 70 < int(hit.sum()) < 130  # about half the samples
    assert torch.equal(y[~hit], x[~hit])
    assert bool(((gone[hit] >= 7 * 7) & (gone[hit] <= 9 * 9)).all())  # one 8x8-ish box (a quarter of each side)
    rows = (y[hit] == 0).any(3).squeeze(1).float()  # the erased rows of each sample are contiguous
    assert bool((rows.diff(dim=1).abs().sum(1) <= 2).all())
    assert torch.equal(random_erase(x, AugmentConfig(erase=0.0)), x)


def test_warp_basis_is_affine_grid_plus_bicubic_field():
    """The augmentation's one matrix product equals torch's affine_grid + bicubic interpolate."""
    import torch.nn.functional as F

    from hccr.augment import _warp_basis

    g = torch.Generator().manual_seed(0)
    theta = torch.randn(3, 2, 3, generator=g)
    noise = torch.randn(3, 2, 4, 4, generator=g)
    ref = F.affine_grid(theta, [3, 1, 24, 20], align_corners=False) + \
        F.interpolate(noise, size=(24, 20), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    coef = torch.cat([theta, noise.reshape(3, 2, 16)], -1).reshape(6, -1)
    ours = (coef @ _warp_basis(24, 20, 4, "cpu")).view(3, 2, 24, 20).permute(0, 2, 3, 1)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_multiply_accumulates_are_counted_per_image():
    """benchmarks/train_step reports each variant's work per image beside its speed."""
    from torch import nn

    from hccr.models.flops import count_macs

    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 5))
    assert count_macs(net, 4) == 2 * 4 * 4 * 9 + 32 * 5  # 288 for the conv, 160 for the layer
    assert net.training  # the model is left as it was given
