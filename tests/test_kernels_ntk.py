"""Empirical NTK: backends agree, official parameter set, ANIL kernel = k × feature Gram."""

import numpy as np
import pytest
import torch
from torch import nn

from _kernels_helpers import single_thread

from metantk_nas.kernels import empirical_ntk, make_head, metantk_condition, ntk_condition
from metantk_nas.kernels.ntk import _Outputs, default_parameters
from metantk_nas.space import SearchSupernet

BACKENDS = ("loop", "opacus", "func")

_one_thread = pytest.fixture(autouse=True, scope="module")(single_thread)


def _supernet(C: int, seed: int = 0) -> SearchSupernet:
    torch.manual_seed(seed)
    return SearchSupernet(C=C, n_cells=5, num_classes=64, norm="group").train()


def _assert_backends_agree(model, images, head, output):
    results = {b: empirical_ntk(model, images, head=head, output=output, backend=b) for b in BACKENDS}
    ref = results["loop"]
    for name, res in results.items():
        scale = np.abs(ref.theta).max()
        assert np.abs(res.theta - ref.theta).max() <= 1e-5 * scale, name
        assert np.abs(res.last_layer - ref.last_layer).max() <= 1e-5 * np.abs(ref.last_layer).max(), name
    return ref


@pytest.mark.parametrize("output", ["sum", "logits"])
def test_backends_agree_on_small_supernet(output):
    model = _supernet(16)
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    head = make_head(model.num_features, 3, torch.Generator().manual_seed(2))
    ref = _assert_backends_agree(model, images, head, output)
    assert ref.theta.shape == ((4, 4) if output == "sum" else (12, 12))


@pytest.mark.slow
@pytest.mark.parametrize("output", ["sum", "logits"])
def test_backends_agree_on_full_size_supernet(output):
    """Acceptance 1 at paper size (C=48, 5 cells, 30 images 32×32): minutes on a 2-core CPU."""
    model = _supernet(48)
    images = torch.randn(30, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    head = make_head(model.num_features, 5, torch.Generator().manual_seed(2))
    _assert_backends_agree(model, images, head, output)


def test_default_parameters_are_official_weights_only():
    model = _supernet(16)
    model.set_masks(*[torch.zeros(9, 7, dtype=torch.bool).index_fill_(1, torch.tensor([1]), True)] * 2)
    head = make_head(model.num_features, 5, torch.Generator().manual_seed(0))
    named = dict(default_parameters(_Outputs(model, head), torch.randn(1, 3, 16, 16)))
    assert "head.weight" in named and "head.bias" not in named
    assert "model.classifier.weight" not in named  # the model's own classifier is not on the path
    assert all(name.endswith(".weight") for name in named)
    modules = dict(model.named_modules())
    assert not any(isinstance(modules[n[len("model.") : -len(".weight")]], nn.GroupNorm) for n in named if n != "head.weight")
    alive_convs = {n for n, p in model.named_alive_parameters() if n.endswith(".weight") and p.dim() == 4}
    assert {n[len("model.") :] for n in named if n != "head.weight"} == alive_convs  # removed ops never run


@pytest.mark.parametrize("output", ["sum", "logits"])
def test_anil_kernel_is_feature_gram(output):
    model = _supernet(16)
    images = torch.randn(5, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    head = make_head(model.num_features, 5, torch.Generator().manual_seed(4))
    res = empirical_ntk(model, images, head=head, output=output, backend="func")
    with torch.no_grad():
        features = model(images)[0].double().numpy()
    gram = features @ features.T
    expected = 5 * gram if output == "sum" else np.kron(gram, np.eye(5))
    np.testing.assert_allclose(res.last_layer, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    assert np.all(np.linalg.eigvalsh(res.theta - res.last_layer) > -1e-4 * np.abs(res.theta).max())


def test_without_head_uses_model_logits_and_has_no_last_layer():
    model = _supernet(16)
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    res = empirical_ntk(model, images, backend="loop")
    assert res.last_layer is None and res.theta.shape == (3, 3)
    assert np.isfinite(ntk_condition(model, images, backend="func").value)


def test_metantk_condition_zero_features_and_shapes():
    model = _supernet(16)
    g = torch.Generator().manual_seed(6)
    query, support = torch.randn(2, 2, 3, 16, 16, generator=g), torch.randn(2, 2, 3, 16, 16, generator=g)
    head = make_head(model.num_features, 5, torch.Generator().manual_seed(7))
    cond = metantk_condition(model, query, support, head=head, algorithm="anil", lam_tau=1.0, reg=1e-5)
    assert cond.eigenvalues.shape == (4,)
    with torch.no_grad():
        model.lastact[0].weight.zero_()  # GN scale 0 → features 0 → Θ = 𝒦 = 0: official 1e5
    assert metantk_condition(model, query, support, head=head).value == 1e5


def test_bad_inputs_are_rejected():
    model = _supernet(16)
    images = torch.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match="backend"):
        empirical_ntk(model, images, backend="jvp")
    with pytest.raises(ValueError, match="output"):
        empirical_ntk(model, images, output="mean")
    batchnorm = SearchSupernet(C=16, n_cells=5, norm="batch").train()
    with pytest.raises(ValueError, match="BatchNorm"):
        empirical_ntk(batchnorm, images)
    with pytest.raises(ValueError, match=r"\(features, logits\)"):
        empirical_ntk(nn.Conv2d(3, 3, 1), images)


def test_make_head_reproducible_default_init():
    a = make_head(576, 5, torch.Generator().manual_seed(0))
    b = make_head(576, 5, torch.Generator().manual_seed(0))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert a.weight.abs().max() <= 1 / 576**0.5
