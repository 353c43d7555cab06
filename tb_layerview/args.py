"""Checks of LayerView's arguments: each message names the argument and quotes the value."""

import re

import numpy as np


def compile_patterns(value, what):
    """Layer names, paths or regular expressions as compiled patterns (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise TypeError("%s must be a list of layer names or regular expressions; got %r"
                        % (what, value)) from None
    out = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError("%s must hold strings; got %r" % (what, item))
        try:
            out.append(re.compile(item))
        except re.error as e:
            raise ValueError("%s: %r is not a valid regular expression (%s)" % (what, item, e)) from None
    return out


def pattern_matches(pattern, path, name):
    """A pattern matches a layer by its path or name, literally or as a regular expression."""
    return bool(pattern.fullmatch(path) or pattern.fullmatch(name) or pattern.pattern in (path, name))


def matches(patterns, path, name):
    return any(pattern_matches(p, path, name) for p in patterns)


def unmatched(patterns, entries):
    """The patterns that match no layer of ``entries``."""
    return [p.pattern for p in patterns or []
            if not any(pattern_matches(p, e.path, e.layer.name) for e in entries)]


def abbreviated(names, limit=20):
    """A comma-separated list, cut after ``limit`` names with a count of the rest."""
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (" ... and %d more" % (len(names) - limit) if len(names) > limit else "")


def positive_int(value, what, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError("%s must be an integer >= %d; got %r" % (what, minimum, value))
    return int(value)


def unit_spec(value):
    """Checks ``maximize_units``: {layer: [unit indices] or a count}."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("maximize_units must be a dict {layer name: unit indices or a count}; got %r"
                        % (value,))
    out = {}
    for name, units in value.items():
        if not isinstance(name, str):
            raise TypeError("maximize_units keys must be layer names; got %r" % (name,))
        if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
            units = list(range(positive_int(units, "maximize_units[%r]" % name)))
        try:
            units = [int(u) for u in units]
        except (TypeError, ValueError):
            raise TypeError("maximize_units[%r] must be unit indices or a count; got %r" % (name, units)) from None
        if not units or min(units) < 0:
            raise ValueError("maximize_units[%r] must name units >= 0; got %r" % (name, units))
        out[name] = units
    return out


def image_shape(value):
    if value is None:
        return None
    shape = tuple(value)
    if len(shape) not in (2, 3) or not all(isinstance(s, (int, np.integer)) and s > 0 for s in shape):
        raise ValueError("input_image_shape must be (h, w) or (h, w, c) of positive ints; got %r" % (value,))
    return tuple(int(s) for s in shape)


def class_names(value):
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(c, str) for c in value):
        raise TypeError("class_names must be a list of strings; got %r" % (value,))
    return list(value)
