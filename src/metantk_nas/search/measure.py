"""The two measurements of the search — condition number and linear-region count — on one network each.

One :class:`Measurer` owns the C=48 supernet and the thin linear-region network for the whole
search and only switches their masks (``set_masks``), never rebuilding them per candidate. Every
random input (tasks, augmentation, heads, region inputs, weights) is drawn from a generator seeded
with a key the engine derives from ``(seed, round, candidate, repeat)``, so any measurement can be
repeated exactly — which is what makes the search deterministic and resumable.

Candidate batching (``batch_candidates``): :meth:`Measurer.condition_numbers` scores several masks
(a request each: masks, data key, head key) in one batched forward+backward of the supernet, the batch
grouped by request, each group with its own masks, inputs and head (``gram`` backend; the other backends
score one request at a time). Each group's inputs are built exactly as one request alone would build
them, so the values equal the one-at-a-time ones up to float rounding. :meth:`Measurer.prepare` builds
the inputs of a list of requests; on a GPU node the search calls it for the next requests in a
background thread while the GPU works on the current ones (:attr:`Measurer.prefetch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from metantk_nas.data import episodes, store, transforms
from metantk_nas.kernels.condition import ConditionNumber
from metantk_nas.search.config import SearchConfig
from metantk_nas.seeding import derive_seed

CellMasks = dict[str, torch.Tensor]  # cell type -> (9, 7) bool mask tensor
#: One kernel evaluation: (masks, data key, head key).
Request = tuple[CellMasks, int, int]

#: Most groups in one batched pass (automatic choice; ``batch_candidates`` may set more).
MAX_AUTO_GROUPS = 64
#: On a GPU the automatic batch fills at most this fraction of the free memory (measured per group).
CUDA_MEMORY_FRACTION = 0.6


@dataclass(frozen=True)
class GroupInputs:
    """The inputs of one request: MetaNTK tasks and head, or the NTK images."""

    query: torch.Tensor | None = None
    support: torch.Tensor | None = None
    head: nn.Linear | None = None
    images: torch.Tensor | None = None


def _balanced(n: int, size: int) -> list[int]:
    """``n`` items in ceil(n/size) batches of sizes differing by at most one (10 by 4 → 4, 3, 3)."""
    batches = math.ceil(n / size)
    return [n // batches + (index < n % batches) for index in range(batches)]


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
    """Condition numbers (MetaNTK or NTK), linear regions and the other proxies for arbitrary masks.

    Args:
        cfg: the search configuration (kernel, λτ, ρ, output, resolution, tasks, ...).
        condition: ``"metantk"``, ``"ntk"`` or ``None`` (no kernel: ΔC ≡ 0).
        train: the dataset's train split (tasks, NTK images and region inputs come from it).
        device: where the supernet runs.
        prefetch: build the next requests' inputs in a background thread (default: on a GPU with threads to spare).
        algorithm: the MetaNTK algorithm, ``maml`` or ``anil`` (default: ``cfg.kernel``).
        others: names of the registry's proxies scored on the masked supernet besides the condition number
            (:meth:`proxy_value`).
    """

    def __init__(self, cfg: SearchConfig, condition: str | None, train: store.Split, device: torch.device,
                 prefetch: bool | None = None, *, algorithm: str | None = None, others: Sequence[str] = ()) -> None:
        from metantk_nas.kernels.ntk import NtkBackend, resolve_backend
        from metantk_nas.space import SearchSupernet, build_thin_network

        self.cfg = cfg
        self.condition = condition
        self.algorithm = algorithm or cfg.kernel
        self.others = tuple(others)
        self.train = train
        self.device = device
        self.kernel_evaluations = 0
        self.region_evaluations = 0
        self.net: nn.Module | None = None
        if condition is not None or self.others:
            self.net = SearchSupernet(C=cfg.channels, n_cells=cfg.cells, num_classes=train.num_classes,
                                      norm="group").to(device).train()
        # The thin network holds BatchNorm in training mode (batch statistics), as the official counter;
        # it lives on the same device (on a GPU its thousands of tiny ops are cheaper than on the CPU).
        self.thin = build_thin_network(train.num_classes).to(device).train()
        #: Whether several requests share one batched pass (the ``gram`` backend can; the others score one at a time).
        self.batched = resolve_backend(cfg.backend) is NtkBackend.GRAM
        #: Prepare the next requests' inputs in a background thread: on a GPU when the job has threads to spare.
        self.prefetch = (device.type == "cuda" and torch.get_num_threads() > 1) if prefetch is None else prefetch
        self._cuda_groups: int | None = None  # automatic batch on a GPU, once measured

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
        (value,) = self._one_at_a_time([(masks, data_key, head_key)], self.prepare([(masks, data_key, head_key)]))
        return value

    def _group_inputs(self, data_key: int) -> GroupInputs:
        """The images of ``data_key`` (every random draw from generators seeded by the key)."""
        cfg = self.cfg
        if self.condition == "metantk":
            batch = episodes.TaskSampler(self.train.labels, cfg.ways, cfg.shots, cfg.queries,
                                         seed=derive_seed(data_key, "tasks")).stack(cfg.tasks)
            images = self.train.images
            support = episodes.stacked_images(images, batch.support,
                                              self._transform(True, derive_seed(data_key, "augment")))
            query = episodes.stacked_images(images, batch.query, self._transform(False, 0))
            return GroupInputs(query=query, support=support)
        return GroupInputs(images=self._images(data_key)[0])

    def _images(self, data_key: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The TE-NAS batch of ``data_key``: ``ntk_images`` augmented train images and their class labels."""
        rng = np.random.default_rng(derive_seed(data_key, "images"))
        indices = rng.choice(len(self.train), size=self.cfg.ntk_images, replace=False)
        images = self._transform(True, derive_seed(data_key, "augment"))(self.train.images[indices])
        return images, torch.as_tensor(self.train.labels[indices], dtype=torch.long, device=self.device)

    def prepare(self, requests: Sequence[Request]) -> list[GroupInputs]:
        """The inputs of each request (tasks or images, and the MetaNTK head), built exactly as for that
        request alone; requests that share a data key share its images (official pairing: origin and
        candidate). Safe to call from another thread while the supernet computes."""
        from metantk_nas.kernels import make_head

        if self.condition is None:
            raise ValueError("this method measures no condition number")
        images: dict[int, GroupInputs] = {}
        heads: dict[int, nn.Linear] = {}
        out = []
        for _, data_key, head_key in requests:
            if data_key not in images:
                images[data_key] = self._group_inputs(data_key)
            group = images[data_key]
            if self.condition == "metantk":
                if head_key not in heads:
                    heads[head_key] = make_head(self.net.num_features, self.cfg.ways, _generator(head_key),
                                                device=self.device)
                group = GroupInputs(query=group.query, support=group.support, head=heads[head_key])
            out.append(group)
        return out

    def batch_groups(self) -> int:
        """Requests per batched pass: ``batch_candidates``, or automatically (0) one CPU micro-batch of groups
        (:func:`~metantk_nas.kernels.ntk.default_pack`), on a GPU as many as fit in the free memory (measured
        on the first request; 1 until then); 1 for the backends that cannot batch."""
        cfg = self.cfg
        if self.condition is None or not self.batched:
            return 1
        if cfg.batch_candidates:
            return cfg.batch_candidates
        if self.device.type == "cuda":
            return self._cuda_groups or 1
        from metantk_nas.kernels.ntk import cpu_groups_per_pass

        images = (cfg.tasks * cfg.ways * (cfg.shots + cfg.queries) if self.condition == "metantk"
                  else cfg.ntk_images)
        return min(MAX_AUTO_GROUPS, cpu_groups_per_pass(images * cfg.resolution**2))

    def condition_numbers(self, requests: Sequence[Request], prepared: Sequence[GroupInputs] | None = None,
                          ) -> list[float]:
        """The values of :meth:`kernel_conditions`."""
        return [float(c.value) for c in self.kernel_conditions(requests, prepared)]

    def kernel_conditions(self, requests: Sequence[Request], prepared: Sequence[GroupInputs] | None = None,
                          ) -> list[ConditionNumber]:
        """:meth:`kernel_condition` of every request, :meth:`batch_groups` requests per batched pass.

        Each value equals the request's one-at-a-time value up to float rounding (test:
        ``tests/test_candidate_batching.py``); every request counts as one kernel evaluation.
        """
        if self.condition is None:
            raise ValueError("this method measures no condition number")
        prepared = list(prepared) if prepared is not None else self.prepare(requests)
        if len(prepared) != len(requests):
            raise ValueError(f"{len(requests)} requests but {len(prepared)} prepared inputs")
        out: list[ConditionNumber] = []
        start = 0
        if self.batched and not self.cfg.batch_candidates and self.device.type == "cuda" and requests:
            if self._cuda_groups is None:  # measure one request's footprint, then fill the free memory
                out += self._measure_cuda_groups(requests[0], prepared[0])
                start = 1
        if start < len(requests):
            for size in _balanced(len(requests) - start, self.batch_groups()):
                batch = slice(start, start + size)
                if size == 1:
                    out += self._one_at_a_time(requests[batch], prepared[batch])
                else:
                    out += self._grouped(requests[batch], prepared[batch])
                start += size
        return out

    def _one_at_a_time(self, requests: Sequence[Request], prepared: Sequence[GroupInputs]) -> list[ConditionNumber]:
        from metantk_nas.kernels import metantk_condition, ntk_condition

        cfg, out = self.cfg, []
        for (masks, _, _), inputs in zip(requests, prepared, strict=True):
            self.net.set_masks(masks["normal"], masks["reduce"])
            if self.condition == "metantk":
                out.append(metantk_condition(
                    self.net, inputs.query, inputs.support, head=inputs.head,
                    algorithm=self.algorithm, lam_tau=cfg.lam_tau, reg=cfg.reg, output=cfg.output, backend=cfg.backend,
                ))
            else:
                out.append(ntk_condition(self.net, inputs.images, output=cfg.output, backend=cfg.backend))
            self.kernel_evaluations += 1
        return out

    def _grouped(self, requests: Sequence[Request], prepared: Sequence[GroupInputs]) -> list[ConditionNumber]:
        from metantk_nas.kernels import metantk_conditions, ntk_conditions

        cfg = self.cfg
        self.net.set_group_masks([(masks["normal"], masks["reduce"]) for masks, _, _ in requests])
        if self.condition == "metantk":
            out = metantk_conditions(
                self.net, [g.query for g in prepared], [g.support for g in prepared], heads=[g.head for g in prepared],
                algorithm=self.algorithm, lam_tau=cfg.lam_tau, reg=cfg.reg, output=cfg.output,
            )
        else:
            out = ntk_conditions(self.net, [g.images for g in prepared], output=cfg.output)
        self.kernel_evaluations += len(requests)
        return out

    def _measure_cuda_groups(self, request: Request, prepared: GroupInputs) -> list[ConditionNumber]:
        """Score one request alone and size the automatic GPU batch from its peak memory."""
        device = self.device
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        out = self._one_at_a_time([request], [prepared])
        torch.cuda.synchronize(device)
        footprint = max(torch.cuda.max_memory_allocated(device) - baseline, 1)
        free, _ = torch.cuda.mem_get_info(device)
        free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # cached by torch
        self._cuda_groups = max(1, min(MAX_AUTO_GROUPS, int(CUDA_MEMORY_FRACTION * free // footprint)))
        return out

    # -- the other proxies --------------------------------------------------------------------------

    def proxy_value(self, name: str, masks: CellMasks, data_key: int) -> float:
        """Proxy ``name`` of the registry on the masked supernet, with the TE-NAS batch of ``data_key`` (and its
        labels for the proxies that take a loss); every other proxy scores the same images for the same key."""
        from metantk_nas.proxies.registry import get_proxy

        proxy = get_proxy(name)
        if name not in self.others or proxy.network != "any" or proxy.inputs != "images":
            raise ValueError(f"proxy {name!r} is not one of this measurer's supernet image proxies {self.others}")
        images, labels = self._images(data_key)
        self.net.set_masks(masks["normal"], masks["reduce"])
        return proxy.score(self.net, images, labels) if proxy.needs_labels else proxy.score(self.net, images)

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
