"""metantk_nas.data."""
