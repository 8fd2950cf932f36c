"""Professor forcing (Lamb et al. 2016): make free-running behave like teacher forcing.

Per batch, the decoder runs twice: teacher-forced on the gold prefix, giving states h^tf, and free
running on its own predictions, giving h^fr (decoded without gradients through the decoder contract,
then recomputed with gradients by one teacher-forced pass over those predictions: the same states).
A discriminator D reads a sequence of states and says how likely it came from teacher forcing:

    discriminator:  min  -log D(h^tf) - log(1 - D(h^fr))       on detached states, its own optimiser
    model:          min  NLL(teacher forced) + weight * (-log D(h^fr))   [+ weight * (-log(1 - D(h^tf)))]

Both are per sequence: the NLL summed over the sequence's tokens, the adversarial cost one term.

The discriminator's update never touches the model (its inputs are detached), and the model's update
never touches the discriminator (frozen while the model's loss is computed; the trainer's optimiser
holds only the model). As in the paper, the model learns from D only while D's accuracy is at least
``generator_min_accuracy``, and D stops updating while its accuracy is above ``discriminator_max_accuracy``.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnkit.checkpoint import optimizer_state, optimizer_tensors
from attnkit.config.strategies import ProfessorForcingConfig
from attnkit.data.batching import Batch
from attnkit.decoding.rollout import DecoderView, rollout
from attnkit.runtime import full_precision, recurrent
from attnkit.specials import PAD
from attnkit.training.strategies import Strategy, token_nll


class Discriminator(nn.Module):
    """D(h_1..h_T) = sigmoid(MLP(mean_t BiGRU(h)_t)): the logit that a sequence of decoder states
    came from teacher forcing."""

    def __init__(self, input_dim: int, hidden: int, num_layers: int):
        super().__init__()
        self.rnn = nn.GRU(input_dim, hidden, num_layers, batch_first=True, bidirectional=True)
        self.mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, states: Tensor, mask: Tensor) -> Tensor:
        """states (B, T, D), mask (B, T) True at real positions -> logits (B,)."""
        lengths = mask.sum(1).clamp_min(1)
        packed = pack_padded_sequence(states, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = recurrent(self.rnn, packed)
        h, _ = pad_packed_sequence(out, batch_first=True, total_length=states.size(1))  # (B, T, 2H)
        pooled = (h * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(-1)  # (B, 2H)
        return self.mlp(pooled).squeeze(-1)


@contextmanager
def frozen(module: nn.Module):
    """No gradient reaches ``module``'s parameters inside (gradients still flow through it)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def accuracy(logit_tf: Tensor, logit_fr: Tensor) -> float:
    """How often D is right: teacher-forced sequences scored > 0, free-running ones < 0."""
    return float(((logit_tf > 0).float().sum() + (logit_fr < 0).float().sum()) / (logit_tf.numel() + logit_fr.numel()))


class ProfessorForcing(Strategy):
    name = "professor_forcing"

    def __init__(self, cfg: ProfessorForcingConfig, label_smoothing: float = 0.0):
        self.cfg, self.label_smoothing = cfg, label_smoothing
        self.discriminator: Discriminator | None = None  # built on the first batch, for the decoder's size
        self.optimizer: torch.optim.Optimizer | None = None

    def build(self, input_dim: int, device: torch.device | str = "cpu") -> Discriminator:
        """D, made on the CPU the first time (so its initial weights are the same on every device), and
        moved to ``device`` with its optimiser's moments."""
        if self.discriminator is None:
            self.discriminator = Discriminator(input_dim, self.cfg.disc_hidden, self.cfg.disc_layers)
            self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.cfg.disc_lr)
        if next(self.discriminator.parameters()).device != torch.device(device):
            self.discriminator.to(device)
            self.optimizer.load_state_dict(self.optimizer.state_dict())  # casts its moments to the weights' device
        return self.discriminator

    def update_discriminator(self, h_tf: Tensor, h_fr: Tensor, mask: Tensor) -> tuple[float, float]:
        """Up to ``disc_steps`` updates of D on detached states; its accuracy (before the first) and loss."""
        D, acc, d_loss = self.build(h_tf.size(-1), h_tf.device), None, 0.0
        h_tf, h_fr = h_tf.detach().float(), h_fr.detach().float()
        for _ in range(self.cfg.disc_steps):
            logit_tf, logit_fr = D(h_tf, mask), D(h_fr, mask)
            step_acc = accuracy(logit_tf, logit_fr)
            acc = step_acc if acc is None else acc
            loss = (F.binary_cross_entropy_with_logits(logit_tf, torch.ones_like(logit_tf))
                    + F.binary_cross_entropy_with_logits(logit_fr, torch.zeros_like(logit_fr)))
            d_loss = loss.item()
            if step_acc > self.cfg.discriminator_max_accuracy:
                break
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)  # nothing of D's own gradients is left behind
        return acc, d_loss

    def loss(self, model, batch: Batch, step: int) -> tuple[Tensor, int, dict]:
        c = self.cfg
        view = DecoderView(model, batch)
        teacher = view.forward(batch.tgt_in)  # logits, hidden (B, T, D)
        nll = token_nll(teacher.logits, batch.tgt_out, self.label_smoothing)
        free = view.forward(rollout(view, batch.tgt_in, 0.0, c.feed, c.temperature))
        mask = batch.tgt_out != PAD  # (B, T): the positions both runs are compared over
        with full_precision(nll.device):  # the discriminator runs in fp32
            d_acc, d_loss = self.update_discriminator(teacher.hidden, free.hidden, mask)
            adversarial = torch.zeros((), device=nll.device)
            if c.weight > 0 and d_acc >= c.generator_min_accuracy:
                with frozen(self.discriminator) as D:
                    logit_fr = D(free.hidden.float(), mask)
                    adversarial = F.binary_cross_entropy_with_logits(logit_fr, torch.ones_like(logit_fr))
                    if c.teacher_forced_term:
                        logit_tf = D(teacher.hidden.float(), mask)
                        adversarial = adversarial + F.binary_cross_entropy_with_logits(
                            logit_tf, torch.zeros_like(logit_tf))
        # as in the paper, the adversarial cost is per sequence, beside the sequence's NLL (a sum over its
        # tokens): both are summed over the batch, and the trainer's division by the token count scales
        # them alike
        total = nll + c.weight * adversarial * batch.tgt_out.size(0)
        stats = {"nll": nll.item() / batch.num_tokens, "d_accuracy": d_acc, "d_loss": d_loss,
                 "adversarial": adversarial.item()}
        return total, batch.num_tokens, stats

    # -- what a checkpoint keeps, so that --resume continues the discriminator too -----------------
    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        if self.discriminator is None:
            return {}, {}
        tensors = {f"disc.{k}": v.detach().contiguous() for k, v in self.discriminator.state_dict().items()}
        opt_tensors, opt_doc = optimizer_tensors(self.optimizer)
        tensors.update({f"optim.{k}": v for k, v in opt_tensors.items()})
        return tensors, {"optimizer": opt_doc}

    def load_state_dict(self, tensors: dict[str, Tensor], doc: dict) -> None:
        if not tensors:
            return
        weights = {k[len("disc."):]: v for k, v in tensors.items() if k.startswith("disc.")}
        self.build(weights["rnn.weight_ih_l0"].size(1)).load_state_dict(weights)
        opt = {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")}
        self.optimizer.load_state_dict(optimizer_state(opt, doc["optimizer"]))
