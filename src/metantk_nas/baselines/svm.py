"""The MetaOptNet-SVM head (Lee et al., CVPR 2019, "Meta-Learning with Differentiable Convex Optimization").

Each episode fits a multi-class linear SVM of Crammer & Singer on the support embeddings by solving its dual,
a QP, with the differentiable interior point of :mod:`metantk_nas.baselines.qp`; the query logits are the
SVM's scores, and the episode's loss reaches the backbone through the support Gram matrix and the query–support
inner products (the QP's other data, labels and C, are constants).

Derivation (support x_i ∈ ℝ^d with labels y_i, i = 1..s; classes k = 1..N; δ the Kronecker delta).
Primal, with one weight vector w_k per class and one slack ξ_i per support:

    min_{W, ξ}  ½ Σ_k ‖w_k‖² + C Σ_i ξ_i    s.t.  w_{y_i}·x_i − w_k·x_i ≥ 1 − δ_{k,y_i} − ξ_i   for all i, k

(k = y_i gives ξ_i ≥ 0), i.e. ξ_i = max_k (1 − δ_{k,y_i} + w_k·x_i − w_{y_i}·x_i) at the optimum. Lagrangian with
β_ik ≥ 0:

    L = ½ Σ_k ‖w_k‖² + C Σ_i ξ_i − Σ_{i,k} β_ik (w_{y_i}·x_i − w_k·x_i − 1 + δ_{k,y_i} + ξ_i).

∂L/∂ξ_i = 0 gives Σ_k β_ik = C; ∂L/∂w_k = 0 gives w_k = Σ_i α_ik x_i with α_ik = C δ_{k,y_i} − β_ik. So
Σ_k α_ik = 0, and β_ik ≥ 0 is α_ik ≤ C δ_{k,y_i}. Substituting, Σ_{i,k} β_ik (w_{y_i} − w_k)·x_i = Σ_{i,k} α_ik
w_k·x_i = Σ_k ‖w_k‖² and Σ_{i,k} β_ik (1 − δ_{k,y_i}) = sC − Σ_i β_{i,y_i} = Σ_i α_{i,y_i}, so the dual is

    max_α  −½ Σ_k α_kᵀ K α_k + Σ_i α_{i,y_i}    s.t.  α_ik ≤ C δ_{k,y_i},   Σ_k α_ik = 0   for every i,

with the linear kernel K = X Xᵀ (s × s) and α_k the k-th column of α (s × N). As the QP of ``solve_qp`` in
z = vec(α) (index i·N + k): Q = K ⊗ I_N, p = −onehot(y), G = I, h = C·onehot(y), A = I_s ⊗ 1_Nᵀ, b = 0.
Strong duality holds (a convex QP with linear constraints), so the primal value at W = αᵀX equals minus the
QP's value. The logits of a query x are w_k·x = Σ_i α_ik ⟨x_i, x⟩.

Ridge: Q = K ⊗ I is only positive semidefinite (singular when d < s or supports coincide), which leaves α,
though not W nor the logits, non-unique. MetaOptNet's released code adds 1.0·I to Q ("seems to help avoid PSD
error from the QP solver"). That changes the problem: Q = (K + ridge·I) ⊗ I is the same SVM on embeddings
extended by a private coordinate √ridge per support (queries get 0 there). This solver does not need it: it
converges on singular kernels and the tests check its logits against scipy there, so the default ``ridge`` is
0 (the SVM of the paper's equations); ``ridge=1.0`` reproduces MetaOptNet's code.

MetaOptNet's miniImageNet settings (paper §4 and its released ``train.py``/``test.py``):

==========================  =================================================================================
setting                     MetaOptNet-SVM, miniImageNet
==========================  =================================================================================
backbone                    ResNet-12 (64-160-320-640 filters, DropBlock)
meta-batch                  8 episodes
training episodes           5-way, 15 shots, 6 queries per class
SVM head                    C = 0.1, 15 QP iterations, learnable logit scale (``enable_scale``, init 1)
loss                        cross-entropy with label smoothing 0.1
optimiser                   SGD, Nesterov momentum 0.9, weight decay 5e-4
learning rate               0.1 × (1, 0.06, 0.012, 0.0024), changing at epochs 20, 40, 50
length                      60 epochs × 1000 mini-batches (8000 episodes per epoch)
testing                     SVM head on 5-way 1-/5-shot tasks with 15 queries per class
==========================  =================================================================================

Unsure, not verified here: MetaOptNet's embedding for miniImageNet may be the flattened 640×5×5 map
(16 000-d) rather than a globally pooled 640-d vector; whether ``test.py`` also runs 15 QP iterations (it calls
the head with its defaults, as recalled); and the exact epoch of each lr change (its ``LambdaLR`` is stepped at
the start of each epoch, so epoch 20, counted from 1, would already use the factor 0.06).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metantk_nas.baselines.qp import solve_qp


def _crammer_singer_qp(support: Tensor, support_labels: Tensor, n_way: int, C: float,
                       ridge: float) -> tuple[Tensor, ...]:
    """The dual's (Q, p, G, h, A, b) in float64: Q batched, the constraint matrices shared by the tasks."""
    support = support.to(torch.float64)
    tasks, shots = support.shape[:2]
    size = shots * n_way
    gram = support @ support.transpose(-1, -2)
    eye_way = torch.eye(n_way, dtype=gram.dtype, device=gram.device)
    Q = (gram[:, :, None, :, None] * eye_way[:, None, :]).reshape(tasks, size, size)  # K ⊗ I_N
    if ridge:
        Q = Q + ridge * torch.eye(size, dtype=Q.dtype, device=Q.device)
    onehot = F.one_hot(support_labels.long(), n_way).to(Q.dtype).reshape(tasks, size)
    G = torch.eye(size, dtype=Q.dtype, device=Q.device)
    A = torch.kron(torch.eye(shots, dtype=Q.dtype, device=Q.device), Q.new_ones(1, n_way))  # I_s ⊗ 1ᵀ
    return Q, -onehot, G, C * onehot, A, Q.new_zeros(shots)


