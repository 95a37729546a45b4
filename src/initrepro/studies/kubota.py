"""Training identity-initialized deep MLPs against random inits of the same depth, and reading
them layer by layer (Kubota et al., ICASSP 2021).

One seed = one data split, one data order and one random draw per random scheme. All schemes of a
seed train together as one vectorized :class:`~initrepro.models.ensemble.Ensemble` (the identity
net is deterministic, so its seed-to-seed spread comes from the split and the order), so every
comparison is paired by seed. A shallow random-init net of the same width, trained with the same
data, order and optimizer, is the positive control: it shows that the setup can train a
random-init net, so a deep random net's failure is due to depth.

    >>> run = train_seed(train_set, test_set, depth=100, activation="hard_tanh",
    ...                  schemes=["identity", "xavier"], cfg=TrainConfig(lr=3e-3, momentum=0.0))
    >>> run.test_acc["identity"], run.layer_acc["identity"].shape
    (0.95..., (100,))
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch

from initrepro.data import TensorData, load_dataset
from initrepro.models.class_unit_mlp import (ClassUnitMLP, init_class_unit_mlp_, layer_accuracy, relative_change,
                                              unstack)
from initrepro.models.ensemble import Ensemble
from initrepro.theory.identity import binomial_z, jjt_eigenvalues, two_point_law
from initrepro.training import TrainConfig, accuracy, train


@dataclass
class SeedRun:
    test_acc: dict[str, float]  # final test accuracy per scheme
    curves: dict[str, list[float]]  # test accuracy per epoch per scheme
    layer_acc: dict[str, np.ndarray]  # per-layer class-unit accuracy, (depth,) per scheme
    change: dict[str, np.ndarray]  # ||W_l - W_l(0)||_F / ||W_l(0)||_F, (depth,) per scheme
    drift: dict[str, np.ndarray]  # image drift on the test set (:func:`image_drift`), (depth,) per scheme
    control_acc: float  # the shallow random-init positive control
    diverged: dict[str, bool]  # members whose logits turned non-finite (isolated, then at chance)
    models: dict[str, ClassUnitMLP]  # the trained nets, per scheme


def train_seed(train_set: TensorData, test_set: TensorData, *, depth: int, activation: str, schemes: list[str],
               cfg: TrainConfig, gain: float = 1.0, control_depth: int = 3, control_scheme: str = "xavier",
               progress: bool = True, device: str | torch.device | None = None) -> SeedRun:
    """Train one net per scheme (one ensemble) and the shallow control, with ``cfg.seed`` seeding
    the data order and the random schemes' weights. Weights are drawn on the CPU; training and
    every measure run on ``device`` (None: ``cfg.device``, whose default is the CPU), where the
    returned ``models`` stay."""
    if device is not None:
        cfg = replace(cfg, device=str(device))
    test_on_device = test_set.to(cfg.device)
    in_features, classes = int(np.prod(train_set.input_shape)), train_set.num_classes
    template = ClassUnitMLP(in_features, classes, depth, activation)
    members = [init_class_unit_mlp_(copy.deepcopy(template), scheme, gain,
                                    generator=torch.Generator().manual_seed(cfg.seed)) for scheme in schemes]
    ensemble = Ensemble(members, isolate_diverged=True)  # copies the members' parameters: ``members`` stay at init
    history = train(ensemble, train_set, test_set, cfg, progress=progress, desc=f"seed {cfg.seed}: {'+'.join(schemes)}")
    trained = unstack(ensemble, template.to(cfg.device))
    final = accuracy(ensemble, test_set, device=cfg.device)  # diverged members land near chance
    curves = np.array(history.test_acc, dtype=float).reshape(len(history.test_acc), -1).T
    control = init_class_unit_mlp_(ClassUnitMLP(in_features, classes, control_depth, activation), control_scheme,
                                   generator=torch.Generator().manual_seed(cfg.seed))
    train(control, train_set, test_set, cfg, progress=False)
    return SeedRun(test_acc=dict(zip(schemes, final)),
                   curves={s: curves[i].tolist() for i, s in enumerate(schemes)},
                   layer_acc={s: layer_accuracy(m, test_on_device).cpu().numpy() for s, m in zip(schemes, trained)},
                   change={s: relative_change(m, m0.to(cfg.device)).cpu().numpy()
                           for s, m, m0 in zip(schemes, trained, members)},
                   drift={s: image_drift(m, test_on_device.x).cpu().numpy() for s, m in zip(schemes, trained)},
                   control_acc=float(accuracy(control, test_set, device=cfg.device)),
                   diverged=dict(zip(schemes, ensemble.diverged.tolist())),
                   models=dict(zip(schemes, trained)))


def train_seeds(dataset: str, seeds: list[int], *, n_train: int | None = None, n_test: int | None = None,
                **kwargs) -> list[SeedRun]:
    """:func:`train_seed` for every seed: each seed its own stratified split and data order.
    ``kwargs``: those of :func:`train_seed`, with ``cfg`` (its ``seed`` is replaced per seed)."""
    cfg = kwargs.pop("cfg")
    runs = []
    for seed in seeds:
        train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test)
        runs.append(train_seed(train_set, test_set, cfg=replace(cfg, seed=seed), **kwargs))
    return runs


# --- the discriminating measures of Kubota et al.'s claims ------------------------------------

@torch.no_grad()
def image_drift(model: ClassUnitMLP, x: torch.Tensor) -> torch.Tensor:
    """How far each layer's image coordinates moved from the input, shape ``(depth,)``.

    For layer ``l``: the median over the rows of ``x`` of ``||x_l[:D] - phi(x_0)|| / ||phi(x_0)||``,
    with ``phi(x_0)`` the input passed through the activation: the state of *every* layer of an
    identity net at initialization (hard-tanh clips standardized pixels to [-1, 1]). Kubota et
    al. (abstract and Sec. 1): the weights stay near the identity, so "the output of each hidden
    layer has a slight variation" and features stay in input space; a random init embeds the
    input into another space at every layer, so this measure is near or above 1 for it (0 for an
    identity net at init, whatever its depth).
    """
    states = model.activations(x)[..., :model.in_features]  # (depth, batch, D)
    reference = model.body[1](x.flatten(1))  # phi(x_0)
    ref_norm = reference.norm(dim=-1).clamp_min(1e-12)
    return ((states - reference).norm(dim=-1) / ref_norm).median(dim=-1).values


def layer_trend(layer_acc, first: int = 2) -> np.ndarray:
    """Spearman rank correlation between the layer index and the per-layer accuracy over layers
    ``first..L`` (1-based), one per row of ``layer_acc`` (seeds x depth): +1 when accuracy rises
    with every layer, about 0 when the curve is flat (a flat curve with ties only scores 0).

    Tests "rises through the depth" over the whole depth, not layer ``L`` against layer 1: a
    curve that rises over its first few layers and is flat after scores near 0 on a deep net.
    """
    from scipy import stats

    acc = np.atleast_2d(np.asarray(layer_acc, dtype=float))[:, first - 1:]
    if acc.shape[1] < 3:
        raise ValueError(f"layer_acc must hold at least 3 layers from layer {first}, got {acc.shape[1]}")
    layers = np.arange(acc.shape[1])
    rho = [stats.spearmanr(layers, row)[0] if np.ptp(row) > 0 else 0.0 for row in acc]
    return np.nan_to_num(np.asarray(rho, dtype=float), nan=0.0)


def identity_spectrum(activation: str, sigma: float, q0: float, generator: torch.Generator, *, width: int,
                      depth: int, inputs: int) -> torch.Tensor:
    """The eigenvalues of ``J J^T`` (float64, by autodiff) of the body of a ``depth``-layer,
    ``width``-wide class-unit MLP at ``W = sigma I`` (zero biases), at ``inputs`` inputs
    ``u ~ N(0, q0 I)`` drawn from ``generator``: the measured spectrum that Kubota et al.'s
    two-point law (:func:`initrepro.theory.identity.two_point_law`) predicts exactly."""
    body = init_class_unit_mlp_(ClassUnitMLP(width, 0, depth, activation).double(), "identity", gain=sigma).body
    u = torch.randn(inputs, width, dtype=torch.float64, generator=generator) * q0 ** 0.5
    return jjt_eigenvalues(body, u)


def count_z(eig: torch.Tensor, activation: str, sigma: float, q0: float, *, depth: int) -> float:
    """The z-score of the number of eigenvalues at the non-zero atom ``sigma^(2L)`` (those above
    half the atom) against ``Binomial(eig.numel(), alpha)``, ``alpha`` the two-point law's
    probability of that atom at ``depth`` layers: the statistical check of the two-point law
    (the eigenvalues are independent over coordinates, so the count is binomial)."""
    atom, alpha = two_point_law(activation, sigma, depth, q0)
    return binomial_z(int((eig > atom / 2).sum()), eig.numel(), alpha)
