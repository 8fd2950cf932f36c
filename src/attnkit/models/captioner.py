"""Show, Attend and Tell (Xu et al. 2015): a CNN turns the image into L annotation vectors, one
per cell of its output grid, and the decoder attends over the cells while it writes.

    a = {a_1, ..., a_L} = CNN(x),   a_i in R^D,  L = h * w          (ImageEncoder)
    e_ti = f_att(a_i, h_t),   alpha_ti = softmax_i e_ti,   z_t = sum_i alpha_ti a_i
    h_0 = tanh(W_h mean_i a_i),   c_0 = tanh(W_c mean_i a_i)
    p(y_t | a, y_<t) = softmax(W_out tanh(W_c [z_t; h_t]))

The encoder returns an ordinary :class:`EncoderOutput` (``memory`` = a, all-True mask, ``final`` =
the mean annotation for the initial state), so the decoders are the translation decoders
unchanged: :class:`RNNDecoder` with additive attention (``show_attend_tell``) or
:class:`TransformerDecoder` (``caption_transformer``, whose encoder-decoder attention looks at the
cells), and greedy and beam search are ``decoding/search.py``'s.

Two differences from the paper, both from reusing the translation decoder: the attention query is
the LSTM state after reading y_{t-1} (Luong et al. 2015) rather than h_{t-1}, and the context
reaches the LSTM through input feeding (the previous attentional vector is an input of the next
step); there is no gating scalar beta. The doubly stochastic regulariser
lambda * sum_i (1 - sum_t alpha_ti)^2 is part of the loss (``training/captioning_loss.py``).
Each cell also gets a learned row and column embedding (``cell_positions``), so that "left of"
can be read from z_t; the paper's VGG cells carry position only through their content.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from attnkit.errors import UserError
from attnkit.layers.dropout import dropout
from attnkit.models.base import EncoderOutput

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ConvGrid(nn.Module):
    """A small CNN trained from scratch: stages of two [3x3 convolution, BatchNorm, ReLU], with a
    2x2 max-pool between stages. (B, C_in, H, W) -> (B, channels[-1], H / 2^(S-1), W / 2^(S-1))."""

    def __init__(self, in_channels: int, channels: list[int]):
        super().__init__()
        layers: list[nn.Module] = []
        for i, out in enumerate(channels):
            if i:
                layers.append(nn.MaxPool2d(2))
            for c_in in (in_channels, out):
                layers += [nn.Conv2d(c_in, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            in_channels = out
        self.net = nn.Sequential(*layers)
        self.out_channels = channels[-1]

    def forward(self, images: Tensor) -> Tensor:
        return self.net(images)


class TorchvisionGrid(nn.Module):
    """A torchvision ResNet without its pooling and classifier, weights from a local file:
    (B, C_in, H, W) -> (B, C, H / 32, W / 32). Grayscale images are repeated to three channels.
    ``weights=None`` builds it untrained (a trained captioner's checkpoint then holds its weights)."""

    def __init__(self, name: str, weights: str | None, freeze: bool, pretrained: bool = True):
        super().__init__()
        try:
            import torchvision
        except ImportError:
            raise UserError("model.backbone torchvision: the torchvision package is not installed "
                            "(pip install torchvision), or use backbone: cnn") from None
        net = getattr(torchvision.models, name)(weights=None)
        if pretrained:
            if weights is None or not Path(weights).is_file():
                raise UserError(f"model.torchvision_weights: {weights}: weights file of {name} not found "
                                f"(attnkit downloads nothing; save the state dict there first)")
            try:  # safetensors, never a pickle: save_file(net.state_dict(), "resnet50.safetensors")
                net.load_state_dict(load_file(weights))
            except Exception as err:  # any unreadable or mismatched file is the user's to fix
                raise UserError(f"{weights}: not a {name} state dict in safetensors format "
                                f"({type(err).__name__}: {str(err).splitlines()[0]})") from None
        self.body = nn.Sequential(*list(net.children())[:-2])  # drop avgpool and fc
        self.out_channels = net.fc.in_features
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if freeze:
            self.body.requires_grad_(False)
        self.frozen = freeze

    def train(self, mode: bool = True) -> TorchvisionGrid:
        super().train(mode)
        if self.frozen:  # a frozen backbone keeps its BatchNorm statistics too
            self.body.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        if images.size(1) == 1:
            images = images.expand(-1, 3, -1, -1)
        return self.body((images - self.mean) / self.std)


class ImageEncoder(nn.Module):
    """Image -> annotation vectors a (B, L, D), one per grid cell in row-major order."""

    def __init__(self, backbone: nn.Module, feature_dim: int, image_size: tuple[int, int, int],
                 cell_positions: bool, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.project = nn.Linear(backbone.out_channels, feature_dim)
        channels, height, width = image_size
        with torch.no_grad():  # the grid's shape is fixed by the image size the model reads
            was_training = backbone.training
            grid = backbone.eval()(torch.zeros(1, channels, height, width))
            backbone.train(was_training)
        self.grid_size = (grid.size(2), grid.size(3))  # (h, w)
        h, w = self.grid_size
        self.row = nn.Parameter(torch.zeros(h, 1, feature_dim)) if cell_positions else None
        self.col = nn.Parameter(torch.zeros(1, w, feature_dim)) if cell_positions else None
        if cell_positions:
            nn.init.normal_(self.row, std=0.02)
            nn.init.normal_(self.col, std=0.02)
        self.dropout = dropout

    def forward(self, images: Tensor, need_weights: bool = False) -> EncoderOutput:
        """images (B, C, H, W) in [0, 1] -> EncoderOutput with memory a (B, h*w, D)."""
        grid = self.backbone(images)  # (B, C', h, w)
        a = self.project(grid.permute(0, 2, 3, 1))  # (B, h, w, D)
        if self.row is not None:
            a = a + self.row + self.col  # every cell gets its row's and its column's embedding
        a = dropout(a.flatten(1, 2), self.dropout, self.training)  # (B, L, D), L = h * w
        mask = torch.ones(a.shape[:2], dtype=torch.bool, device=a.device)  # (B, L) every cell may be looked at
        mean = a.mean(1)  # (B, D) what the LSTM's initial h_0 and c_0 are made from
        return EncoderOutput(a, mask, (mean, mean))
