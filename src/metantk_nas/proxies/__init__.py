"""metantk_nas.proxies."""
