"""A small p4 / p4m ResNet (escnn), the reference model of the grid diagnostics
(:mod:`symtrain.metrics.grid`): exactly rot90-equivariant at input sizes 1 (mod 4)."""

from __future__ import annotations

from torch import nn


def p4_resnet(in_channels: int = 3, channels: int = 4, downsamplings: int = 2, *,
              flips: bool = False, num_classes: int | None = None) -> nn.Module:
    """A small p4 (or p4m with ``flips``) ResNet built with escnn: a 3×3 lifting
    convolution, then ``downsamplings`` residual blocks, each a stride-2 3×3 ``R2Conv``
    (padding 1) → ReLU → 3×3 ``R2Conv`` plus a stride-2 1×1 shortcut. Output: regular
    feature maps, or invariant logits (group pooling + spatial mean + linear) with
    ``num_classes``. Needs escnn (imported here, not with symtrain)."""
    from .._escnn import ensure_escnn

    ensure_escnn()
    from escnn import gspaces
    from escnn import nn as enn

    gspace = gspaces.flipRot2dOnR2(4) if flips else gspaces.rot2dOnR2(4)
    t_in = enn.FieldType(gspace, in_channels * [gspace.trivial_repr])
    reg = enn.FieldType(gspace, channels * [gspace.regular_repr])

    class Block(enn.EquivariantModule):
        def __init__(self):
            super().__init__()
            self.in_type = self.out_type = reg
            self.conv1 = enn.R2Conv(reg, reg, 3, stride=2, padding=1)
            self.relu = enn.ReLU(reg)
            self.conv2 = enn.R2Conv(reg, reg, 3, padding=1)
            self.shortcut = enn.R2Conv(reg, reg, 1, stride=2)

        def forward(self, x):
            return self.relu(self.conv2(self.relu(self.conv1(x))) + self.shortcut(x))

        def evaluate_output_shape(self, input_shape):
            b, c, h, w = input_shape
            return b, c, (h - 1) // 2 + 1, (w - 1) // 2 + 1

    layers = [enn.R2Conv(t_in, reg, 3, padding=1), enn.ReLU(reg)] + [Block() for _ in range(downsamplings)]
    body = enn.SequentialModule(*layers)
    if num_classes is None:
        return body.eval()

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.in_type = t_in
            self.body = body
            self.pool = enn.GroupPooling(reg)
            self.head = nn.Linear(channels, num_classes)

        def forward(self, x):
            return self.head(self.pool(self.body(x)).tensor.mean((-2, -1)))

    return Classifier().eval()
