"""Training of fastinv's networks with PyTorch (``pip install "fastinv[train]"``).

* :mod:`fastinv.train.deepem` -- DeepEM on Basis Pursuit solutions of real AIA data.
"""
