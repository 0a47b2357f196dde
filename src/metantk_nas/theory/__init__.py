"""metantk_nas.theory."""
