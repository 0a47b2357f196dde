"""metantk_nas.evaluate."""
