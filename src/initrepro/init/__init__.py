"""Initializers in ``torch.nn.init`` style: ``name_(tensor, ...)`` fills in place.

One module per scheme; each function cites its paper and equation.
"""

from initrepro.init.eoi import eoi_, sparse_delta_orthogonal_
from initrepro.init.fractional import fractional_moment_normal_
from initrepro.init.risotto import risotto_
from initrepro.init.constnet import channel_average_
