"""The pruning search (Paper Algorithm 1 + the official edge stage), one engine for every method.

Rounds (reference §4.2): all 7 ops alive on all 9 edges of both cell types; each round every
alive op on an edge with more than one alive op is a candidate (normal → reduce, edge 0..8, op
0..6); ΔC and ΔR are averaged over ``repeats``; the candidates are ranked globally and the
least important op of every edge is removed. When every edge holds one op, the edge stage (§4.4)
keeps the best 2 inputs of nodes 3 and 4, ranking within each node. Then the genotype (§4.5).

Edge-stage quirk, reproduced by default (``edge_origin: stale``): the official code sets the
MetaNTK *origin* network's masks once at the start of the edge stage, so after the first node's
edge is removed, every later group (and the whole reduce cell) compares candidates against that
stale origin, while the candidates and the linear-region origin include the earlier removals.
``edge_origin: fresh`` uses the current masks for the origin instead.

Randomness: the supernet weights are drawn per round from ``(seed, round)``; tasks, augmentation,
heads and region inputs per ``(seed, round, candidate, repeat)`` (``pairing: official``: origin
and candidate see the same images but different fresh heads, as the official code) or per
``(seed, round, repeat)`` (``pairing: paired``: the origin is evaluated once per round and repeat
with the same tasks, weights and head as every candidate).
"""

from __future__ import annotations

import math
import os
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metantk_nas.io import write_json
from metantk_nas.provenance import collect
from metantk_nas.search.config import SearchConfig
from metantk_nas.search.methods import get_method
from metantk_nas.search.ranking import (
    DELTA_ROUNDING,
    Ranked,
    rank_candidates,
    round_decimals,
    select_edge_removals,
    select_op_removals,
)
from metantk_nas.search.state import SearchState, clear_state, load_state, save_state
from metantk_nas.search.trace import write_trace
from metantk_nas.seeding import derive_seed

CELL_TYPES = ("normal", "reduce")
#: The registry name of the linear-region count (the thin network; the trace's ``regions_*`` columns).
LINEAR_REGIONS = "linear-regions"
#: Inputs kept per intermediate node by the edge stage (official ``num_per_group``).
EDGES_PER_NODE = 2
#: Official paper-scale counts: 6 rounds with 126+108+90+72+54+36 op candidates, then 7 edge candidates per cell.
PAPER_OP_CANDIDATES = 486
PAPER_EDGE_CANDIDATES = 14


@dataclass(frozen=True)
class Candidate:
    """Remove ``op`` on ``edge`` of cell type ``cell`` (edge stage: the edge's single op, i.e. the edge)."""

    cell: str
    edge: int
    op: int


@dataclass(frozen=True)
class Measurement:
    """One repeat of one candidate (``None`` and Δ = 0 for a score the method does not use)."""

    cond_origin: float | None
    cond_candidate: float | None
    regions_origin: int | None
    regions_candidate: int | None
    delta_c: float
    delta_r: float
    #: per other proxy of the method, in its order: (origin, candidate, Δ)
    others: tuple[tuple[float, float, float], ...] = ()


@dataclass(frozen=True)
class ProxyPlan:
    """How a search measures its proxies (``cfg.proxy_names``, in rank-sum order): at most one condition number
    (``Measurer`` batches it), linear regions (the thin network), and the others on the masked supernet."""

    names: tuple[str, ...]

    @property
    def kernel(self) -> str | None:
        """The condition-number proxy (``metantk-maml``, ``metantk-anil`` or ``ntk``), if any."""
        from metantk_nas.proxies.registry import PROXIES

        return next((name for name in self.names if PROXIES[name].network == "supernet"), None)

    @property
    def regions(self) -> bool:
        return LINEAR_REGIONS in self.names

    @property
    def others(self) -> tuple[str, ...]:
        """The proxies scored on the masked supernet from plain images (the zero-cost proxies)."""
        from metantk_nas.proxies.registry import PROXIES

        return tuple(name for name in self.names if PROXIES[name].network == "any")

    def measurer_options(self) -> dict[str, Any]:
        """``Measurer`` arguments: the condition (``metantk``/``ntk``/None), the MetaNTK algorithm, the others."""
        from metantk_nas.proxies.registry import kernel_condition

        condition, algorithm = kernel_condition(self.kernel) if self.kernel else (None, None)
        return {"condition": condition, "algorithm": algorithm, "others": self.others}

    def directions(self) -> list[bool]:
        """Per proxy, whether a larger mean Δ = (origin − candidate)/|origin| is more prunable: the removal of
        the op improved (or least hurt) a lower-is-better score, i.e. ``not higher_is_better``."""
        from metantk_nas.proxies.registry import PROXIES

        return [not PROXIES[name].higher_is_better for name in self.names]


