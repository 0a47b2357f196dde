"""Training-free proxies other than kernels: the linear-region count of the thin network.

No CLI imports this package, so it imports torch eagerly (a lazy ``__getattr__`` cannot export a
function named like its own submodule, ``linear_regions``).
"""

from metantk_nas.proxies.linear_regions import activation_codes as activation_codes
from metantk_nas.proxies.linear_regions import linear_regions as linear_regions
from metantk_nas.proxies.linear_regions import region_inputs as region_inputs
from metantk_nas.proxies.linear_regions import shuffled_batches as shuffled_batches
