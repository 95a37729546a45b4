"""IDInit: padded identity weights and the epsilon dead-neuron fix (Pan et al. 2025).

Y. Pan, C. Wang, Z. Wu, Q. Wang, M. Zhang, Z. Xu, "IDInit: A Universal and Stable
Initialization Method for Neural Network Training", ICLR 2025, arXiv 2503.04626, Sec. 3.

- :func:`idinit_` (IDI_tau, and the patch-maintain conv IDIC_tau): ``theta[m, j] = tau`` if
  ``j = m mod D_in``, else 0. Non-square layers that widen repeat the identity down the rows
  (inputs are copied, not zero-padded); layers that narrow get ``[tau I 0]``. A conv kernel is
  filled as the paper reshapes it (Sec. 3.3): ``[k, k, c_in, c_out]`` to ``(c_out, k*k*c_in)``
  with the input-channel index fastest (:func:`conv_matrix_view`), so output ``m`` copies input
  channel ``j mod c_in`` at tap ``j // c_in`` (``j = m mod k^2 c_in``): a square IDIC reads every
  input channel once, at the first tap (a shifted channel identity, not a centre-tap identity).
- :func:`idinit_zero_` (IDIZ_eps / IDIZC_eps): instead of exact zeros, entries of ``+-eps`` so
  every output is ``eps`` times a difference of two inputs. What the paper's text that we could
  read fixes: entries of size ``eps = 1e-6`` ("transit zero", Fig. 3 caption) and, for conv, the
  same reshape as IDIC. It does not fix the +-eps index pattern: we follow a third-party port
  (see the function), with its consequence that on a zero-padded layer a row can read two
  units that are both zero-filled (then IDIZ revives nothing there).
- :func:`idinit_resnet_`: the residual recipe: stem and projection skips identity-like, the
  first layer of every branch IDI/IDIC, the last IDIZ (so every block starts within O(eps) of
  its skip), the classifier IDIZ with zero bias. Options reproduce the Table 4 ablation.

    >>> idinit_(torch.empty(4, 2))
    tensor([[1., 0.],
            [0., 1.],
            [1., 0.],
            [0., 1.]])
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

#: identity-like fillings of the stem, skips and branch first layers (Table 4: IDIC or the
#: channel-maintain base, a centre-tap identity that zero-pads extra channels)
CONV_MODES = ("patch", "channel")


def _check_weight(tensor: torch.Tensor) -> None:
    if tensor.dim() < 2 or tensor.numel() == 0:
        raise ValueError(f"tensor must be a non-empty weight (out, in, *kernel), got shape {tuple(tensor.shape)}")


def _padded_identity_index(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.arange(rows)
    return m, m % cols


def conv_matrix_view(tensor: torch.Tensor) -> torch.Tensor:
    """The paper's matrix of a weight: ``(D_out, D_in)`` for a linear weight; for a conv kernel
    ``(c_out, c_in, *k)`` (PyTorch order) the kernel as the paper lays it out,
    ``[*k, c_in, c_out]``, reshaped to ``(c_out, prod(k) * c_in)`` with the input-channel index
    fastest: column ``j`` is input channel ``j mod c_in`` at tap ``j // c_in`` (row-major taps).
    Returned as a new tensor; :func:`from_conv_matrix` maps it back.

        >>> conv_matrix_view(torch.arange(8.).view(1, 2, 2, 2))  # c_in = 2, taps 0..3
        tensor([[0., 4., 1., 5., 2., 6., 3., 7.]])
    """
    if tensor.dim() == 2:
        return tensor.clone()
    return tensor.flatten(2).transpose(1, 2).reshape(tensor.shape[0], -1).clone()


def from_conv_matrix(matrix: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`conv_matrix_view` for a weight of ``shape``."""
    if len(shape) == 2:
        return matrix.view(shape)
    c_out, c_in, k = shape[0], shape[1], shape[2:]
    return matrix.view(c_out, -1, c_in).transpose(1, 2).reshape(c_out, c_in, *k)