# -- masks ----------------------------------------------------------------------------------------


def initial_masks(ops: tuple[str, ...]) -> dict[str, Any]:
    """Every op of ``ops`` alive on every edge of both cell types (official: all 7 primitives)."""
    from metantk_nas.space import PRIMITIVES, all_alive_mask

    masks = {cell: all_alive_mask() for cell in CELL_TYPES}
    for cell in CELL_TYPES:
        for column, name in enumerate(PRIMITIVES):
            masks[cell][:, column] = name in ops
    return masks


def _clone(masks: dict[str, Any]) -> dict[str, Any]:
    return {cell: mask.clone() for cell, mask in masks.items()}


def _without(masks: dict[str, Any], cell: str, edge: int, op: int | None) -> dict[str, Any]:
    """A copy of ``masks`` with one op (or, for ``op=None``, the whole edge) removed."""
    out = _clone(masks)
    if op is None:
        out[cell][edge, :] = False
    else:
        out[cell][edge, op] = False
    return out


def _alive(masks: dict[str, Any], cell: str, edge: int) -> list[int]:
    return [op for op, flag in enumerate(masks[cell][edge].tolist()) if flag]


def op_candidates(masks: dict[str, Any]) -> list[Candidate]:
    """Every alive op on every edge with more than one alive op, in the official enumeration order."""
    out = []
    for cell in CELL_TYPES:
        for edge in range(masks[cell].shape[0]):
            ops = _alive(masks, cell, edge)
            if len(ops) > 1:
                out.extend(Candidate(cell, edge, op) for op in ops)
    return out


def remaining_candidates(masks: dict[str, Any], edges_done: bool) -> int:
    """Candidates still to score: k + (k−1) + … + 2 per edge with k alive ops, plus the edge stage."""
    from metantk_nas.space import NODE_GROUPS

    total = 0
    for cell in CELL_TYPES:
        for edge in range(masks[cell].shape[0]):
            k = len(_alive(masks, cell, edge))
            total += k * (k + 1) // 2 - 1 if k > 1 else 0
    if not edges_done:
        total += len(CELL_TYPES) * sum(stop - start for start, stop in NODE_GROUPS if stop - start > EDGES_PER_NODE)
    return total


def _masks_to_lists(masks: dict[str, Any]) -> dict[str, list[list[bool]]]:
    return {cell: mask.tolist() for cell, mask in masks.items()}


def _masks_from_lists(lists: dict[str, list[list[bool]]]) -> dict[str, Any]:
    import torch

    return {cell: torch.tensor(lists[cell], dtype=torch.bool) for cell in CELL_TYPES}


# -- scoring --------------------------------------------------------------------------------------


def _delta(origin: float, candidate: float, mode: str, precision: int, rounding: str, proxy: str) -> float:
    """Official relative change (origin − candidate)/|origin| rounded per repeat (``rounding``: see
    ``ranking.DELTA_ROUNDING``), or the paper's plain difference."""
    if not (math.isfinite(origin) and math.isfinite(candidate)):
        raise ValueError(f"proxy {proxy!r} gave a non-finite value (origin {origin}, candidate {candidate}): "
                         "its change cannot be ranked")
    if mode == "absolute":
        return float(origin - candidate)
    if origin == 0:
        raise ValueError(f"relative delta of proxy {proxy!r} undefined: the origin measurement is 0 "
                         "(use delta: absolute)")
    return round_decimals((origin - candidate) / abs(origin), precision, rounding)


