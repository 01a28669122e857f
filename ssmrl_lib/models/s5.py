"""S5 (Smith et al. 2023) with the resettable scan of Lu et al. (2023), for recurrent RL.

One S5 layer is a diagonal complex linear SSM shared by all ``H`` input channels (MIMO)::

    x_t = Λ̄ x_{t-1} + B̄ u_t          (x_t = B̄ u_t where reset_t: a new episode starts)
    y_t = 2 Re(C̃ x_t) + D u_t

Glossary (paper → code)::

    H, P                    d_model, d_state;   P/2 modes kept: n_modes
    Λ = Λ_re + iΛ_im        lambda_re, lambda_im         (HiPPO-LegS eigenvalues at init)
    B̃ = V⁻¹B, C̃ = CV        b_re + i b_im, c_re + i c_im (V: eigenvectors of HiPPO-LegS)
    D, Δ                    d, log_step.exp()
    Λ̄, B̄                    discretize()                 (zero-order hold)
    u_t, x_t, y_t           u, the state (x / state), the output
    ⊕ (resettable)          ssmrl_lib.scan.linear_scan(..., reset)
    W₁, W₂; W               FullGLU.out1, FullGLU.out2; HalfGLU.gate

Shapes: ``u`` is ``[B, L, H]`` (``[B, H]`` for ``step``), the state ``[B, P/2]`` complex per
layer (``[n_layers, B, P/2]`` for a stack), ``reset`` ``[B, L]`` (``[B]`` for ``step``) bool.

Training runs the recurrence over whole rollouts with ``linear_scan`` (log-depth on its
associative backend); acting runs it one step at a time with ``step``. Both compute the same
function, so a policy can be trained on sequences and deployed recurrently.

Only half of the ``P`` eigenvalues are stored: the HiPPO matrix is real, so its eigenvalues come
in conjugate pairs whose contributions to ``y`` are conjugates of each other; keeping one of
each pair and taking ``2 Re(·)`` gives the same output at half the cost.

Layers are stacked as residual blocks, in one of two forms (``S5Config.block``):

``"authors"``, what Lu et al. ran on POPGym (popjaxrl's ``run_popgym.py``: ``S5_ACTIVATION =
"full_glu"``, ``S5_DO_NORM = False``, so no LayerNorm anywhere)::

    y = S5(x);   z = GELU(y);   x ← x + W₁ z ⊙ σ(W₂ z)

with B, C and the GLU drawn as flax's ``lecun_normal`` draws them: a normal truncated at two
standard deviations, its fan-in taken from the second-to-last axis, so B (``P×H``) gets std
1/√P and C (``H×P×2``, real and imaginary parts) std 1/√(H·P).

``"prenorm"``, a pre-LayerNorm block with a half GLU and a final LayerNorm over the stack::

    y = S5(LayerNorm(x));   z = GELU(y);   x ← x + z ⊙ σ(W z);   output LayerNorm(x)

with B ~ N(0, 1/H), C ~ N(0, 1/P) per part and torch's default ``nn.Linear`` for W.

Both blocks draw D ~ N(0, 1) and log Δ uniform in [log Δ_min, log Δ_max], one Δ per kept mode,
and discretise by zero-order hold; for H = P (every profile here) their B coincide in law.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssmrl_lib.errors import SsmrlError, check_choice
from ssmrl_lib.scan import linear_scan

S5_BLOCKS = ("authors", "prenorm")


@dataclass(frozen=True)
class S5Config:
    """Sizes of an S5 stack; defaults are Lu et al.'s POPGym setup (4 layers, H = P = 256)."""

    d_model: int = 256  # H, features per step
    d_state: int = 256  # P, state size before the conjugate-symmetric halving (must be even)
    n_layers: int = 4
    dt_min: float = 0.001  # the learned step Δ starts log-uniform in [dt_min, dt_max]
    dt_max: float = 0.1
    dropout: float = 0.0
    scan_backend: str = "associative"
    block: str = "authors"  # one of S5_BLOCKS, see the module docstring

    def __post_init__(self) -> None:
        if self.d_state < 2 or self.d_state % 2:
            raise SsmrlError(f"S5 d_state must be even and >= 2 (got {self.d_state})")
        check_choice("S5 block", self.block, S5_BLOCKS)


# The standard deviation of a standard normal truncated to [-2, 2] (≈ 0.8796); flax divides
# its truncated draws by it so that the result has exactly the variance asked for.
TRUNCATED_NORMAL_STD = math.sqrt(
    1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(math.sqrt(2))
)


