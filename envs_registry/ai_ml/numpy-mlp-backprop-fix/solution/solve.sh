#!/bin/bash
set -euo pipefail
cd /app
python3 -m tinynn.gradcheck || true
python3 - <<'PY'
import re
def patch(path, old, new):
    src = open(path).read()
    assert old in src, (path, old)
    open(path, "w").write(src.replace(old, new))

L = "/app/tinynn/layers.py"
# ReLU: out >= 0 is always true, gradient must be masked where the input was positive
patch(L, "return grad_out * (self._out >= 0)", "return grad_out * (self._out > 0)")
# softmax overflow: subtract the row max before exponentiating
patch(L, "exp = np.exp(logits)", "exp = np.exp(logits - logits.max(axis=1, keepdims=True))")
# the loss is a batch mean, so its gradient must be divided by the batch size
patch(L, "        return grad\n", "        return grad / n\n")
# weight decay must be added to the gradient
patch("/app/tinynn/optim.py", '- self.weight_decay * p', '+ self.weight_decay * p')
# X and y were shuffled with two different permutations
patch("/app/tinynn/train.py",
      "        x_train = x_train[rng.permutation(n)]\n        y_train = y_train[rng.permutation(n)]\n",
      "        perm = rng.permutation(n)\n        x_train = x_train[perm]\n        y_train = y_train[perm]\n")
PY
python3 -m tinynn.gradcheck
python3 -m tinynn.train --out /app/model.npz
