import numpy as np


class SGD:
    """SGD with classical momentum and L2 weight decay.

    For every parameter p with gradient g, one step does:
        g_total = g + weight_decay * p
        v       = momentum * v + g_total        (v starts at zero)
        p       = p - lr * v
    The update is done in place so layers keep seeing the same arrays.
    """

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=0.0):
        self.params = params
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.velocity = [None] * len(params)

    def step(self):
        for i, (name, layer) in enumerate(self.params):
            p = getattr(layer, name)
            g = getattr(layer, "d" + name) - self.weight_decay * p
            v = self.momentum * self.velocity[i] + g if self.velocity[i] is not None else g
            self.velocity[i] = v
            p -= self.lr * v
