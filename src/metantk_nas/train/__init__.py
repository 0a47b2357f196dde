"""metantk_nas.train."""
