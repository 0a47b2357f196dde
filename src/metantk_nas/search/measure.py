"""The two measurements of the search — condition number and linear-region count — on one network each.

One :class:`Measurer` owns the C=48 supernet and the thin linear-region network for the whole
search and only switches their masks (``set_masks``), never rebuilding them per candidate. Every
random input (tasks, augmentation, heads, region inputs, weights) is drawn from a generator seeded
with a key the engine derives from ``(seed, round, candidate, repeat)``, so any measurement can be
repeated exactly — which is what makes the search deterministic and resumable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from metantk_nas.data import episodes, store, transforms
from metantk_nas.kernels.condition import ConditionNumber
from metantk_nas.search.config import SearchConfig
from metantk_nas.seeding import derive_seed

CellMasks = dict[str, torch.Tensor]  # cell type -> (9, 7) bool mask tensor


def _generator(key: int) -> torch.Generator:
    """A CPU generator: the same key gives the same numbers on any device."""
    return torch.Generator().manual_seed(key % 2**63)


def initialise(model: nn.Module, key: int, scheme: str) -> None:
    """Re-initialise every parameter of ``model`` from ``key``.

    ``default`` re-runs each module's own ``reset_parameters`` (PyTorch defaults: the official
    search, whose Kaiming option never matched, §2.2); ``kaiming`` draws conv/linear weights from
    Kaiming normal (fan-in, ReLU gain) with zero biases, as the paper states. Initialisation runs on
    the CPU under a forked RNG so the weights do not depend on the device or on other RNG users.
    """
    device = next(model.parameters()).device
    if device.type != "cpu":
        model.to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(key % 2**63)
        for module in model.modules():
            if scheme == "kaiming" and isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif hasattr(module, "reset_parameters"):
                module.reset_parameters()
    if device.type != "cpu":
        model.to(device)


class Measurer:
    """Condition numbers (MetaNTK or NTK) and linear regions for arbitrary masks.

    Args:
        cfg: the search configuration (kernel, λτ, ρ, output, resolution, tasks, ...).
        condition: ``"metantk"``, ``"ntk"`` or ``None`` (no kernel: ΔC ≡ 0).
        train: the dataset's train split (tasks, NTK images and region inputs come from it).
        device: where the supernet runs.
    """

    def __init__(self, cfg: SearchConfig, condition: str | None, train: store.Split, device: torch.device) -> None:
        from metantk_nas.space import SearchSupernet, build_thin_network

        self.cfg = cfg
        self.condition = condition
        self.train = train
        self.device = device
        self.kernel_evaluations = 0
        self.region_evaluations = 0
        self.net: nn.Module | None = None
        if condition is not None:
            self.net = SearchSupernet(C=cfg.channels, n_cells=cfg.cells, num_classes=train.num_classes,
                                      norm="group").to(device).train()
        # The thin network holds BatchNorm in training mode (batch statistics), as the official counter;
        # it lives on the same device (on a GPU its thousands of tiny ops are cheaper than on the CPU).
        self.thin = build_thin_network(train.num_classes).to(device).train()

    # -- weights ------------------------------------------------------------------------------------

    def init_supernet(self, key: int) -> None:
        """Fresh weights for the supernet (fixed for one round, shared by origin and candidates)."""
        if self.net is not None:
            initialise(self.net, key, self.cfg.init)

    def init_thin(self, key: int) -> None:
        """Fresh weights for the thin linear-region network."""
        initialise(self.thin, key, self.cfg.init)

    # -- condition number ---------------------------------------------------------------------------

    def _transform(self, augment: bool, key: int) -> Callable[[np.ndarray], torch.Tensor]:
        """The search transform of one batch (supports augmented from ``key``'s generator, queries not)."""
        generator = _generator(key) if augment else None

        def transform(pixels: np.ndarray) -> torch.Tensor:
            return transforms.search_transform(pixels, augment, generator, size=self.cfg.resolution,
                                               device=self.device)

        return transform

    def condition_number(self, masks: CellMasks, data_key: int, head_key: int) -> float:
        """The value of :meth:`kernel_condition` (what the search ranks)."""
        return float(self.kernel_condition(masks, data_key, head_key).value)

    def kernel_condition(self, masks: CellMasks, data_key: int, head_key: int) -> ConditionNumber:
        """Condition number of ``masks`` on the inputs of ``data_key`` with the head of ``head_key``.

        MetaNTK: ``tasks`` tasks of the train split (supports augmented, queries not) and a fresh
        random ``ways``-way head. NTK (TE-NAS): ``ntk_images`` augmented train images and the
        network's own classifier. ``head_key`` is unused by NTK.
        """
        from metantk_nas.kernels import make_head, metantk_condition, ntk_condition

        if self.net is None:
            raise ValueError("this method measures no condition number")
        cfg = self.cfg
        self.net.set_masks(masks["normal"], masks["reduce"])
        if self.condition == "metantk":
            batch = episodes.TaskSampler(self.train.labels, cfg.ways, cfg.shots, cfg.queries,
                                         seed=derive_seed(data_key, "tasks")).stack(cfg.tasks)
            images = self.train.images
            support = episodes.stacked_images(images, batch.support,
                                              self._transform(True, derive_seed(data_key, "augment")))
            query = episodes.stacked_images(images, batch.query, self._transform(False, 0))
            head = make_head(self.net.num_features, cfg.ways, _generator(head_key), device=self.device)
            result = metantk_condition(
                self.net, query, support, head=head,
                algorithm=cfg.kernel, lam_tau=cfg.lam_tau, reg=cfg.reg, output=cfg.output, backend=cfg.backend,
            )
        else:
            rng = np.random.default_rng(derive_seed(data_key, "images"))
            indices = rng.choice(len(self.train), size=cfg.ntk_images, replace=False)
            images = self._transform(True, derive_seed(data_key, "augment"))(self.train.images[indices])
            result = ntk_condition(self.net, images, output=cfg.output, backend=cfg.backend)
        self.kernel_evaluations += 1
        return result

    # -- linear regions -----------------------------------------------------------------------------

    def region_inputs(self, data_key: int) -> list[torch.Tensor]:
        """``region_batches`` batches of ``region_batch_size`` 1×3×3 inputs drawn for ``data_key``.

        The images of the batches are drawn without replacement, as the official shuffled loader does
        (``proxies.shuffled_batches``: consecutive batches of a permutation of the train split, a new
        permutation when one is used up). The official iterator lives for the whole search; here each
        measurement starts its own permutation from ``data_key``, so a measurement does not depend on the
        ones before it (resuming, and the origin and candidates sharing a key see the same inputs).
        """
        from metantk_nas.proxies import region_inputs, shuffled_batches

        cfg = self.cfg
        batches = shuffled_batches(len(self.train), cfg.region_batch_size, cfg.region_batches,
                                   _generator(derive_seed(data_key, "regions", "order")))
        return [
            region_inputs(self.train.images, index, _generator(derive_seed(data_key, "regions", batch))).to(self.device)
            for batch, index in enumerate(batches)
        ]

    def regions(self, masks: CellMasks, inputs: list[torch.Tensor]) -> int:
        """Distinct ReLU activation patterns of the thin network over all batches of ``inputs``.

        Each batch is a separate forward (BatchNorm normalises with that batch's statistics, as the
        official counter feeds its 1000-input batches one by one); the patterns of all batches are
        pooled before counting.
        """
        from metantk_nas.proxies import activation_codes

        self.thin.set_masks(masks["normal"], masks["reduce"])
        self.region_evaluations += 1
        codes = np.concatenate([activation_codes(self.thin, batch) for batch in inputs])
        return int(np.unique(codes, axis=0).shape[0])