def _mean(values: list[float]) -> float:
    """Plain left-to-right mean (the tie detection compares these raw means exactly)."""
    return sum(values) / len(values)


class _Later:
    """A deferred call with a future's ``result()`` (no background thread)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args

    def result(self) -> Any:
        return self.fn(*self.args)


class _Scorer:
    """Measures ΔC and ΔR of candidate masks against origin masks, in either pairing mode.

    Kernel evaluations are batched (``measurer.batch_groups()`` masks per batched pass): the candidates go
    in blocks whose evaluations — origin and candidate per repeat (official), or the candidate per repeat
    after the round's origins (paired) — fill one pass; then each candidate's region counts, in order. Every
    evaluation draws its inputs from the same keys as one at a time, so the results do not depend on the
    block size. With ``measurer.prefetch`` the next block's inputs are built in a background thread while
    the current block computes (a GPU node: host data preparation overlaps the GPU work).
    """

    def __init__(self, cfg: SearchConfig, plan: ProxyPlan, measurer: Any, tick: Callable[[Candidate], None]) -> None:
        self.cfg = cfg
        self.plan = plan
        self.measurer = measurer
        self.tick = tick

    def _measure(self, c0: float | None, c1: float | None, r0: int | None, r1: int | None,
                 others: list[tuple[float, float]] = ()) -> Measurement:
        cfg, plan = self.cfg, self.plan

        def delta(origin: float, candidate: float, rounding: str, proxy: str | None) -> float:
            return _delta(origin, candidate, cfg.delta, cfg.precision, rounding, proxy)

        delta_c = 0.0 if c0 is None else delta(c0, c1, DELTA_ROUNDING["c"], plan.kernel)
        delta_r = 0.0 if r0 is None else delta(r0, r1, DELTA_ROUNDING["r"], LINEAR_REGIONS)
        measured = tuple((o, c, delta(o, c, DELTA_ROUNDING["c"], name))
                         for name, (o, c) in zip(plan.others, others, strict=True))
        return Measurement(c0, c1, r0, r1, delta_c, delta_r, measured)

    def _others(self, masks: dict[str, Any], data_key: int) -> list[float]:
        """The other proxies of ``masks`` on the inputs of ``data_key``."""
        return [self.measurer.proxy_value(name, masks, data_key) for name in self.plan.others]

    def score(self, unit: tuple, candidates: list[Candidate], candidate_masks: list[dict[str, Any]],
              cond_origin: dict[str, Any], region_origin: dict[str, Any]) -> list[list[Measurement]]:
        """Per candidate, one :class:`Measurement` per repeat."""
        cfg, m = self.cfg, self.measurer
        base = (cfg.seed, *unit)
        repeats = range(cfg.repeats)
        kernels = m.condition is not None
        counts = self.plan.regions
        paired = cfg.pairing == "paired"
        if paired:
            keys = [(derive_seed(*base, "data", r), derive_seed(*base, "head", r)) for r in repeats]
            if counts:
                m.init_thin(derive_seed(*base, "thin"))
                shared_inputs = [m.region_inputs(data) for data, _ in keys]
                origin_regions = [m.regions(region_origin, inputs) for inputs in shared_inputs]
            origin_others = [self._others(region_origin, data) for data, _ in keys]
            origin_requests = [(cond_origin, data, head) for data, head in keys] if kernels else []
        else:
            origin_requests = []

        def requests(index: int) -> list[tuple]:
            """The kernel evaluations of candidate ``index``, in the one-at-a-time order."""
            if not kernels:
                return []
            masks = candidate_masks[index]
            if paired:
                return [(masks, data, head) for data, head in keys]
            out = []
            for r in repeats:
                data = derive_seed(*base, "data", index, r)
                out += [(cond_origin, data, derive_seed(*base, "head", index, r, "origin")),
                        (masks, data, derive_seed(*base, "head", index, r, "candidate"))]
            return out

        per_candidate = (1 if paired else 2) * cfg.repeats if kernels else 0

        def block_from(start: int) -> range:
            extra = len(origin_requests) if start == 0 else 0
            size = max(1, (m.batch_groups() - extra) // max(per_candidate, 1))
            return range(start, min(start + size, len(candidates)))

        def prepare(block: range) -> tuple[list, Any, dict]:
            wanted = (origin_requests if block.start == 0 else []) + [r for i in block for r in requests(i)]
            inputs = m.prepare(wanted) if wanted else None
            regions = {} if paired or not counts else {(i, r): m.region_inputs(derive_seed(*base, "data", i, r))
                                                       for i in block for r in repeats}
            return wanted, inputs, regions

        results: list[list[Measurement]] = []
        origin_conds: list[float] = []
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search-prefetch") if m.prefetch else None
        try:
            block = block_from(0)
            job = pool.submit(prepare, block) if pool else _Later(prepare, block)
            while block:
                wanted, inputs, regions = job.result()
                following = block_from(block.stop) if block.stop < len(candidates) else None
                if following:  # built while this block's kernels run
                    job = pool.submit(prepare, following) if pool else _Later(prepare, following)
                conds = m.condition_numbers(wanted, inputs) if wanted else []
                if paired and block.start == 0:
                    origin_conds, conds = conds[:len(origin_requests)], conds[len(origin_requests):]
                for offset, index in enumerate(block):
                    mine = conds[offset * per_candidate:(offset + 1) * per_candidate]
                    masks = candidate_masks[index]
                    if paired:
                        results.append([
                            self._measure(origin_conds[r] if kernels else None, mine[r] if kernels else None,
                                          origin_regions[r] if counts else None,
                                          m.regions(masks, shared_inputs[r]) if counts else None,
                                          list(zip(origin_others[r], self._others(masks, keys[r][0]), strict=True)))
                            for r in repeats
                        ])
                    else:
                        if counts:
                            m.init_thin(derive_seed(*base, "thin", index))
                        measured = []
                        for r in repeats:
                            data = derive_seed(*base, "data", index, r)
                            measured.append(self._measure(
                                mine[2 * r] if kernels else None, mine[2 * r + 1] if kernels else None,
                                m.regions(region_origin, regions[index, r]) if counts else None,
                                m.regions(masks, regions[index, r]) if counts else None,
                                list(zip(self._others(region_origin, data), self._others(masks, data), strict=True))))
                        results.append(measured)
                    self.tick(candidates[index])
                block = following
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        return results


def _deltas(plan: ProxyPlan, x: Measurement) -> list[float]:
    """The Δ of every proxy of ``plan`` in one measurement, in the plan's order."""
    others = iter(delta for _, _, delta in x.others)
    return [x.delta_c if name == plan.kernel else x.delta_r if name == LINEAR_REGIONS else next(others)
            for name in plan.names]