def svm_cs_dual(support: Tensor, support_labels: Tensor, n_way: int, C: float = 0.1, max_iter: int = 15, *,
                ridge: float = 0.0) -> Tensor:
    """The Crammer–Singer dual solution α (T, s, n_way) of each task's support set (module docstring).

    support (T, s, d), support_labels (T, s) in 0..n_way-1; differentiable w.r.t. ``support``.
    """
    Q, p, G, h, A, b = _crammer_singer_qp(support, support_labels, n_way, C, ridge)
    alpha = solve_qp(Q, p, G, h, A, b, max_iter=max_iter)
    return alpha.view(support.shape[0], support.shape[1], n_way).to(support.dtype)


def svm_cs_logits(query: Tensor, support: Tensor, support_labels: Tensor, n_way: int, C: float = 0.1,
                  max_iter: int = 15, *, ridge: float = 0.0) -> Tensor:
    """Logits (T, q, n_way) of the queries (T, q, d) under each task's Crammer–Singer SVM: w_k·x = Σ_i α_ik ⟨x_i, x⟩."""
    alpha = svm_cs_dual(support, support_labels, n_way, C, max_iter, ridge=ridge)
    return (query @ support.transpose(-1, -2)) @ alpha


class SVMHead(nn.Module):
    """MetaOptNet's classification head: a learnable scale (init 1, ``enable_scale``) times the SVM logits.

    The scale matters because the SVM's scores are margins of about ±1, too flat for a softmax loss.
    """

    def __init__(self, C: float = 0.1, max_iter: int = 15, ridge: float = 0.0) -> None:
        super().__init__()
        self.C, self.max_iter, self.ridge = C, max_iter, ridge
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, query: Tensor, support: Tensor, support_labels: Tensor, n_way: int) -> Tensor:
        return self.scale * svm_cs_logits(query, support, support_labels, n_way, self.C, self.max_iter,
                                          ridge=self.ridge)

    def extra_repr(self) -> str:
        return f"C={self.C}, max_iter={self.max_iter}, ridge={self.ridge}"