@torch.no_grad()
def idinit_(tensor: torch.Tensor, tau: float = 1.0, loose_std: float = 0.0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place with IDInit's padded identity ``IDI_tau`` and return it.

    Pan et al. 2025, Sec. 3.1 (IDI) and 3.3 (patch-maintain conv IDIC): for a weight of shape
    ``(D_out, D_in)``, ``theta[m, j] = tau * [j = m mod D_in]``. So ``theta^T theta =
    tau^2 diag(n_j)`` with ``n_j = ceil((D_out - j) / D_in)``: singular values ``tau sqrt(n_j)``,
    rank ``min(D_out, D_in)``, exactly ``tau I`` when square. Conv weights ``(c_out, c_in, *k)``
    are filled as the paper's matrix ``(c_out, prod(k) * c_in)``, input channel fastest
    (:func:`conv_matrix_view`): a square conv copies every input channel once.

    ``loose_std > 0`` gives the "loose" variant: each non-zero entry is drawn from
    ``N(tau, loose_std^2)`` (with ``generator``), which breaks the symmetry of repeated rows.
    With ``loose_std = 0`` no random numbers are drawn.

        >>> idinit_(torch.empty(3, 2), tau=2.0)
        tensor([[2., 0.],
                [0., 2.],
                [2., 0.]])
    """
    _check_weight(tensor)
    if not math.isfinite(tau):
        raise ValueError(f"tau must be a finite number, got {tau}")
    if not (math.isfinite(loose_std) and loose_std >= 0):
        raise ValueError(f"loose_std must be a finite number >= 0, got {loose_std}")
    shape = (tensor.shape[0], tensor[0].numel())
    rows, cols = _padded_identity_index(*shape)
    values = torch.full((len(rows),), float(tau), dtype=tensor.dtype)
    if loose_std > 0:
        values += loose_std * torch.randn(len(rows), generator=generator, dtype=tensor.dtype)
    filled = torch.zeros(shape, dtype=tensor.dtype)
    filled[rows, cols] = values
    tensor.copy_(from_conv_matrix(filled, tensor.shape))
    return tensor


@torch.no_grad()
def idinit_zero_(tensor: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Fill ``tensor`` in place with IDInit's epsilon fix ``IDIZ_eps`` and return it.

    Pan et al. 2025, Sec. 3.2 (dead neurons): a layer that would start at exact zeros (the last
    layer of a residual branch) instead gets entries ``+-eps`` (``eps = 1e-6``, Fig. 3), so its
    outputs are ``eps`` times differences of inputs: mean 0, and non-zero wherever the inputs
    differ, so ReLU units behind it are not stuck at a pre-activation of exactly 0.
    The paper's text that we could read fixes ``eps`` and the conv reshape (that of
    :func:`idinit_`, :func:`conv_matrix_view`), not the index pattern; as in a third-party
    port, for the matrix ``(D_out, D_in)``:

    - ``D_out < D_in``: ``theta[:, :D_out] = eps I`` and ``theta[:, D_out:] = -eps IDI``;
    - ``D_out >= D_in``: ``eps IDI`` plus ``-eps`` at ``(m, (m + 1) mod D_in)``.

    Every row then holds exactly one ``+eps`` and one ``-eps`` (``D_in >= 2`` is required).
    Where a zero-padded layer feeds it, a row may read two zero-filled units (e.g. rows
    ``m >= D_in`` of a square fc layer behind a zero-padded widening): such a row stays 0.

        >>> idinit_zero_(torch.empty(2, 2), eps=1.0)
        tensor([[ 1., -1.],
                [-1.,  1.]])
    """
    _check_weight(tensor)
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a finite number > 0, got {eps}")
    d_out = tensor.shape[0]
    d_in = tensor[0].numel()
    if d_in < 2:
        raise ValueError(f"tensor must have at least 2 inputs per output (in * kernel >= 2), got shape "
                         f"{tuple(tensor.shape)}")
    filled = torch.zeros(d_out, d_in, dtype=tensor.dtype)
    rows = torch.arange(d_out)
    if d_out < d_in:
        filled[rows, rows] = eps
        tail, tail_cols = _padded_identity_index(d_out, d_in - d_out)
        filled[tail, d_out + tail_cols] = -eps
    else:
        filled[rows, rows % d_in] = eps
        filled[rows, (rows + 1) % d_in] = -eps
    tensor.copy_(from_conv_matrix(filled, tensor.shape))
    return tensor


@torch.no_grad()
def channel_identity_(tensor: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """The channel-maintain identity (Table 4's base): ``tau`` times ``torch.nn.init.eye_``
    (linear) or ``dirac_`` (conv, centre tap), which zero-pad the outputs beyond ``D_in``.

        >>> channel_identity_(torch.empty(3, 2))
        tensor([[1., 0.],
                [0., 1.],
                [0., 0.]])
    """
    _check_weight(tensor)
    (nn.init.eye_ if tensor.dim() == 2 else nn.init.dirac_)(tensor)
    return tensor.mul_(tau)


@torch.no_grad()
def idinit_resnet_(model, generator: torch.Generator | None = None, conv: str = "patch", eps: float = 1e-6,
                   tau: float = 1.0, loose_std: float = 0.0):
    """IDInit a ``initrepro.models.resnet.ResNet`` in place (Pan et al. 2025, Sec. 3.3) and return it.

    Stem, projection skips and the first layer of every branch: :func:`idinit_` (``conv="patch"``,
    IDI/IDIC) or :func:`channel_identity_` (``conv="channel"``, the ablation base). The last layer
    of every branch and the classifier: :func:`idinit_zero_` with ``eps > 0`` (IDIZ/IDIZC), exact
    zeros with ``eps = 0`` (the ablation). Zero biases, unit branch and skip multipliers (IDInit
    nets have no Fixup scalars: a stage that follows the paper leaves them out of training).
    ``generator`` draws only the loose noise.

        >>> net = resnet("conv", (1, 8, 8), 10, widths=16, blocks=2, init="idinit",
        ...              init_options={"conv": "channel", "eps": 0.0})
    """
    if conv not in CONV_MODES:
        raise ValueError(f"conv must be one of {CONV_MODES}, got {conv!r}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0 (0: exact zeros), got {eps}")
    model.reset_parameters(generator)

    def identity(weight):
        if conv == "patch":
            idinit_(weight, tau, loose_std, generator)
        else:
            channel_identity_(weight, tau)

    def last(weight):
        if eps > 0:
            idinit_zero_(weight, eps)
        else:
            weight.zero_()

    identity(model.stem.weight)
    for block in model.blocks:
        identity(block.conv1.weight)
        last(block.conv2.weight)
        if block.skip is not None:
            identity(block.skip.weight)
    last(model.classifier.weight)
    model.classifier.bias.zero_()
    return model
