"""tinynn: a deliberately small numpy neural-network library used for teaching demos."""
from .layers import Linear, ReLU, SoftmaxCrossEntropy
from .model import MLP
from .optim import SGD

__all__ = ["Linear", "ReLU", "SoftmaxCrossEntropy", "MLP", "SGD"]
