"""metantk-nas: a reproducible rebuild of MetaNTK-NAS (Wang et al., CVPR 2022).

One folder per concern: ``data``, ``space``, ``kernels``, ``proxies``, ``search``,
``train``, ``evaluate``, ``report``, ``theory``; ``cli`` is the command line in front.
"""

__version__ = "0.1.0"