def _mean_deltas(plan: ProxyPlan, repeats: list[Measurement]) -> list[float]:
    """Per proxy, the mean Δ over the repeats (what is ranked)."""
    per_repeat = [_deltas(plan, x) for x in repeats]
    return [_mean([deltas[i] for deltas in per_repeat]) for i in range(len(plan.names))]


def _rank(plan: ProxyPlan, candidates: list[Candidate], results: list[list[Measurement]]) -> list[Ranked[Candidate]]:
    means = [_mean_deltas(plan, reps) for reps in results]
    scores = [[(c, mean[i]) for c, mean in zip(candidates, means, strict=True)] for i in range(len(plan.names))]
    return rank_candidates(scores, plan.directions())


def _trace_rows(plan: ProxyPlan, stage: str, round_index: int, candidates: list[Candidate],
                results: list[list[Measurement]], ranking: list[Ranked[Candidate]],
                removed: list[Candidate]) -> list[dict[str, Any]]:
    from metantk_nas.search.trace import proxy_columns
    from metantk_nas.space import PRIMITIVES

    by_key = {item.key: item for item in ranking}
    gone = set(removed)
    rows = []
    for candidate, repeats in zip(candidates, results, strict=True):
        ranks = dict(zip(plan.names, by_key[candidate].ranks, strict=True))
        means = dict(zip(plan.names, _mean_deltas(plan, repeats), strict=True))
        for r, x in enumerate(repeats):
            row = {
                "stage": stage, "round": round_index, "cell": candidate.cell, "edge": candidate.edge,
                "op": PRIMITIVES[candidate.op], "repeat": r,
                "cond_origin": x.cond_origin, "cond_candidate": x.cond_candidate,
                "regions_origin": x.regions_origin, "regions_candidate": x.regions_candidate,
                "delta_c": x.delta_c, "delta_r": x.delta_r,
                "delta_c_mean": means.get(plan.kernel, 0.0), "delta_r_mean": means.get(LINEAR_REGIONS, 0.0),
                "rank_c": ranks.get(plan.kernel, 0), "rank_r": ranks.get(LINEAR_REGIONS, 0),
                "score": by_key[candidate].score, "removed": int(candidate in gone),
            }
            for name, values in zip(plan.others, x.others, strict=True):
                row.update(zip(proxy_columns(name), (*values, means[name], ranks[name]), strict=True))
            rows.append(row)
    return rows


