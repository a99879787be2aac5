"""``ElementwiseKernel`` of the stand-in: CuPy's parameter and type rules, the body run by a tiny C interpreter.

A real ElementwiseKernel compiles its CUDA C body with NVRTC. The stand-in
parses the same body (a subset of C: declarations, assignments and compound
assignments, ``if``, blocks, ``?:``, casts, arithmetic, comparisons, logic,
``raw`` indexing and the math functions below) and runs it vectorised with
NumPy, so a wrong formula, a wrong type or a wrong parameter list fails here.
It cannot find what only NVRTC finds (syntax it does not parse is refused
with a clear error, not judged).

Type rules modelled on cupy/_core/_kernel.pyx (v13.6): ``_decide_params_type``
binds each type placeholder (``T``) to the dtype of the first *array*
argument declared with it, and raises "Type is mismatched" when another
array of that placeholder differs; scalars take their declared type; input
parameters are ``const`` (assigning one is a compile error); non-raw arrays
broadcast to the output shape; NumPy arrays are refused; missing outputs
are allocated C-contiguous.
"""

from __future__ import annotations

import re

import numpy as np

from . import _array, _device

_C_TYPES = {"double": np.float64, "float": np.float32, "int": np.int32, "long long": np.int64, "long": np.int64,
            "bool": np.bool_, "unsigned int": np.uint32, "size_t": np.uint64, "signed char": np.int8,
            "unsigned char": np.uint8, "short": np.int16, "float16": np.float16}
_FUNCTIONS = {"pow": np.power, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
              "tanh": np.tanh, "fabs": np.abs, "abs": np.abs, "floor": np.floor, "ceil": np.ceil, "fmax": np.fmax,
              "fmin": np.fmin, "max": np.maximum, "min": np.minimum, "rsqrt": lambda x: 1 / np.sqrt(x),
              "sin": np.sin, "cos": np.cos, "isnan": np.isnan, "isinf": np.isinf, "isfinite": np.isfinite,
              "copysign": np.copysign}

_TOKEN = re.compile(r"\s*(?:(\d+\.\d*(?:[eE][-+]?\d+)?f?|\.\d+(?:[eE][-+]?\d+)?f?|\d+[eE][-+]?\d+f?|\d+[uUlL]*)"
                    r"|([A-Za-z_]\w*)|(&&|\|\||==|!=|<=|>=|\+=|-=|\*=|/=|[-+*/%<>!?:=(),;{}\[\]]))")


class KernelSyntaxError(SyntaxError):
    """What NVRTC would reject, or what the stand-in's C subset does not parse."""


def _tokenize(source):
    source = re.sub(r"//[^\n]*|/\*.*?\*/", " ", source, flags=re.S)
    tokens, pos = [], 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        m = _TOKEN.match(source, pos)
        if m is None:
            raise KernelSyntaxError(f"cannot parse the kernel body near {source[pos:pos + 30]!r}")
        tokens.append(m.group(1) or m.group(2) or m.group(3))
        pos = m.end()
    return tokens


