"""World-model architectures: official parameter counts, shapes, attention, losses."""

import torch

from geniedrive.pipelines.occworld.attention import DeformableAttention2D, MultiHeadAttention
from geniedrive.pipelines.occworld.configs import CONFIGS, WorldModelConfig, get_config
from geniedrive.pipelines.occworld.forecaster import Forecaster, quat_to_rotmat, sinusoidal, step_from_prediction
from geniedrive.pipelines.occworld.params import parameter_report
from geniedrive.pipelines.occworld.vae import TriplaneVAE, kl_loss
from tests.helpers import run_cli


def test_paper_config_has_the_released_parameter_counts():
    r = parameter_report(CONFIGS["paper"])
    assert r["vae"]["total"] == 1_744_072
    assert r["forecaster"]["total"] == 1_722_418  # the official checkpoints' count, from their key list
    # The reference's breakdown, part by part.
    assert r["vae"]["downsampling convs"] == 1_024_128 and r["vae"]["upsampling deconvs"] == 524_416
    assert r["vae"]["axis transformers"] == 151_296 and r["vae"]["posterior (mu, logvar)"] == 24_960
    assert r["forecaster"]["MCA encoder (low)"] == 987_360  # transformer.intra_encoder.*
    assert r["forecaster"]["spatio-temporal encoder (high)"] == 672_800  # transformer.inter_decoder.*
    assert r["forecaster"]["pose encoder"] == 20_160
    assert r["total"]["parameters"] == 3_466_490  # the paper's 3.47 M


def test_model_info_command_prints_every_part(capsys):
    res = run_cli(capsys, "model-info", "--model-config", "paper", "--json")
    assert res.code == 0
    assert res.json()["parameters"]["forecaster"]["total"] == 1_722_418
    assert "1,744,072" in res.err and "MCA encoder (low)" in res.err
    bad = run_cli(capsys, "model-info", "--model-config", "huge")
    assert bad.code == 2 and bad.err_lines == ["error: --model-config 'huge': unknown world-model config; choose one of paper, small, debug"]


def test_config_roundtrip():
    for cfg in CONFIGS.values():
        assert WorldModelConfig.from_dict(cfg.to_dict()) == cfg
    assert get_config("small").vae.dim == 32


def test_vae_shapes_and_eval_is_deterministic():
    torch.manual_seed(0)
    vae = TriplaneVAE(CONFIGS["debug"].vae)
    occ = torch.randint(0, 18, (2, 200, 200, 16))
    logits, mu, logvar = vae(occ)
    assert logits.shape == (2, 18, 200, 200, 16) and mu.shape == logvar.shape == (2, 8, 50, 58)
    vae.eval()
    z1, z2 = vae.encode(occ), vae.encode(occ)
    assert torch.equal(z1, z2) and torch.equal(z1, vae.posterior(occ)[0])
    # Planes are separable: changing one xy cell of the latent changes only its 4 decoded z-columns' block.
    z = z1.clone()
    base = vae.decode(z)
    z[:, :, 10, 20] += 1.0
    diff = (vae.decode(z) - base).abs().sum((0, 1))  # [200, 200, 16]
    xs, ys, _ = torch.nonzero(diff > 1e-6, as_tuple=True)
    assert xs.min() >= 4 * 10 - 4 and xs.max() <= 4 * 10 + 7 and ys.min() >= 4 * 20 - 4 and ys.max() <= 4 * 20 + 7


def test_kl_by_hand():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, 1.0]])
    want = (-0.5 * (1 + 0 - 1 - 1) + -0.5 * (1 + 1 - 0 - torch.e)) / 2
    assert torch.isclose(kl_loss(mu, logvar), torch.tensor(want))


def test_deformable_attention_samples_its_own_cell_with_zero_offsets():
    torch.manual_seed(0)
    att = DeformableAttention2D(16, heads=4, points=3)
    with torch.no_grad():
        att.sampling_offsets.bias.zero_()
    x = torch.randn(2, 5 * 7, 16)
    out = att(x, x, (5, 7))
    # Every point reads its own cell centre exactly (bilinear at a centre), weights sum to 1.
    torch.testing.assert_close(out, att.output_proj(att.value_proj(x)), rtol=1e-5, atol=1e-5)


def test_deformable_attention_follows_an_offset_of_one_cell():
    torch.manual_seed(0)
    att = DeformableAttention2D(8, heads=1, points=1)
    with torch.no_grad():
        att.sampling_offsets.bias.copy_(torch.tensor([1.0, 0.0]))  # one cell to the right (+x)
        att.value_proj.weight.copy_(torch.eye(8)); att.value_proj.bias.zero_()
        att.output_proj.weight.copy_(torch.eye(8)); att.output_proj.bias.zero_()
    x = torch.randn(1, 4 * 6, 8)
    out = att(x, x, (4, 6)).view(4, 6, 8)
    grid = x.view(4, 6, 8)
    torch.testing.assert_close(out[:, :5], grid[:, 1:])
    torch.testing.assert_close(out[:, 5], torch.zeros(4, 8))  # sampled outside the map: zeros


def test_multihead_attention_matches_torch():
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.k.weight, ours.v.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.k.bias, ours.v.bias]))
        ref.out_proj.weight.copy_(ours.out.weight)
        ref.out_proj.bias.copy_(ours.out.bias)
    q, k = torch.randn(2, 5, 16), torch.randn(2, 9, 16)
    torch.testing.assert_close(ours(q, k), ref(q, k, k, need_weights=False)[0], rtol=1e-5, atol=1e-5)


def test_forecaster_step_shapes_gradients_and_control_dependence():
    torch.manual_seed(0)
    cfg = CONFIGS["debug"]
    fc = Forecaster(cfg.forecaster)
    k = cfg.forecaster.history
    z = torch.randn(2, 8, 50, 58)
    hist = torch.randn(2, k, 8, 50, 58)
    ctrl = torch.randn(2, k, 9)
    cmd = torch.eye(3)[[0, 2]]
    nxt, pred = fc.step(z, hist, ctrl, cmd)
    assert nxt.shape == (2, 8, 50, 58) and pred.shape == (2, 6)
    torch.testing.assert_close(pred[:, 2:].norm(dim=1), torch.ones(2))
    nxt.square().mean().backward()
    assert all(p.grad is not None for n, p in fc.named_parameters() if not n.startswith("head.")), "unused parameter"
    # A different driving transform gives a different future.
    with torch.no_grad():
        turn = step_from_prediction(torch.tensor([[4.0, 1.0, 0.98, 0.0, 0.0, 0.2]] * 2))
        straight = step_from_prediction(torch.tensor([[4.0, 0.0, 1.0, 0.0, 0.0, 0.0]] * 2))
        a, _ = fc.step(z, hist, ctrl, cmd, turn)
        b, _ = fc.step(z, hist, ctrl, cmd, straight)
    assert (a - b).abs().mean() > 1e-4


def test_rotation_helpers():
    q = torch.tensor([[torch.cos(torch.tensor(0.3)), 0.0, 0.0, torch.sin(torch.tensor(0.3))]])
    r = quat_to_rotmat(q)[0]
    torch.testing.assert_close(r[:2, :2], torch.tensor([[0.8253356, -0.5646425], [0.5646425, 0.8253356]]))
    emb = sinusoidal(torch.tensor([[0.0, 1.0]]), 4)
    assert emb.shape == (1, 16)
    torch.testing.assert_close(emb[0, :4], torch.ones(4))  # cos(0)
    torch.testing.assert_close(emb[0, 12], torch.sin(torch.tensor(1.0)))
