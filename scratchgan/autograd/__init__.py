"""The autograd layer (layer 1): the Tensor, the graph it records, the backward walk, gradient checks.

Nothing here knows an op: ops (layer 2) build on :func:`engine.make_result`
and attach the Tensor's arithmetic methods.
"""
