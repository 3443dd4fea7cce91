"""The zoo's losses on hand-checkable inputs."""
import math

import torch
import torch.nn.functional as F

from ablate.zoo import objectives


def test_clip_loss_values():
    e = torch.eye(3)
    perfect = objectives.clip_loss(e, e, torch.tensor(math.log(100.0)))
    assert perfect.item() < 1e-3
    uniform = objectives.clip_loss(torch.ones(3, 2), torch.ones(3, 2), torch.tensor(0.0))
    assert uniform.item() == torch.tensor(math.log(3.0)).item()


def test_siglip_loss_value():
    img, txt = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t, b = torch.tensor(math.log(10.0)), torch.tensor(-10.0)
    # positives: logit 10*1-10 = 0 -> -log sigmoid(0); negatives: logit -10 -> -log sigmoid(10)
    expected = (2 * -F.logsigmoid(torch.tensor(0.0)) + 2 * -F.logsigmoid(torch.tensor(10.0))) / 2
    torch.testing.assert_close(objectives.siglip_loss(img, txt, t, b), expected)


def test_aim_mask_is_prefix_causal():
    mask = objectives.aim_mask(5, torch.tensor([1, 3]))[:, 0] == 0      # True where attention is allowed
    assert mask[0].tolist() == torch.tril(torch.ones(5, 5, dtype=torch.bool)).tolist()
    assert mask[1, 0].tolist() == [True, True, True, False, False]      # prefix of 3 sees itself both ways
    assert mask[1, 3].tolist() == [True, True, True, True, False]


def test_aim_targets_are_normalised_patches():
    px = torch.randn(2, 3, 16, 16) * 5 + 3
    t = objectives.aim_targets(px, 8)
    assert t.shape == (2, 4, 192)
    torch.testing.assert_close(t.mean(-1), torch.zeros(2, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(px[0, :, :8, 8:16].permute(1, 2, 0).reshape(-1), t[0, 1] * px[0, :, :8, 8:16].std() +
                               px[0, :, :8, 8:16].mean(), atol=1e-3, rtol=1e-3)


def test_aim_loss_skips_prefix():
    targets = torch.zeros(1, 4, 2)
    pred = torch.zeros(1, 4, 2)
    pred[0, 0] = 10.0                                                   # wrong, but inside the prefix
    assert objectives.aim_loss(pred, targets, torch.tensor([2])).item() == 0.0
    assert objectives.aim_loss(pred, targets, torch.tensor([1])).item() > 0.0
