"""IDInit (Pan et al. 2025): padded identity, patch-maintain conv, the epsilon fix, the ResNet
recipe, and the training-dynamics helpers of its stage."""

import math

import pytest
import torch

from initrepro.init.idinit import (channel_identity_, conv_matrix_view, from_conv_matrix, idinit_, idinit_resnet_,
                                   idinit_zero_)
from initrepro.models.ensemble import Ensemble
from initrepro.models.resnet import INITIALIZERS, resnet
from initrepro.data import TensorData
from initrepro.studies.idinit import (RANK_FILLS, deep_linear_descent, live_coordinates, rank_mlp, singular_tail,
                                      standardize_live, unchanged_fraction, update_rank)
from initrepro.training import train_members

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(10, 4), (256, 64), (4, 10), (7, 7), (5, 3)])
def test_padded_identity_gram_is_tau_squared_row_counts(shape, dtype):
    tau = 0.5
    w = idinit_(torch.empty(shape, dtype=dtype), tau=tau)
    d_out, d_in = shape
    m, j = torch.meshgrid(torch.arange(d_out), torch.arange(d_in), indexing="ij")
    assert torch.equal(w, torch.where(j == m % d_in, tau, 0.0).to(dtype))
    counts = torch.tensor([math.ceil((d_out - c) / d_in) if c < d_out else 0 for c in range(d_in)], dtype=dtype)
    assert torch.equal(w.T @ w, tau ** 2 * torch.diag(counts))
    assert torch.linalg.matrix_rank(w.double()) == min(shape)


def test_singular_values_of_the_digest_examples():
    assert torch.allclose(torch.linalg.svdvals(idinit_(torch.empty(256, 64, dtype=torch.float64))),
                          torch.full((64,), 2.0, dtype=torch.float64))
    s = torch.linalg.svdvals(idinit_(torch.empty(10, 4, dtype=torch.float64)))
    assert torch.allclose(s, torch.tensor([3, 3, 2, 2], dtype=torch.float64).sqrt())


