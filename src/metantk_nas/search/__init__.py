"""metantk_nas.search."""