class _Parser:
    """Recursive descent over C tokens, producing Python closures over an environment."""

    def __init__(self, tokens, types):
        self.t, self.i, self.types = tokens, 0, types

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def take(self, expected=None):
        tok = self.peek()
        if tok is None or (expected is not None and tok != expected):
            raise KernelSyntaxError(f"expected {expected!r}, found {tok!r}")
        self.i += 1
        return tok

    def type_at(self):
        """The C type starting here (and its length in tokens), or None."""
        two = f"{self.peek()} {self.peek(1)}"
        if two in _C_TYPES:
            return two, 2
        if self.peek() in _C_TYPES or self.peek() in self.types:
            return self.peek(), 1
        return None, 0

    # ---- statements: each a function env -> None
    def statements(self, end=None):
        out = []
        while self.peek() is not None and self.peek() != end:
            out.append(self.statement())
        return out

    def statement(self):
        tok = self.peek()
        if tok == ";":
            self.take()
            return lambda env: None
        if tok == "{":
            self.take()
            body = self.statements("}")
            self.take("}")
            return lambda env: [s(env) for s in body] and None
        if tok == "if":
            self.take()
            self.take("(")
            cond = self.expr()
            self.take(")")
            then = self.statement()
            other = None
            if self.peek() == "else":
                self.take()
                other = self.statement()
            return lambda env: env.branch(cond(env), then, other)
        if tok == "const":
            self.take()
        ctype, n = self.type_at()
        if ctype is not None and self.peek(n) not in ("=", "+=", "-=", "*=", "/=") and self.peek(n) != ")":
            self.i += n
            name = self.take()
            init = None
            if self.peek() == "=":
                self.take()
                init = self.expr()
            self.take(";")
            return lambda env: env.declare(name, ctype, init(env) if init else 0)
        name = self.take()
        op = self.take()
        if op not in ("=", "+=", "-=", "*=", "/="):
            raise KernelSyntaxError(f"expected an assignment to {name!r}, found {op!r}")
        value = self.expr()
        self.take(";")
        if op == "=":
            return lambda env: env.assign(name, value(env))
        binary = {"+=": np.add, "-=": np.subtract, "*=": np.multiply, "/=": _c_divide}[op]
        return lambda env: env.assign(name, binary(env.read(name), value(env)))

    # ---- expressions: each a function env -> value
    def expr(self):
        cond = self.binary(0)
        if self.peek() == "?":
            self.take()
            a = self.expr()
            self.take(":")
            b = self.expr()
            return lambda env: np.where(cond(env), a(env), b(env))
        return cond

    _LEVELS = [("||",), ("&&",), ("==", "!="), ("<", ">", "<=", ">="), ("+", "-"), ("*", "/", "%")]
    _OPS = {"||": np.logical_or, "&&": np.logical_and, "==": np.equal, "!=": np.not_equal, "<": np.less,
            ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal, "+": np.add, "-": np.subtract,
            "*": np.multiply}

    def binary(self, level):
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self._LEVELS[level]:
            op = self.take()
            right = self.binary(level + 1)
            fn = {"/": _c_divide, "%": _c_remainder}.get(op) or self._OPS[op]
            left = (lambda f, a, b: lambda env: f(a(env), b(env)))(fn, left, right)
        return left

    def unary(self):
        tok = self.peek()
        if tok == "-":
            self.take()
            inner = self.unary()
            return lambda env: np.negative(inner(env))
        if tok == "+":
            self.take()
            return self.unary()
        if tok == "!":
            self.take()
            inner = self.unary()
            return lambda env: np.logical_not(inner(env))
        if tok == "(":
            save = self.i
            self.take()
            ctype, n = self.type_at()
            if ctype is not None and self.peek(n) == ")":
                self.i += n
                self.take(")")
                inner = self.unary()
                return lambda env: env.cast(inner(env), ctype)
            self.i = save
        return self.postfix()

    def postfix(self):
        tok = self.take()
        if tok == "(":
            inner = self.expr()
            self.take(")")
            return inner
        if tok[0].isdigit() or tok[0] == ".":
            return _literal(tok)
        if tok in ("true", "false"):
            value = np.bool_(tok == "true")
            return lambda env: value
        if self.peek() == "(":  # a call
            self.take()
            args = []
            while self.peek() != ")":
                args.append(self.expr())
                if self.peek() == ",":
                    self.take()
            self.take(")")
            fn = _FUNCTIONS.get(tok)
            if fn is None:
                raise KernelSyntaxError(f"the stand-in's C subset has no function {tok!r}")
            return lambda env: fn(*[a(env) for a in args])
        if self.peek() == "[":  # raw indexing
            self.take()
            index = self.expr()
            self.take("]")
            return lambda env: env.read(tok)[int(index(env))]
        return lambda env: env.read(tok)


def _literal(tok):
    if tok.endswith("f") and not tok[0:2].lower() == "0x":
        value = np.float32(float(tok[:-1]))
    elif any(c in tok for c in ".eE"):
        value = np.float64(float(tok))  # a double, as in C
    else:
        value = int(tok.rstrip("uUlL"))  # a Python int: weak, as C's int literals are against floats
    return lambda env: value


def _c_divide(a, b):
    if np.result_type(a, b).kind in "iu":
        q = np.floor_divide(a, b)
        return np.where((np.remainder(a, b) != 0) & ((np.asarray(a) < 0) != (np.asarray(b) < 0)), q + 1, q)
    return np.true_divide(a, b)


def _c_remainder(a, b):
    return np.fmod(a, b)


class _Env:
    def __init__(self, values, outputs, inputs, dtypes, shape):
        self.values, self.outputs, self.inputs, self.dtypes, self.shape = values, outputs, inputs, dtypes, shape

    def dtype_of(self, ctype):
        if ctype in self.dtypes:
            return self.dtypes[ctype]
        return np.dtype(_C_TYPES[ctype])

    def cast(self, value, ctype):
        dtype = self.dtype_of(ctype)
        return np.asarray(value).astype(dtype)[()] if np.ndim(value) == 0 else np.asarray(value).astype(dtype)

    def read(self, name):
        try:
            return self.values[name]
        except KeyError:
            raise KernelSyntaxError(f"'{name}' is undefined in the kernel body") from None

    def declare(self, name, ctype, value):
        self.values[name] = self.cast(value, ctype)
        self.declared[name] = ctype

    def assign(self, name, value):
        if name in self.inputs:
            raise KernelSyntaxError(f"assignment to the input parameter '{name}': CuPy declares inputs const")
        if name in self.outputs:
            buf = self.values[name]
            buf[...] = np.asarray(value).astype(buf.dtype)
        elif name in self.declared:
            self.values[name] = self.cast(value, self.declared[name])
        else:
            raise KernelSyntaxError(f"'{name}' is undefined in the kernel body")

    def branch(self, cond, then, other):
        cond = np.asarray(cond)
        if cond.ndim == 0:
            if bool(cond):
                then(self)
            elif other is not None:
                other(self)
            return
        before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.values.items()}
        then(self)
        taken = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in self.values.items()}
        if other is not None:
            for k, v in before.items():
                self._set(k, v)
            other(self)
        for k in taken:
            alt = self.values[k] if other is not None else before.get(k)
            if alt is not None:
                self._set(k, np.where(cond, taken[k], alt))

    def _set(self, name, value):
        if name in self.outputs:
            self.values[name][...] = value
        else:
            self.values[name] = value


