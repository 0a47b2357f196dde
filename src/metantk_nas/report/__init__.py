"""metantk_nas.report."""
