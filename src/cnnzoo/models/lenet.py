"""LeNet-5 (LeCun et al. 1998, "Gradient-Based Learning Applied to Document Recognition",
section II-B and figure 2), for 32x32 grey digits.

    layer  what                                                    trainable parameters
    C1     6 maps, 5x5 conv (28x28)                                156
    S2     2x2 subsampling, one coefficient + one bias per map     12
    C3     16 maps, 5x5 conv reading the S2 maps of Table I        1,516
    S4     2x2 subsampling                                         32
    C5     120 maps, 5x5 conv (1x1: a full connection to S4)       48,120
    F6     84 units                                                10,164
    output 10 units                                                850

Every layer up to F6 squashes its sum with f(a) = 1.7159 tanh(2a/3) (Appendix A). The paper's
output layer is 10 Euclidean RBF units with fixed weights (stylised 7x12 bitmaps of the
digits) trained with its MAP criterion; here it is a linear classifier under cross-entropy, like
every other model of the zoo: what `reset_classifier`, fine-tuning and the trainer expect. The
count above is the linear layer's (84 x 10 + 10), the RBF layer has no trainable parameters.
The layers are the paper's (layers/lecun.py: `Subsampling`, `ConnectionTableConv`). The init is
not: the paper's uniform +-2.4 / fan-in suits its second-order training, but plain SGD barely
moves from it (digits: 46% after 4 epochs), so weights start with standard deviation
1 / sqrt(fan-in) (LeCun et al., "Efficient BackProp", 1998: 98.9%) and subsampling
coefficients at 1/4 (an average).

Input channels: the paper's network reads one channel (`in_chans=1`, the counts above);
`create_model` builds every model for 3 channels unless told otherwise, and C1 then has
6 x (3 x 25 + 1) = 456 parameters.

Feature maps (`features_only`): C1, S2 and S4 (reductions 1, 2, 4, nominal: the unpadded convs
make maps 4 pixels smaller). `stem="cifar"` pads C1 by 2 (the usual way to feed 28 px MNIST to
it, here keeping a 32 px image at 32x32), so C5 gives a 2x2 map that the head averages.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnzoo.cfg import ModelCfg
from cnnzoo.layers import LENET5_C3_TABLE, ConnectionTableConv, ConvNormAct, Subsampling
from cnnzoo.layers.activations import ScaledTanh
from cnnzoo.layers.head import global_pool
from cnnzoo.models.base import Classifier, check_stem
from cnnzoo.models.features import Feature, FeatureInfo
from cnnzoo.registry import register_model


class LeNet5(Classifier):
    classifier_name = "fc"

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        drop_rate: float = 0.0,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        pad = 2 if check_stem(stem) == "cifar" else 0
        self.c1 = ConvNormAct(in_chans, 6, 5, padding=pad, norm=False, act="lecun_tanh")
        self.s2 = Subsampling(6)
        self.c3 = nn.Sequential(ConnectionTableConv(LENET5_C3_TABLE, 5), ScaledTanh())
        self.s4 = Subsampling(16)
        self.c5 = ConvNormAct(16, 120, 5, padding=0, norm=False, act="lecun_tanh")
        self.feature_info = FeatureInfo(
            [Feature("c1", 6, 1), Feature("s2", 6, 2), Feature("s4", 16, 4)]
        )
        self.num_features = 120
        self.f6 = nn.Linear(120, 84)
        self.act6 = ScaledTanh()
        self.head_hidden_size = 84
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(84, num_classes) if num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                bound = (3 / m.weight[0].numel()) ** 0.5  # std 1 / sqrt(fan-in of one unit)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)
            elif isinstance(m, Subsampling):
                nn.init.constant_(m.weight, 0.25)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.c5(self.s4(self.c3(self.s2(self.c1(x)))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.act6(self.f6(global_pool(x))))
        return x if pre_logits else self.fc(x)


CFG = ModelCfg(
    "lenet",
    input_size=32,
    num_classes=10,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    crop_pct=1.0,
    source="paper",
    paper="LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition",
)


@register_model(CFG)
def lenet5(**kw) -> LeNet5:
    """LeNet-5 for 32x32 digits: 60,850 parameters with one input channel."""
    return LeNet5(**kw)
