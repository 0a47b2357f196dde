"""Training-free proxies: the registry of every proxy (``PROXIES``, ``get_proxy``), the linear-region count of
the thin network and the standard zero-cost proxies (the kernels' condition numbers live in ``kernels``).

No CLI imports this package, so it imports torch eagerly (a lazy ``__getattr__`` cannot export a
function named like its own submodule, ``linear_regions``).
"""

from metantk_nas.proxies.linear_regions import activation_codes as activation_codes
from metantk_nas.proxies.linear_regions import linear_regions as linear_regions
from metantk_nas.proxies.linear_regions import region_inputs as region_inputs
from metantk_nas.proxies.linear_regions import shuffled_batches as shuffled_batches
from metantk_nas.proxies.registry import PROXIES as PROXIES
from metantk_nas.proxies.registry import Proxy as Proxy
from metantk_nas.proxies.registry import get_proxy as get_proxy
from metantk_nas.proxies.zero_cost import flops as flops
from metantk_nas.proxies.zero_cost import grad_norm as grad_norm
from metantk_nas.proxies.zero_cost import jacob_cov as jacob_cov
from metantk_nas.proxies.zero_cost import naswot as naswot
from metantk_nas.proxies.zero_cost import params as params
from metantk_nas.proxies.zero_cost import snip as snip
from metantk_nas.proxies.zero_cost import synflow as synflow
