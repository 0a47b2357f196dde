"""metantk_nas.kernels."""