def lecun_normal(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    """flax's ``lecun_normal``: truncated at ±2 standard deviations, std exactly 1/√fan_in."""
    draw = nn.init.trunc_normal_(torch.empty(shape, dtype=torch.float64), a=-2.0, b=2.0)
    return draw / (TRUNCATED_NORMAL_STD * math.sqrt(fan_in))


def input_output_matrices(h: int, p: int, block: str) -> tuple[torch.Tensor, torch.Tensor]:
    """B (``[P, H]`` real) and C (``[H, P]`` complex) before the change to the eigenbasis."""
    if block == "authors":
        b = lecun_normal((p, h), fan_in=p)
        c = torch.complex(*lecun_normal((2, h, p), fan_in=h * p))
    else:
        b = torch.randn(p, h, dtype=torch.float64) / math.sqrt(h)
        c = torch.complex(*torch.randn(2, h, p, dtype=torch.float64)) / math.sqrt(p)
    return b, c


def hippo_legs_normal(n: int) -> torch.Tensor:
    """Normal part of HiPPO-LegS, ``A + p pᵀ``: ``-1/2`` on the diagonal plus a skew matrix.

    HiPPO-LegS itself is not stably diagonalisable; its normal-plus-low-rank split gives a
    normal matrix with the same long-memory structure that diagonalises by a unitary ``V``.
    """
    q = torch.sqrt(2 * torch.arange(n, dtype=torch.float64) + 1)
    legs = -torch.tril(torch.outer(q, q), diagonal=-1) - torch.diag(torch.arange(n) + 1.0)
    p = torch.sqrt(torch.arange(n, dtype=torch.float64) + 0.5)
    return legs + torch.outer(p, p)


def hippo_eigendecomposition(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues ``Λ`` (``[n/2]``) and eigenvectors ``V`` (``[n, n/2]``), one per conjugate pair.

    The skew part ``S`` has ``-iS`` Hermitian, so ``eigh`` gives a unitary ``V`` (``V⁻¹ = Vᴴ``)
    and purely imaginary eigenvalues; the diagonal adds ``-1/2`` to every real part. ``eigh``
    sorts ascending, so the last ``n/2`` are the members of each pair with positive imaginary
    part. (popjaxrl keeps the first ``n/2``, the conjugates: that model is this one with C
    conjugated, and C's distribution is unchanged by conjugation, so both initialise alike.)
    """
    normal = hippo_legs_normal(n)
    real = normal.diagonal().mean()
    imag, vectors = torch.linalg.eigh(-1j * (normal - real * torch.eye(n, dtype=normal.dtype)))
    keep = slice(n // 2, n)
    return torch.complex(real.expand(n // 2), imag[keep]), vectors[:, keep]


class S5Layer(nn.Module):
    """One S5 SSM: parallel scan over sequences (``forward``), one step for acting (``step``)."""

    def __init__(self, config: S5Config):
        super().__init__()
        self.config = config
        h, p = config.d_model, config.d_state
        n = p // 2
        lam, v = hippo_eigendecomposition(p)
        b, c = input_output_matrices(h, p, config.block)
        b_tilde = v.conj().T @ b.to(v.dtype)  # V is unitary: V⁻¹ = Vᴴ
        c_tilde = c @ v
        self.lambda_re = nn.Parameter(lam.real.float())
        self.lambda_im = nn.Parameter(lam.imag.float())
        self.b_re = nn.Parameter(b_tilde.real.float())
        self.b_im = nn.Parameter(b_tilde.imag.float())
        self.c_re = nn.Parameter(c_tilde.real.float())
        self.c_im = nn.Parameter(c_tilde.imag.float())
        self.d = nn.Parameter(torch.randn(h))
        log_dt = torch.rand(n) * math.log(config.dt_max / config.dt_min) + math.log(config.dt_min)
        self.log_step = nn.Parameter(log_dt)
        self.n_modes = n

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-order hold ``Λ̄ = exp(ΛΔ)``, ``B̄ = Λ⁻¹(Λ̄ - 1) B̃``: exact for inputs held over Δ."""
        lam = torch.complex(self.lambda_re, self.lambda_im)
        lam_bar = torch.exp(lam * self.log_step.exp())
        b_bar = ((lam_bar - 1) / lam).unsqueeze(-1) * torch.complex(self.b_re, self.b_im)
        return lam_bar, b_bar

    def _drive(self, u: torch.Tensor, b_bar: torch.Tensor) -> torch.Tensor:
        """``B̄ u`` as one real matmul (``u`` is real), returned complex."""
        z = u @ torch.cat([b_bar.real, b_bar.imag]).T
        return torch.complex(z[..., : self.n_modes], z[..., self.n_modes :])

    def _readout(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``2 Re(C̃ x) + D u`` as one real matmul over interleaved (re, im) parts of ``x``."""
        c = 2 * torch.stack([self.c_re, -self.c_im], dim=-1).flatten(-2)
        return torch.view_as_real(x).flatten(-2) @ c.T + self.d * u

    def initial_state(self, batch_size: int) -> torch.Tensor:
        dtype = torch.promote_types(self.d.dtype, torch.complex64)
        return torch.zeros(batch_size, self.n_modes, dtype=dtype, device=self.d.device)

    def forward(
        self, u: Tensor, state: Tensor | None = None, reset: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Outputs ``[B, L, H]`` and the final state ``[B, P/2]`` for a whole sequence."""
        # 1. Discretise: Λ̄ [P/2], B̄ [P/2, H] (complex).
        lam_bar, b_bar = self.discretize()
        # 2. All states x_t = Λ̄ x_{t-1} + B̄ u_t, cut at resets: [B, L, P/2].
        x = linear_scan(lam_bar, self._drive(u, b_bar), state, reset, self.config.scan_backend)
        # 3. Read out y_t = 2 Re(C̃ x_t) + D u_t: [B, L, H].
        return self._readout(x, u), x[:, -1]

    def step(
        self, u: Tensor, state: Tensor, reset: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One recurrent step: ``u`` ``[B, H]`` and ``state`` ``[B, P/2]`` to output and state."""
        lam_bar, b_bar = self.discretize()
        if reset is not None:  # a new episode starts from x_{-1} = 0
            state = state * (1 - reset.float()).unsqueeze(-1)
        state = lam_bar * state + self._drive(u, b_bar)  # x_t: [B, P/2]
        return self._readout(state, u), state  # y_t: [B, H]


class FullGLU(nn.Module):
    """``W₁ z ⊙ σ(W₂ z)`` with ``z = GELU(y)``: popjaxrl's ``full_glu``, initialised as flax's
    ``Dense`` (LeCun normal weights, zero biases), with flax's default tanh-approximate GELU."""

    def __init__(self, d_model: int):
        super().__init__()
        self.out1 = nn.Linear(d_model, d_model)
        self.out2 = nn.Linear(d_model, d_model)
        with torch.no_grad():
            for linear in (self.out1, self.out2):
                linear.weight.copy_(lecun_normal((d_model, d_model), fan_in=d_model))
                linear.bias.zero_()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = F.gelu(y, approximate="tanh")
        return self.out1(z) * torch.sigmoid(self.out2(z))


class HalfGLU(nn.Module):
    """``z ⊙ σ(W z)`` with ``z = GELU(y)``: popjaxrl's ``half_glu1``."""

    def __init__(self, d_model: int):
        super().__init__()
        self.gate = nn.Linear(d_model, d_model)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = F.gelu(y)
        return z * torch.sigmoid(self.gate(z))


class S5Block(nn.Module):
    """Residual block ``x + dropout(GLU(S5(norm(x))))``: the authors' (no norm, full GLU) or the
    pre-norm one (LayerNorm, half GLU), after ``config.block``.

    The GLU is the only nonlinearity between SSM layers: the SSM is linear in time, so all
    cross-channel nonlinear mixing happens here.
    """

    def __init__(self, config: S5Config):
        super().__init__()
        prenorm = config.block == "prenorm"
        self.norm = nn.LayerNorm(config.d_model) if prenorm else nn.Identity()
        self.ssm = S5Layer(config)
        self.glu = HalfGLU(config.d_model) if prenorm else FullGLU(config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: Tensor, state: Tensor | None = None, reset: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        y, state = self.ssm(self.norm(x), state, reset)
        return x + self.dropout(self.glu(y)), state

    def step(
        self, x: Tensor, state: Tensor, reset: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        y, state = self.ssm.step(self.norm(x), state, reset)
        return x + self.dropout(self.glu(y)), state


class S5Stack(nn.Module):
    """A stack of ``S5Block``s, with a final LayerNorm for the pre-norm block (the authors' has
    none); states stacked as ``[n_layers, B, P/2]``.

    ``reset[:, t]`` marks the first step of a new episode (the previous step's ``done``) and is
    applied in every layer, so no information crosses an episode boundary.
    """

    def __init__(self, config: S5Config):
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(S5Block(config) for _ in range(config.n_layers))
        prenorm = config.block == "prenorm"
        self.norm = nn.LayerNorm(config.d_model) if prenorm else nn.Identity()

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return torch.stack([blk.ssm.initial_state(batch_size) for blk in self.blocks])

    def forward(
        self, x: Tensor, state: Tensor | None = None, reset: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``x`` ``[B, L, H]`` to outputs ``[B, L, H]`` and final states ``[n_layers, B, P/2]``."""
        finals = []
        for i, block in enumerate(self.blocks):
            x, final = block(x, None if state is None else state[i], reset)
            finals.append(final)
        return self.norm(x), torch.stack(finals)

    def step(
        self, x: Tensor, state: Tensor, reset: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One step for acting: ``x`` ``[B, H]``, ``state`` ``[n_layers, B, P/2]``."""
        finals = []
        for i, block in enumerate(self.blocks):
            x, final = block.step(x, state[i], reset)
            finals.append(final)
        return self.norm(x), torch.stack(finals)
