import numpy as np

from .layers import Linear, ReLU


class MLP:
    """Fully connected network: Linear -> ReLU -> ... -> Linear (no activation on the last layer)."""

    def __init__(self, sizes, seed=0):
        rng = np.random.default_rng(seed)
        self.layers = []
        for i in range(len(sizes) - 1):
            self.layers.append(Linear(sizes[i], sizes[i + 1], rng))
            if i < len(sizes) - 2:
                self.layers.append(ReLU())

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad):
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def linear_layers(self):
        return [l for l in self.layers if isinstance(l, Linear)]

    def params(self):
        """List of (param_name, layer) pairs; the optimizer reads layer.<name> and layer.d<name>."""
        out = []
        for layer in self.linear_layers():
            out.append(("W", layer))
            out.append(("b", layer))
        return out

    def state_dict(self):
        state = {}
        for i, layer in enumerate(self.linear_layers()):
            state[f"W{i}"] = layer.W
            state[f"b{i}"] = layer.b
        return state

    def predict(self, x):
        return self.forward(x).argmax(axis=1)
