"""Initializers in ``torch.nn.init`` style: ``name_(tensor, ...)`` fills in place.

One module per scheme; each function cites its paper and equation.
"""

from initrepro.init.constnet import channel_average_
from initrepro.init.eoi import eoi_, sparse_delta_orthogonal_
from initrepro.init.fixup import fixup_, skipinit_
from initrepro.init.fractional import fractional_moment_normal_
from initrepro.init.identity import identity_
from initrepro.init.idinit import channel_identity_, idinit_, idinit_resnet_, idinit_zero_
from initrepro.init.looks_linear import looks_linear_
from initrepro.init.parameter_sharing import init_relu_mlp_, parameter_sharing_, shared_blocks
from initrepro.init.risotto import risotto_
from initrepro.init.zero import zero_hadamard_, zero_resnet_

__all__ = ["channel_average_", "eoi_", "fixup_", "fractional_moment_normal_", "identity_", "looks_linear_", "risotto_",
           "skipinit_", "sparse_delta_orthogonal_"]
__all__ += ["zero_hadamard_", "zero_resnet_"]
__all__ += ["channel_identity_", "idinit_", "idinit_resnet_", "idinit_zero_"]
__all__ += ["init_relu_mlp_", "parameter_sharing_", "shared_blocks"]
