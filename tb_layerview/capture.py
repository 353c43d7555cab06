"""Recording what layers return during one forward pass (writer side).

Keras 3 has no forward hooks, and symbolic sub-models fail on nested
("Graph disconnected") and subclassed models. Wrapping each layer's ``call``
on the instance for the duration of one eager pass works for all of them;
the original ``call`` is restored afterwards, whatever happens.
"""

import contextlib


def first_tensor(out):
    """The first tensor of a layer output (LSTM states, attention scores...)."""
    while isinstance(out, (list, tuple)) and out:
        out = out[0]
    if isinstance(out, dict) and out:
        out = next(iter(out.values()))
    return out


def _recording_call(call, key, captured, calls):
    def recording_call(*args, **kwargs):
        out = call(*args, **kwargs)
        calls[key] = calls.get(key, 0) + 1
        if key not in captured:  # shared layers: the first call, as layer.output
            captured[key] = first_tensor(out)
        return out

    return recording_call


@contextlib.contextmanager
def recording(layers):
    """Records the first output of each layer while the block runs.

    Args:
      layers: ``{key: layer}``.

    Yields:
      ``(captured, calls)``: ``{key: first output tensor}`` and
      ``{key: number of calls}``, filled as the model runs.
    """
    captured, calls, patched = {}, {}, []
    try:
        for key, layer in layers.items():
            original = layer.__dict__.get("call")
            # object.__setattr__: Keras' tracking __setattr__ must not see this.
            object.__setattr__(layer, "call", _recording_call(layer.call, key, captured, calls))
            patched.append((layer, original))
        yield captured, calls
    finally:
        for layer, original in patched:
            if original is None:
                object.__delattr__(layer, "call")
            else:
                object.__setattr__(layer, "call", original)
