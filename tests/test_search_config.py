"""SearchConfig validation, method specs and the round-state file."""

from __future__ import annotations

import math

import pytest

from metantk_nas.search.config import SearchConfig
from metantk_nas.search.methods import METHODS, get_method, paper_settings, table_methods
from metantk_nas.search.state import SearchState, load_state, save_state


def test_defaults_are_the_official_script() -> None:
    cfg = SearchConfig()
    assert (cfg.method, cfg.kernel, cfg.reg, cfg.repeats, cfg.tasks, cfg.resolution) == ("metantk-nas", "maml", 1e-3, 3, 3, 32)
    assert math.isinf(cfg.lam_tau)
    assert (cfg.delta, cfg.init, cfg.output, cfg.pairing, cfg.edge_origin) == ("relative", "default", "sum", "official", "stale")


def test_round_trip_through_dict() -> None:
    cfg = SearchConfig(kernel="anil", lam_tau=1.0, reg=1e-5, cells=8, pairing="paired")
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg
    assert SearchConfig.from_dict({"lam_tau": "inf"}).lam_tau == math.inf


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"pairng": "paired"}, r"unknown key\(s\) \['pairng'\].*allowed keys"),
        ({"pairing": "both"}, r"cfg.yaml: key 'pairing' must be one of \['official', 'paired'\], got 'both'"),
        ({"delta": "ratio"}, r"'delta' must be one of \['relative', 'absolute'\]"),
        ({"repeats": 0}, r"'repeats' must be an integer ≥ 1, got 0"),
        ({"repeats": 2.0}, r"'repeats' must be an integer"),
        ({"lam_tau": -1.0}, r"'lam_tau' must be a number > 0"),
        ({"lam_tau": "fast"}, r"'lam_tau' must be a number"),
        ({"method": "fixed"}, r"'genotype' is required for methods \['zoo', 'fixed'\]"),
        ({"genotype": "metanas/in-v2"},
         r"allowed for the given-cell methods \['metanas', 'zoo', 'fixed'\] and nowhere else"),
        ({"ops": ["skip_connect", "skip_connect"]}, r"'ops' must be distinct"),
        ({"ops": ["none"]}, r"'ops' must be a list of values from"),
        ({"device": "tpu"}, r"'device' must be one of"),
        ({"method": "darts"}, r"'method' must be one of"),
    ],
)
def test_bad_values_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchConfig.from_dict(values, source="cfg.yaml")


def test_method_registry_and_paper_settings_match_appendix_e() -> None:
    assert list(METHODS) == ["metanas", "metantk-nas", "te-nas", "linear-regions", "random", "custom", "zoo", "fixed"]
    assert table_methods("table1") == ("metanas", "metantk-nas")
    assert table_methods("table2") == ("metantk-nas", "te-nas", "linear-regions", "random", "custom")
    assert get_method("linear-regions").proxies == ("linear-regions",)
    assert get_method("te-nas").proxies == ("ntk", "linear-regions")
    assert SearchConfig().proxy_names == ("metantk-maml", "linear-regions")
    assert SearchConfig(kernel="anil").proxy_names == ("metantk-anil", "linear-regions")
    assert SearchConfig(method="custom", proxies=("naswot", "metantk")).proxy_names == ("naswot", "metantk-maml")
    assert not get_method("random").prunes and get_method("metantk-nas").prunes
    assert get_method("metanas").genotype == "metanas/in-v2" and get_method("fixed").genotype is None
    assert paper_settings("mini", 8) == {"kernel": "anil", "lam_tau": 1.0, "reg": 1e-5}
    assert paper_settings("tiered", 8)["lam_tau"] == math.inf
    with pytest.raises(ValueError, match="no Appendix E setting"):
        paper_settings("cifar", 5)
    with pytest.raises(ValueError, match=r"unknown search method 'darts'; expected one of \['metanas'"):
        get_method("darts")
    assert SearchConfig(method="fixed", genotype="metanas/in-v2").genotype == "metanas/in-v2"
    assert SearchConfig(method="metanas").genotype is None  # its published cell (the registry's) by default


@pytest.mark.parametrize("values, message", [
    ({"method": "custom"}, "key 'proxies' is required for method 'custom'"),
    ({"method": "te-nas", "proxies": ["naswot"]}, "refused for the preset methods"),
    ({"method": "custom", "proxies": []}, "key 'proxies' is required"),
    ({"method": "custom", "proxies": ["ntk", "metantk-anil"]}, "at most one condition number"),
    ({"method": "custom", "proxies": ["naswot", "naswot"]}, "each proxy at most once"),
    ({"method": "custom", "proxies": ["zen"]}, "proxies"),
])
def test_custom_proxies_are_checked(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchConfig.from_dict(values, source="cfg.yaml")


def test_state_round_trip_and_refuses_other_config(tmp_path) -> None:
    config = SearchConfig().to_dict()
    dataset = {"files": {"images.npy": "abc"}}
    state = SearchState(config=config, dataset=dataset, masks={"normal": [[True] * 7] * 9, "reduce": [[True] * 7] * 9})
    state.trace.append({"cond_origin": math.inf, "cond_candidate": float("nan"), "regions_origin": 3})
    save_state(tmp_path, state)
    loaded = load_state(tmp_path, config, dataset)
    assert loaded is not None and loaded.trace[0]["cond_origin"] == math.inf
    assert math.isnan(loaded.trace[0]["cond_candidate"]) and loaded.trace[0]["regions_origin"] == 3
    assert load_state(tmp_path / "empty", config, dataset) is None
    with pytest.raises(ValueError, match=r"different config \(differs in \['repeats'\]\)"):
        load_state(tmp_path, {**config, "repeats": 1}, dataset)
    (tmp_path / "search_state.json").write_text("{broken")
    with pytest.raises(ValueError, match="corrupt search state"):
        load_state(tmp_path, config, dataset)