def _describe(removed: list[Candidate], stage: str, round_index: int) -> dict[str, Any]:
    from metantk_nas.space import PRIMITIVES

    return {"stage": stage, "round": round_index,
            "removed": [{"cell": c.cell, "edge": c.edge, "op": PRIMITIVES[c.op]} for c in removed]}


def _op_round(scorer: _Scorer, masks: dict[str, Any], round_index: int) -> tuple[dict[str, Any], list, dict]:
    """One op-pruning round: score, rank globally, remove one op per edge."""
    scorer.measurer.init_supernet(derive_seed(scorer.cfg.seed, "weights", "ops", round_index))
    candidates = op_candidates(masks)
    candidate_masks = [_without(masks, c.cell, c.edge, c.op) for c in candidates]
    results = scorer.score(("ops", round_index), candidates, candidate_masks, masks, masks)
    ranking = _rank(scorer.plan, candidates, results)
    removed = select_op_removals(ranking, lambda c: (c.cell, c.edge))
    new_masks = _clone(masks)
    for c in removed:
        new_masks[c.cell][c.edge, c.op] = False
    return (new_masks, _trace_rows(scorer.plan, "ops", round_index, candidates, results, ranking, removed),
            _describe(removed, "ops", round_index))


def _edge_stage(scorer: _Scorer, masks: dict[str, Any], round_index: int) -> tuple[dict[str, Any], list, dict]:
    """Keep the best 2 inputs of every node, ranking within the node (official ``prune_func_rank_group``)."""
    from metantk_nas.space import NODE_GROUPS

    cfg = scorer.cfg
    scorer.measurer.init_supernet(derive_seed(cfg.seed, "weights", "edges"))
    stale = _clone(masks)
    masks = _clone(masks)
    rows: list[dict[str, Any]] = []
    all_removed: list[Candidate] = []
    for cell in CELL_TYPES:
        for group, (start, stop) in enumerate(NODE_GROUPS):
            if stop - start <= EDGES_PER_NODE:
                continue
            candidates = []
            for edge in range(start, stop):
                ops = _alive(masks, cell, edge)
                if len(ops) != 1:
                    raise ValueError(f"edge stage expects one op per edge; {cell} edge {edge} has {len(ops)}")
                candidates.append(Candidate(cell, edge, ops[0]))
            candidate_masks = [_without(masks, c.cell, c.edge, None) for c in candidates]
            cond_origin = stale if cfg.edge_origin == "stale" else masks
            results = scorer.score(("edges", cell, group), candidates, candidate_masks, cond_origin, masks)
            ranking = _rank(scorer.plan, candidates, results)
            removed = select_edge_removals(ranking, keep=EDGES_PER_NODE)
            rows += _trace_rows(scorer.plan, "edges", round_index, candidates, results, ranking, removed)
            all_removed += removed
            for c in removed:
                masks[c.cell][c.edge, :] = False
    return masks, rows, _describe(all_removed, "edges", round_index)