@pytest.mark.parametrize("dtype", DTYPES)
def test_square_is_exactly_identity_and_rows_repeat(dtype):
    assert torch.equal(idinit_(torch.empty(6, 6, dtype=dtype)), torch.eye(6, dtype=dtype))
    w = idinit_(torch.empty(9, 3, dtype=dtype))
    assert torch.equal(w[:3], w[3:6]) and torch.equal(w[3:6], w[6:]) and torch.equal(w[:3], torch.eye(3, dtype=dtype))
    assert torch.equal(idinit_(torch.empty(3, 5, dtype=dtype)), torch.eye(3, 5, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_patch_maintain_conv_copies_one_channel_tap_per_output(dtype):
    w = idinit_(torch.empty(16, 8, 3, 3, dtype=dtype))
    nz = w.nonzero().tolist()
    assert len(nz) == 16 and torch.all(w[w != 0] == 1)
    # the paper's reshape [k, k, c_in, c_out] -> (c_out, k*k*c_in), channel fastest:
    # output m reads input channel m % 8 at tap m // 8
    assert sorted(nz) == sorted([m, m % 8, (m // 8) // 3, (m // 8) % 3] for m in range(16))
    # widening past c_in * k^2: the taps repeat
    w = idinit_(torch.empty(12, 1, 3, 3, dtype=dtype))
    assert torch.equal(w[9:], w[:3]) and torch.equal(w[:9].flatten(1), torch.eye(9, dtype=dtype))


@pytest.mark.parametrize("channels", [8, 16])
def test_square_idic_conv_reads_every_input_channel(channels):
    """Issue 13: in PyTorch's flatten order a square 8->8 3x3 IDIC read only input channel 0."""
    w = idinit_(torch.empty(channels, channels, 3, 3, dtype=torch.float64))
    per_channel = (w != 0).sum((0, 2, 3))
    assert torch.equal(per_channel, torch.ones(channels, dtype=torch.long))  # each input channel read once
    x = torch.randn(2, channels, 6, 6, dtype=torch.float64)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    assert torch.equal(y, padded[:, :, :6, :6])  # a shifted channel identity (first tap)


def test_conv_matrix_view_round_trips_and_puts_channels_fastest():
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    m = conv_matrix_view(w)
    assert m.shape == (5, 27) and torch.equal(from_conv_matrix(m, w.shape), w)
    assert torch.equal(m[:, :3], w[:, :, 0, 0]) and torch.equal(m[:, 3:6], w[:, :, 0, 1])
    assert torch.equal(conv_matrix_view(w[:, :, 0, 0]), w[:, :, 0, 0])


def test_patch_maintain_conv_is_a_shifted_copy():
    w = idinit_(torch.empty(9, 1, 3, 3, dtype=torch.float64))
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for m in range(9):
        assert torch.equal(y[0, m], padded[0, 0, m // 3:m // 3 + 5, m % 3:m % 3 + 5])


def test_tau_scales_and_loose_noise_is_seeded_and_optional():
    assert torch.equal(idinit_(torch.empty(6, 4), tau=3.0), 3.0 * idinit_(torch.empty(6, 4)))
    state = torch.random.get_rng_state()
    gen = torch.Generator().manual_seed(5)
    gen_state = gen.get_state()
    idinit_(torch.empty(6, 4), generator=gen)
    assert torch.equal(gen.get_state(), gen_state) and torch.equal(torch.random.get_rng_state(), state)
    a = idinit_(torch.empty(6, 4, dtype=torch.float64), loose_std=1e-3, generator=torch.Generator().manual_seed(1))
    b = idinit_(torch.empty(6, 4, dtype=torch.float64), loose_std=1e-3, generator=torch.Generator().manual_seed(1))
    exact = idinit_(torch.empty(6, 4, dtype=torch.float64))
    assert torch.equal(a, b) and torch.equal(a != 0, exact != 0)
    assert 0 < (a - exact).abs().max() < 1e-2 and not torch.equal(a[:4], a[4:].repeat(2, 1)[:4])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 4), (3, 8), (2, 5), (8, 3), (6, 2), (16, 16, 3, 3), (8, 4, 1, 1)])
def test_epsilon_fix_rows_hold_one_plus_and_one_minus_eps(shape, dtype):
    eps = 1e-6
    w = idinit_zero_(torch.empty(shape, dtype=dtype), eps=eps)
    flat = conv_matrix_view(w)
    e = torch.tensor(eps, dtype=dtype)
    assert torch.all((flat == 0) | (flat == e) | (flat == -e))
    assert torch.equal((flat == e).sum(1), torch.ones(shape[0], dtype=torch.long))
    assert torch.equal((flat == -e).sum(1), torch.ones(shape[0], dtype=torch.long))
    d_out, d_in = flat.shape
    rows = torch.arange(d_out)
    if d_out < d_in:
        assert torch.equal(flat[rows, rows], e.expand(d_out))
        assert torch.equal(flat[rows, d_out + rows % (d_in - d_out)], -e.expand(d_out))
    else:
        assert torch.equal(flat[rows, rows % d_in], e.expand(d_out))
        assert torch.equal(flat[rows, (rows + 1) % d_in], -e.expand(d_out))
    x = torch.randn(5, d_in, dtype=torch.float64)
    assert (x @ flat.double().T).abs().max() <= 2 * eps * x.abs().max() * (1 + 1e-9)


def test_epsilon_fix_exact_values_on_small_shapes():
    assert idinit_zero_(torch.empty(2, 3), eps=1.0).tolist() == [[1, 0, -1], [0, 1, -1]]
    assert idinit_zero_(torch.empty(3, 2), eps=1.0).tolist() == [[1, -1], [-1, 1], [1, -1]]


def test_channel_identity_zero_pads():
    assert torch.equal(channel_identity_(torch.empty(4, 2), tau=2.0), 2.0 * torch.eye(4, 2))
    w = channel_identity_(torch.empty(4, 2, 3, 3))
    assert torch.equal(w[:, :, 1, 1], torch.eye(4, 2)) and w.abs().sum() == 2


@pytest.mark.parametrize("fn,kwargs,match", [
    (idinit_, {"tau": float("nan")}, "tau"),
    (idinit_, {"loose_std": -1.0}, "loose_std"),
    (idinit_zero_, {"eps": 0.0}, "eps"),
    (idinit_zero_, {"eps": float("inf")}, "eps"),
])
def test_bad_arguments_are_named(fn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(torch.empty(3, 3), **kwargs)


@pytest.mark.parametrize("fn", [idinit_, idinit_zero_, channel_identity_])
@pytest.mark.parametrize("shape", [(3,), (0, 3)])
def test_bad_shapes_are_named(fn, shape):
    with pytest.raises(ValueError, match="tensor"):
        fn(torch.empty(shape))


def test_epsilon_fix_needs_two_inputs():
    with pytest.raises(ValueError, match="tensor"):
        idinit_zero_(torch.empty(4, 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_resnet_recipe_is_registered_and_starts_within_eps_of_the_skips(dtype):
    assert INITIALIZERS["idinit"] is idinit_resnet_
    net = resnet("conv", (1, 8, 8), 10, widths=(8, 16), blocks=2, block_type="C", init="idinit", dtype=dtype)
    assert torch.equal(net.stem.weight, idinit_(torch.empty(8, 1, 3, 3, dtype=dtype)))
    for block in net.blocks:
        assert torch.equal(block.conv1.weight, idinit_(torch.empty_like(block.conv1.weight)))
        assert torch.equal(block.conv2.weight, idinit_zero_(torch.empty_like(block.conv2.weight)))
        if block.skip is not None:
            assert torch.equal(block.skip.weight, idinit_(torch.empty_like(block.skip.weight)))
    x = torch.randn(4, 1, 8, 8, dtype=dtype)
    h = net.embed(x)
    branch, skip = net.blocks[0].parts(h)
    assert branch.abs().max() <= 1e-4 * skip.abs().max()
    assert net.classifier.bias.abs().max() == 0


def test_resnet_ablation_options():
    net = resnet("fc", (4,), 3, widths=8, blocks=1, init="idinit", init_options={"conv": "channel", "eps": 0.0})
    assert torch.equal(net.stem.weight, torch.eye(8, 4)) and net.blocks[0].conv2.weight.abs().max() == 0
    assert net.classifier.weight.abs().max() == 0
    with pytest.raises(ValueError, match="conv"):
        resnet("fc", (4,), 3, widths=8, blocks=1, init="idinit", init_options={"conv": "centre"})
    with pytest.raises(ValueError, match="eps"):
        resnet("fc", (4,), 3, widths=8, blocks=1, init="idinit", init_options={"eps": -1.0})


def test_resnet_ensemble_shares_the_skip_buffer():
    nets = [resnet("conv", (1, 6, 6), 10, widths=4, blocks=1, init=i, seed=0) for i in ("idinit", "fixup")]
    x = torch.randn(3, 1, 6, 6)
    out = Ensemble(nets)(x)
    assert torch.allclose(out[1], nets[1](x), atol=1e-6)


def test_unchanged_fraction_and_update_rank():
    before = [torch.zeros(2, 3), torch.ones(2, 1)]
    after = [torch.tensor([[0.0, 0, 0], [1, 0, 0]]), torch.tensor([[1.0], [2.0]])]
    assert unchanged_fraction(before, after).tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="before"):
        unchanged_fraction([torch.zeros(2, 3)], [torch.zeros(2, 4)])
    w0 = torch.eye(4, dtype=torch.float64)
    assert update_rank(w0 + torch.outer(torch.ones(4), torch.arange(4.0)).double(), w0, 1e-10) == 1
    with pytest.raises(ValueError, match="rtol"):
        update_rank(w0, w0, 0.0)


def test_deep_linear_gd_stalls_and_momentum_converges():
    x = torch.randn(2, 500, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gd = deep_linear_descent(x, -x, 600, 0.01)
    gdm = deep_linear_descent(x, -x, 600, 0.01, momentum=0.9)
    assert gd.shape == (2, 601) and torch.allclose(gd[:, 0], gdm[:, 0])
    assert gd[:, -1].min() > 1.0 and gdm[:, -1].max() < 1e-6
    with pytest.raises(ValueError, match="batch_size"):
        deep_linear_descent(x, -x, 10, 0.01, batch_size=0)


def test_paper_profile_resnet56_takes_one_step_on_random_cifar_tensors():
    from initrepro.core.pipeline import load_conf
    from initrepro.training import TrainConfig, make_optimizer

    conf = load_conf("idinit", "paper")
    nets = [resnet("conv", (3, 32, 32), 10, widths=conf["acc_widths"], blocks=conf["acc_blocks"],
                   block_type=conf["block_type"], init=i, seed=0) for i in ("idinit", "zero")]
    ens = Ensemble(nets)
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    opt = make_optimizer(ens.parameters(), TrainConfig(lr=conf["acc_lrs"][0], momentum=conf["momentum"]))
    loss = torch.nn.functional.cross_entropy(ens(x).flatten(0, 1), y.repeat(len(nets)))
    loss.backward()
    opt.step()
    assert len(nets[0].blocks) == 27 and torch.isfinite(loss)


def test_rank_bound_is_the_live_coordinates_of_the_layer_input():
    """Issue 13: behind a zero-padded widening layer the update of the next weight has rank at
    most the number of LIVE coordinates of its input (here D_0, every input coordinate live),
    and the padded identity exceeds it."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (300,), generator=gen)
    sizes = [6, 6, 12, 12, 3]
    models = [rank_mlp(sizes, RANK_FILLS[a], torch.Generator().manual_seed(0))
              for a in ("zero-padded identity", "padded identity (IDI)")]
    with torch.no_grad():
        live = live_coordinates(models[0][:4](x))
    assert live <= 6
    ens = Ensemble(models)
    hist = train_members(ens, TensorData(x, y, 3, "toy"), {}, [0.05, 0.05], [0, 0], epochs=20, batch_size=50)
    w, w0 = ens.stacked[ens.names.index("4.weight")].detach(), hist.initial["4.weight"]
    ranks = [update_rank(w[i], w0[i], 1e-8) for i in range(2)]
    assert ranks[0] <= live and ranks[1] > 6
    tail = singular_tail(w[0] - w0[0], live)
    assert tail[f"s{live + 1}/s1"] < 1e-12
    with pytest.raises(ValueError, match="x must"):
        live_coordinates(torch.zeros(3))


def test_standardize_live_drops_constant_pixels_and_centres_the_rest():
    x = torch.randn(50, 1, 2, 2, dtype=torch.float64)
    x[:, 0, 0, 0] = 3.0
    tr, te = standardize_live(x, x[:5])
    assert tr.shape == (50, 3) and torch.allclose(tr.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(tr.std(0), torch.ones(3, dtype=torch.float64)) and torch.equal(te, tr[:5])
    assert ((tr > 0).any(0) & (tr < 0).any(0)).all()


def test_accuracy_arms_train_fixup_scalars_only_and_give_zero_its_relu():
    from initrepro.layers import relu_grad_at_zero
    from initrepro.studies.idinit import accuracy_arms, build, is_scalar, run_arms

    arms = accuracy_arms()
    assert set(arms) == {"IDInit", "Fixup", "ZerO", "Kaiming", "Kaiming + BN"}
    assert [a for a, arm in arms.items() if arm.train_scalars] == ["Fixup"]
    assert build(arms["ZerO"], "conv", (1, 6, 6), 3, (4,), (1,), "C", 0).activation is relu_grad_at_zero
    assert build(arms["IDInit"], "conv", (1, 6, 6), 3, (4,), (1,), "C", 0).activation is torch.nn.functional.relu
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 1, 6, 6, generator=gen), torch.randint(0, 3, (24,), generator=gen)
    data = TensorData(x, y, 3, "toy")
    out = run_arms(arms, [(a, 0.05, 0) for a in arms], data, {"t": data}, kind="conv", widths=(4,), blocks=(1,),
                   block_type="C", epochs=2, batch_size=8, momentum=0.9, weight_decay=0.0, eval_every_epoch=True)
    assert set(out) == {(a, 0.05, 0) for a in arms} and all(0 <= v["t"] <= 1 for v in out.values())
    assert all(len(v["curve"]["t"]) == 2 and v["curve"]["t"][-1] == v["t"] for v in out.values())
    ens = Ensemble([build(arms[a], "conv", (1, 6, 6), 3, (4,), (1,), "C", 0) for a in ("IDInit", "Fixup")])
    hist = train_members(ens, data, {}, [0.05, 0.05], [0, 0], epochs=1, batch_size=8,
                         frozen=lambda i, n: is_scalar(n) and i == 0)
    w, w0 = ens.stacked[ens.names.index("blocks.0.bias2b")], hist.initial["blocks.0.bias2b"]
    assert torch.equal(w[0], w0[0]) and not torch.equal(w[1], w0[1])


def test_dead_parameter_ablation_measures_every_arm_and_seed():
    from initrepro.studies.idinit import Arm, dead_parameter_ablation, is_scalar

    g = torch.Generator().manual_seed(0)
    y = torch.arange(48) % 3
    data = TensorData(torch.randn(48, 4, generator=g) + y[:, None].float(), y, 3, "toy")
    arms = {"base (channel, zeros)": Arm("idinit", {"conv": "channel", "eps": 0.0}),
            "IDInit (patch, eps)": Arm("idinit", {"conv": "patch"})}
    kw = dict(seeds=[0, 1], blocks=1, block_type="C", epochs=1, batch_size=16, momentum=0.9)
    unchanged, last, acc, n_weights = dead_parameter_ablation(arms, {"fc": 8}, data, data, lr=0.1, **kw)
    assert set(unchanged) == set(last) == set(acc) == {"fc"}
    assert all(len(d["fc"][a]) == 2 and all(0 <= v <= 1 for v in d["fc"][a]) for d in (unchanged, last, acc) for a in arms)
    net = resnet("fc", (4,), 3, widths=8, blocks=1, block_type="C", init="idinit")
    assert n_weights == {"fc": sum(p.numel() for n, p in net.named_parameters() if not is_scalar(n))}
    # exact zeros and zero padding keep weights that never get a gradient; IDInit's eps fills them
    assert min(unchanged["fc"]["base (channel, zeros)"]) > max(unchanged["fc"]["IDInit (patch, eps)"])
    assert min(last["fc"]["base (channel, zeros)"]) > max(last["fc"]["IDInit (patch, eps)"])
