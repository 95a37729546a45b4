"""Initializers in ``torch.nn.init`` style: ``name_(tensor, ...)`` fills in place.

One module per scheme; each function cites its paper and equation.
"""

from initrepro.init.constnet import channel_average_
from initrepro.init.eoi import eoi_, sparse_delta_orthogonal_
from initrepro.init.fixup import fixup_, skipinit_
from initrepro.init.fractional import fractional_moment_normal_
from initrepro.init.looks_linear import looks_linear_
from initrepro.init.risotto import risotto_

__all__ = ["channel_average_", "eoi_", "fixup_", "fractional_moment_normal_", "looks_linear_", "risotto_",
           "skipinit_", "sparse_delta_orthogonal_"]
