"""``tinynn.nn``: modules, layers, losses, and ``functional``, ``init``, ``utils``."""
from . import functional, init, utils  # noqa: F401
from .activation import (CELU, ELU, GELU, GLU, Hardsigmoid, Hardswish, Hardtanh, LeakyReLU, LogSigmoid,  # noqa: F401
                         LogSoftmax, Mish, PReLU, ReLU, ReLU6, SELU, Sigmoid, SiLU, Softmax, Softmin, Softplus,
                         Softsign, Tanh, Tanhshrink)
from .containers import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential  # noqa: F401
from .conv import (CircularPad1d, CircularPad2d, ConstantPad1d, ConstantPad2d, Conv1d, Conv2d,  # noqa: F401
                   ConvTranspose1d, ConvTranspose2d, Fold, ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
                   ReplicationPad2d, Unfold, ZeroPad1d, ZeroPad2d)
from .dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d  # noqa: F401
from .flatten import Flatten, Unflatten  # noqa: F401
from .linear import Bilinear, Identity, Linear  # noqa: F401
from .loss import (BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, GaussianNLLLoss,  # noqa: F401
                   HingeEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss, MarginRankingLoss, MSELoss, NLLLoss,
                   PoissonNLLLoss, SmoothL1Loss, SoftMarginLoss, TripletMarginLoss)
from .module import Module  # noqa: F401
from .normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d,  # noqa: F401
                            InstanceNorm2d, LayerNorm, LocalResponseNorm, RMSNorm)
from .parameter import Parameter  # noqa: F401
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d, AdaptiveMaxPool2d,  # noqa: F401
                      AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d)
from .sparse import Embedding  # noqa: F401
from .upsampling import PixelShuffle, Upsample, UpsamplingBilinear2d, UpsamplingNearest2d  # noqa: F401
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell  # noqa: F401,E402
from .attention import MultiheadAttention  # noqa: F401,E402
from .transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer,  # noqa: F401,E402
                          TransformerEncoder, TransformerEncoderLayer)
