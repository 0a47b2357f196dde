"""metantk_nas.space."""