def _parse_params(text):
    params = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        raw = words[0] == "raw"
        if raw:
            words = words[1:]
        if len(words) != 2:
            raise KernelSyntaxError(f"cannot parse the parameter {part!r}")
        params.append((raw, words[0], words[1]))
    return params


_DTYPE_NAMES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16",
                "float32", "float64", "complex64", "complex128"}


def _concrete(type_name):
    """The dtype a parameter type names, or None for a placeholder such as ``T``."""
    return np.dtype(type_name) if type_name in _DTYPE_NAMES else None


class ElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name)`` (cupy/_core/_kernel.pyx, v13.6)."""

    def __init__(self, in_params, out_params, operation, name="kernel", reduce_dims=True, preamble="",
                 no_return=False, return_tuple=False, loop_prep="", after_loop="", options=()):
        self.in_params, self.out_params = _parse_params(in_params), _parse_params(out_params)
        self.name = name
        self.nin, self.nout = len(self.in_params), len(self.out_params)
        self.nargs = self.nin + self.nout
        placeholders = {t for _, t, _ in self.in_params + self.out_params if _concrete(t) is None}
        self._body = _Parser(_tokenize(operation + ";"), placeholders).statements()  # CuPy appends ';' too

    def __call__(self, *args, size=None, block_size=None, stream=None):
        if len(args) not in (self.nin, self.nargs):
            raise TypeError(f"Wrong number of arguments for {self.name!r}: {self.nin} or {self.nargs} expected, "
                            f"{len(args)} given")
        params = self.in_params + self.out_params
        dtypes = {}
        for (raw, type_name, name), arg in zip(params, args):
            if isinstance(arg, np.ndarray):
                raise _array._unsupported(arg)
            if isinstance(arg, _array.ndarray) and _concrete(type_name) is None:
                if type_name in dtypes and dtypes[type_name] != arg.dtype:
                    raise TypeError(f"Type is mismatched. {name} {type_name} {dtypes[type_name]} {arg.dtype}")
                dtypes.setdefault(type_name, arg.dtype)
        for raw, type_name, name in params:
            if _concrete(type_name) is None and type_name not in dtypes:
                raise TypeError(f"Cannot determine the type of {type_name!r} in {self.name!r}")
        shapes = [a.shape for (raw, _, _), a in zip(params, args) if isinstance(a, _array.ndarray) and not raw]
        shape = np.broadcast_shapes(*shapes) if shapes else ()
        given_out = list(args[self.nin:])
        outs = []
        for k, (raw, type_name, name) in enumerate(self.out_params):
            dtype = dtypes.get(type_name) or _concrete(type_name)
            if k < len(given_out):
                out = given_out[k]
                if not isinstance(out, _array.ndarray):
                    raise TypeError(f"output {name!r} must be a cupy.ndarray")
                if out.dtype != dtype:
                    raise TypeError(f"Type is mismatched. {name} {type_name} {dtype} {out.dtype}")
                if not raw and out.shape != shape:
                    raise ValueError(f"Out shape is mismatched: {name} {out.shape} for {shape}")
            else:
                out = _array.wrap(_device.allocate(shape, dtype))
            outs.append(out)
        bound = []
        for (raw, type_name, name), arg in zip(self.in_params, args[:self.nin]):
            if isinstance(arg, _array.ndarray):
                bound.append((name, raw, arg._a, None))
            else:
                dtype = dtypes.get(type_name) or _concrete(type_name)
                bound.append((name, raw, None, np.asarray(arg).astype(dtype)[()]))
        out_names = [name for _, _, name in self.out_params]
        out_bufs = [o._a for o in outs]
        body = self._body

        def run():
            values = {}
            for name, raw, buf, scalar in bound:
                values[name] = scalar if buf is None else (buf if raw else np.broadcast_to(buf, shape))
            for name, buf in zip(out_names, out_bufs):
                values[name] = buf
            env = _Env(values, set(out_names), {b[0] for b in bound}, dtypes, shape)
            env.declared = {}
            for statement in body:
                statement(env)

        _device.launch(run)
        return outs[0] if len(outs) == 1 else tuple(outs)


class ReductionKernel:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("the stand-in does not model ReductionKernel")


class RawKernel:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("the stand-in cannot run raw CUDA code (RawKernel)")