# -- outputs --------------------------------------------------------------------------------------


def _device_name(device: Any) -> str:
    if getattr(device, "type", "cpu") == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def _write_outputs(out_dir: Path, cfg: SearchConfig, genotype: Any, trace: list[dict[str, Any]],
                   summary: dict[str, Any]) -> None:
    wall = summary["wall_seconds"]
    on_gpu = summary["device"] == "cuda"
    provenance = collect(cfg.to_dict(), cfg.seed)
    payload = {
        "method": cfg.method,
        "genotype": str(genotype),
        "seed": cfg.seed,
        **summary,
        "gpu_hours": wall / 3600.0 if on_gpu else 0.0,
        "cpu_hours": 0.0 if on_gpu else wall / 3600.0,
        "config": cfg.to_dict(),
        "provenance": provenance,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    # load_genotype() reads the "genotype" key of this file; the rest records where it came from.
    write_json(out_dir / "genotype.json", {"genotype": genotype.to_dict(), "string": str(genotype),
                                           "method": cfg.method, "seed": cfg.seed, "provenance": provenance})
    write_trace(out_dir / "trace.csv", trace, ProxyPlan(cfg.proxy_names).others)
    write_json(out_dir / "search.json", payload)


def default_work_dir(out_dir: str | os.PathLike) -> Path:
    """Where the round state lives unless given: ``OUT/../.work/<OUT name>`` (outside the declared outputs)."""
    out = Path(out_dir).resolve()
    return out.parent / ".work" / out.name


#: Settings that change how fast a search runs, never what it finds: a state saved with other values resumes.
SPEED_ONLY_KEYS = ("batch_candidates",)


def _state_config(cfg: SearchConfig) -> dict[str, Any]:
    """The settings a saved round state must match to be resumed."""
    return {key: value for key, value in cfg.to_dict().items() if key not in SPEED_ONLY_KEYS}


def _dataset_fingerprint(train: Any, dataset_dir: Path) -> dict[str, Any]:
    return {"name": dataset_dir.resolve().name, "train_files": train.manifest.get("files"),
            "train_counts": train.manifest.get("counts")}


def run_search(
    cfg: SearchConfig,
    dataset_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    work_dir: str | os.PathLike | None = None,
    *,
    on_round_end: Callable[[int], None] | None = None,
    progress: bool = True,
) -> Any:
    """Run the search that ``cfg.method`` names and write ``genotype.json``, ``trace.csv``, ``search.json``.

    Args:
        cfg: the search configuration.
        dataset_dir: a prepared store (its ``train`` split is searched on); unused by random/fixed.
        out_dir: where the three outputs go (written atomically, only at the end).
        work_dir: where the round state is saved after every finished round; default
            :func:`default_work_dir`. An existing state of the same config and dataset is resumed.
        on_round_end: called with the number of finished rounds after each round's state is saved
            (a hook for progress reporting, and for tests that interrupt a search).
        progress: show a tqdm bar (round, candidate, ETA).

    Returns:
        The :class:`~metantk_nas.space.Genotype`.
    """
    spec = get_method(cfg.method)
    out = Path(out_dir)
    started = time.perf_counter()
    if not spec.prunes:
        from metantk_nas.space import load_genotype, random_genotype

        genotype = random_genotype(cfg.seed) if spec.source == "random" else load_genotype(cfg.genotype or spec.genotype)
        _write_outputs(out, cfg, genotype, [], {
            "wall_seconds": time.perf_counter() - started, "device": "cpu", "device_name": _device_name(None),
            "kernel_evaluations": 0, "region_evaluations": 0, "candidates": 0, "rounds": [], "sessions": 1,
        })
        return genotype
    if dataset_dir is None:
        raise ValueError(f"method {cfg.method!r} needs a dataset (--dataset DIR)")
    return _prune(cfg, Path(dataset_dir), out, work_dir, on_round_end, progress, started)


def _prune(cfg: SearchConfig, dataset_dir: Path, out: Path,
           work_dir: str | os.PathLike | None, on_round_end: Callable[[int], None] | None,
           progress: bool, started: float) -> Any:
    from tqdm.auto import tqdm

    from metantk_nas.data.store import open_split
    from metantk_nas.device import select_device
    from metantk_nas.search.measure import Measurer
    from metantk_nas.seeding import seed_everything
    from metantk_nas.space import PRIMITIVES, genotype_from_masks

    device = select_device(cfg.device)  # claims a GPU: before anything touches CUDA (seeding does)
    seed_everything(cfg.seed)
    train = open_split(dataset_dir, "train")
    work = Path(work_dir) if work_dir is not None else default_work_dir(out)
    fingerprint = _dataset_fingerprint(train, dataset_dir)
    identity = _state_config(cfg)
    state = load_state(work, identity, fingerprint) or SearchState(
        config=identity, dataset=fingerprint, masks=_masks_to_lists(initial_masks(cfg.ops)))
    if state.sessions:
        print(f"resuming from {work} after {state.op_rounds} finished pruning rounds", file=sys.stderr, flush=True)
    state.sessions += 1
    prior_seconds = state.elapsed_seconds
    masks = _masks_from_lists(state.masks)
    plan = ProxyPlan(cfg.proxy_names)
    options = plan.measurer_options()
    measurer = Measurer(cfg, options.pop("condition"), train, device, **options)

    bar = tqdm(total=state.candidates_done + remaining_candidates(masks, state.edges_done),
               initial=state.candidates_done, disable=not progress, unit="cand", dynamic_ncols=True)

    def tick(candidate: Candidate) -> None:
        state.candidates_done += 1
        bar.set_postfix_str(f"{candidate.cell} e{candidate.edge} {PRIMITIVES[candidate.op]}", refresh=False)
        bar.update(1)

    scorer = _Scorer(cfg, plan, measurer, tick)

    def finish_unit(new_masks: dict[str, Any], rows: list, removal: dict) -> None:
        state.masks = _masks_to_lists(new_masks)
        state.trace += rows
        state.removals.append(removal)
        state.kernel_evaluations += measurer.kernel_evaluations
        state.region_evaluations += measurer.region_evaluations
        measurer.kernel_evaluations = measurer.region_evaluations = 0
        state.elapsed_seconds = prior_seconds + time.perf_counter() - started
        save_state(work, state)

    try:
        while op_candidates(masks):
            bar.set_description(f"ops round {state.op_rounds}")
            masks, rows, removal = _op_round(scorer, masks, state.op_rounds)
            state.op_rounds += 1
            finish_unit(masks, rows, removal)
            if on_round_end is not None:
                on_round_end(state.op_rounds)
        if not state.edges_done:
            bar.set_description("edge stage")
            masks, rows, removal = _edge_stage(scorer, masks, state.op_rounds)
            state.edges_done = True
            finish_unit(masks, rows, removal)
            if on_round_end is not None:
                on_round_end(state.op_rounds + 1)
    finally:
        bar.close()

    genotype = genotype_from_masks(masks["normal"], masks["reduce"])
    _write_outputs(out, cfg, genotype, state.trace, {
        "wall_seconds": prior_seconds + time.perf_counter() - started,
        "device": device.type,
        "device_name": _device_name(device),
        "kernel_evaluations": state.kernel_evaluations,
        # kernel evaluations per batched pass (of the last session): float32 rounding depends on it
        "batch_groups": measurer.batch_groups(),
        "region_evaluations": state.region_evaluations,
        "candidates": state.candidates_done,
        "rounds": state.removals,
        "sessions": state.sessions,
        "dataset": {"path": str(dataset_dir.resolve()), **fingerprint},
        "masks": state.masks,
    })
    clear_state(work)
    return genotype
