"""The batched sequence functions: the step functions in a loop, computed another way.

The step functions are the CS231n form that the finite-difference and autograd tests prove; the
sequence functions batch the input products and the weight gradients over all steps and keep
time-major buffers.  These tests hold them to the step functions looped by hand, and check that
their buffers belong to the cache that holds them.
"""
from __future__ import annotations

import ast

import numpy as np
import pytest
from test_layouts import LAYOUT_CELLS, STATES, make_args

from lstmgen import generator, render, reverse, symbols

TARGETS = render.TARGETS


def looped(mod, cell, args, dh):
    """The sequence forward and backward written as a loop over the step functions."""
    x, h0, *params = args
    N, T, _ = x.shape
    step_forward, step_backward = getattr(mod, cell + "_step_forward"), getattr(mod, cell + "_step_backward")
    states = [h0] + [np.zeros_like(h0) for _ in STATES[cell][1:]]
    outputs, caches = [], []
    for t in range(T):
        *states, cache = step_forward(x[:, t], *states, *params)
        outputs.append(states[0])
        caches.append(cache)
    dprev = [np.zeros_like(h0) for _ in STATES[cell]]
    dx, sums = np.zeros_like(x), None
    for t in reversed(range(T)):
        upstream = [dh[:, t] + dprev[0]] + dprev[1:]
        dx_t, *rest = step_backward(*upstream, caches[t])
        dprev, grads = rest[:len(STATES[cell])], rest[len(STATES[cell]):]
        dx[:, t] = dx_t
        sums = grads if sums is None else [a + g for a, g in zip(sums, grads)]
    return np.stack(outputs, axis=1), [dx, dprev[0], *sums]


@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (1, 1, 2, 3), (2, 6, 3, 3)], ids=lambda s: "N{}T{}D{}H{}".format(*s))
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_the_sequence_functions_are_the_step_functions_in_a_loop(module, layout, cell, shape, target):
    mod = module(cell, layout, target)
    N, T, D, H = shape
    rng = np.random.RandomState(7)
    args = make_args(cell, layout, "sequence", N, T, D, H, rng)
    dh = rng.randn(N, T, H)
    h, cache = getattr(mod, cell + "_forward")(*args)
    grads = getattr(mod, cell + "_backward")(dh, cache)
    h_loop, grads_loop = looped(mod, cell, args, dh)
    np.testing.assert_allclose(h, h_loop, rtol=1e-12, atol=1e-13)
    assert len(grads) == len(grads_loop)
    for ours, theirs in zip(grads, grads_loop):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_two_forwards_then_their_backwards_in_either_order(module, layout, cell, target):
    """No buffer of one call is reused by another while a cache still holds it."""
    mod = module(cell, layout, target)
    forward, backward = getattr(mod, cell + "_forward"), getattr(mod, cell + "_backward")
    rng = np.random.RandomState(8)
    runs = [(make_args(cell, layout, "sequence", 3, 4, 5, 2, rng), rng.randn(3, 4, 2)) for _ in range(2)]
    alone = []
    for args, dh in runs:
        h, cache = forward(*args)
        alone.append((h, backward(dh, cache)))
    for order in ([0, 1], [1, 0]):
        pairs = [forward(*args) for args, _ in runs]
        for k in order:
            grads = backward(runs[k][1], pairs[k][1])
            np.testing.assert_array_equal(pairs[k][0], alone[k][0])
            for ours, theirs in zip(grads, alone[k][1]):
                np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_a_second_backward_of_one_cache_is_refused(module, layout, cell, target, dtype):
    """The backward may keep its deltas in the cache's gate buffers: then the cache serves one backward,
    and a second one is a ValueError naming the cache, never gradients computed from deltas.  With an
    upstream gradient of a wider dtype than the cache the backward cannot reuse them and still agrees."""
    mod = module(cell, layout, target)
    forward, backward = getattr(mod, cell + "_forward"), getattr(mod, cell + "_backward")
    rng = np.random.RandomState(10)
    args = [a.astype(dtype) for a in make_args(cell, layout, "sequence", 2, 3, 4, 3, rng)]
    dh = rng.randn(2, 3, 3)
    h, cache = forward(*args)
    first = backward(dh.astype(dtype), cache)
    try:
        second = backward(dh.astype(dtype), cache)
    except ValueError as error:
        assert str(error).startswith("cache: already used by a backward pass")
    else:  # a cell whose backward keeps nothing in the cache may run twice, with the same result
        assert cell not in ("lstm", "gru"), "the LSTM's and GRU's deltas reuse their gate buffers"
        for ours, theirs in zip(second, first):
            np.testing.assert_array_equal(ours, theirs)
    h, cache = forward(*args)
    wide = backward(dh, cache)  # float64 upstream gradient: float64 gradients, for a float32 cache too
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    for ours, theirs in zip(wide, first):
        np.testing.assert_allclose(ours, theirs, rtol=tolerance * 10, atol=tolerance)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_an_upstream_gradient_in_any_memory_order_gives_the_same_gradients(module, layout, cell, target):
    """dh as a strided view (every other step of a longer array) or stored time-major and transposed:
    the Numba kernels read it whole at [row, t], and must give what a C-contiguous dh gives."""
    mod = module(cell, layout, target)
    forward, backward = getattr(mod, cell + "_forward"), getattr(mod, cell + "_backward")
    rng = np.random.RandomState(11)
    args = make_args(cell, layout, "sequence", 2, 3, 4, 3, rng)
    dh = rng.randn(2, 3, 3)
    expected = backward(dh, forward(*args)[1])
    longer = np.zeros((2, 6, 3))
    longer[:, ::2] = dh
    for view in (longer[:, ::2], np.ascontiguousarray(dh.transpose(1, 0, 2)).transpose(1, 0, 2)):
        assert not view.flags.c_contiguous
        for ours, theirs in zip(backward(view, forward(*args)[1]), expected):
            np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layout,cell", LAYOUT_CELLS, ids=lambda v: v)
def test_the_cache_owns_the_inputs_and_states_it_keeps(module, layout, cell, target):
    """Refilling x or h0, or scaling the returned h in place, between forward and backward changes nothing."""
    mod = module(cell, layout, target)
    forward, backward = getattr(mod, cell + "_forward"), getattr(mod, cell + "_backward")
    rng = np.random.RandomState(9)
    args = make_args(cell, layout, "sequence", 2, 3, 4, 3, rng)
    dh = rng.randn(2, 3, 3)
    h, cache = forward(*args)
    expected = backward(dh, cache)
    h, cache = forward(*args)
    args[0][...] = 7.0
    args[1][...] = -3.0
    h *= 5.0
    for ours, theirs in zip(backward(dh, cache), expected):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("cell", render.BUILD_CELLS)
def test_only_the_recurrent_products_stay_in_the_time_loops(cell, target):
    """The checked-in module's sequence functions: one matrix product per recurrent weight in each time
    loop (none with the input's weights), and every weight gradient one product after the loop."""
    program = generator.program(reverse.derive(cell))
    matrices = [g for g in program.layout.groups if g.kind == "matrix"]
    recurrent = [g for g in matrices if symbols.read(g.vector).name != program.layout.cell.input]
    tree = ast.parse(_generated(cell, target).read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    for name in (cell + "_forward", cell + "_backward"):
        loops = [node for node in ast.walk(functions[name]) if isinstance(node, ast.For)]
        assert len(loops) == 1, name
        assert _products(loops[0]) == len(recurrent), name
    backward = functions[cell + "_backward"]
    loop = next(node for node in ast.walk(backward) if isinstance(node, ast.For))
    in_loop = {id(node) for node in ast.walk(loop)}
    after = [node for node in ast.walk(backward) if isinstance(node, ast.Assign) and id(node) not in in_loop
             and _products(node)]
    # every weight's gradient, and dx: one statement each (a stack that shares blocks with another
    # takes one product per run of blocks, the GRU's dWh, inside that statement)
    assert len(after) == len(matrices) + 1
    assert all(_products(node) <= 2 for node in after)


def _generated(cell, target):
    from conftest import ROOT

    return ROOT / "generated" / f"{cell}_{target}.py"


def _products(node) -> int:
    """Matrix products in `node`: `a @ b` and np.matmul(...)."""
    count = 0
    for child in ast.walk(node):
        if isinstance(child, ast.BinOp) and isinstance(child.op, ast.MatMult):
            count += 1
        elif isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute) and child.func.attr == "matmul":
            count += 1
    return count


# Per-step (N, H) arrays that a cell's backward needs besides h and x: the gate values it reads and
# its other states (counted by hand from each cell's equations; the MGU keeps r = f * h_{t-1} as
# well, since the backward overwrites f with its delta before the weight gradient of Wr reads r).
PER_STEP_ARRAYS = {"rnn": 0, "lstm": 5, "gru": 4, "peephole_lstm": 5, "cifg_lstm": 4, "mgu": 3}


# A cell file's own squashing function whose derivative is a polynomial in its output (softsign:
# (1 - |g|)^2): its gate needs only g, as a tanh gate would, and is computed over its pre-activation.
SOFTSIGN_CIFG = """cell softsign_cifg
input x
state h output
state c
gates f o g
f = sigmoid(W_x^f @ x + W_h^f @ h[t-1] + b^f)
o = sigmoid(W_x^o @ x + W_h^o @ h[t-1] + b^o)
g = softsign(W_x^c @ x + W_h^c @ h[t-1] + b^c)
c = f * c[t-1] + (1 - f) * g
h = o * softsign(c)
"""


def _per_step_arrays(module: str) -> int:
    """Counted off a module's sequence cache: every (T, N, k * H) buffer is k arrays, every state but
    h is one (h and the inputs are kept by every cell)."""
    tree = ast.parse(module)
    cache = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name.endswith("Cache")
                 and not node.name.endswith("StepCache"))
    source = module.splitlines()
    count = 0
    for field in cache.body:
        if not isinstance(field, ast.AnnAssign):
            continue
        name, comment = field.target.id, source[field.lineno - 1].split("#", 1)[1]
        shape = comment.strip().split(")")[0] + ")"
        if name in ("x_all", "h_all") or not shape.startswith(("(T, N,", "(T + 1, N,")):
            continue
        width = shape.rsplit(",", 1)[1].strip(" )")
        count += int(width.split("*")[0]) if "*" in width else 1
    return count


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("cell", sorted(PER_STEP_ARRAYS))
def test_the_sequence_cache_keeps_no_more_per_step_arrays_than_the_backward_needs(cell, target):
    assert _per_step_arrays(_generated(cell, target).read_text()) <= PER_STEP_ARRAYS[cell]


@pytest.mark.parametrize("target", TARGETS)
def test_a_cell_file_function_s_gate_is_kept_as_a_tanh_gate_would_be(tmp_path, target):
    """f, o, g and c: g overwrites its pre-activation, which the backward no longer reads."""
    from lstmgen import codegen

    cell = tmp_path / "softsign_cifg.cell"
    cell.write_text(SOFTSIGN_CIFG)
    assert _per_step_arrays(codegen(str(cell), target=target)) == 4


# Calls of sigmoid in the sequence forward's time loop: gates of one function over side-by-side
# blocks take one call (the LSTM's i, f, o; the GRU's r and z, once its gh blocks are added to gx's).
SIGMOID_CALLS_PER_STEP = {"lstm": 1, "gru": 1}


def _forward_loop_calls(cell: str, target: str) -> list[str]:
    tree = ast.parse(_generated(cell, target).read_text())
    forward = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == f"{cell}_forward")
    loop = next(node for node in ast.walk(forward) if isinstance(node, ast.For))
    return [ast.unparse(node) for node in ast.walk(loop) if isinstance(node, ast.Call)]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("cell", sorted(SIGMOID_CALLS_PER_STEP))
def test_gates_side_by_side_take_one_activation_call(cell, target):
    calls = [call for call in _forward_loop_calls(cell, target) if call.startswith("sigmoid(")]
    expected = 0 if (cell, target) == ("lstm", "numba") else SIGMOID_CALLS_PER_STEP[cell]  # (see below)
    assert len(calls) == expected


@pytest.mark.parametrize("cell", ["lstm", "cifg_lstm"])
def test_a_numba_forward_takes_every_gate_in_one_tanh_over_the_row(cell):
    """Every block of the stacked pre-activation is a sigmoid or tanh of itself: the numba target adds
    the recurrent product and halves the sigmoid blocks in one kernel, takes one np.tanh over the
    whole row, and leaves (1 + t) / 2 to the kernel that reads the gates; the numpy target keeps its
    sigmoid calls."""
    calls = _forward_loop_calls(cell, "numba")
    assert [c for c in calls if c.startswith("_add_scaled(")] == ["_add_scaled(a, prev_h @ Wh, a_scale)"]
    assert "np.tanh(a, out=a)" in calls and not any(c.startswith("sigmoid(") for c in calls)
    assert any(c.startswith("sigmoid(") for c in _forward_loop_calls(cell, "numpy"))
    source = _generated(cell, "numba").read_text()
    assert "real(0.5) + real(0.5) * a_f" in source  # f = (1 + tanh(a_f / 2)) / 2, in the kernel


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_whole_row_tanh_gives_the_numpy_targets_gates(module, dtype):
    """The numba LSTM's forward, through tanh(z / 2), against the numpy module's sigmoids: the same h
    and cache to the last bit in float64 and within an ulp or two in float32."""
    numba_module, numpy_module = module("lstm", "cs231n", "numba"), module("lstm", "cs231n", "numpy")
    rng = np.random.RandomState(12)
    args = [a.astype(dtype) for a in make_args("lstm", "cs231n", "sequence", 4, 6, 5, 7, rng)]
    args[-1] *= 20  # saturated gates too
    ours, theirs = numba_module.lstm_forward(*args), numpy_module.lstm_forward(*args)
    for a, b in zip([ours[0], *ours[1]], [theirs[0], *theirs[1]]):
        if dtype == np.float64:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=3e-7, atol=3e-7)


def _loop_statements(cell: str, function: str, target: str = "numba") -> list:
    tree = ast.parse(_generated(cell, target).read_text())
    body = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function)
    return next(node for node in ast.walk(body) if isinstance(node, ast.For)).body


@pytest.mark.parametrize("cell", ["gru", "mgu"])
def test_a_fused_state_gradient_leaves_only_its_products_outside_the_kernel(cell):
    """dprev_h = (products) + (elementwise terms): a kernel computes the terms into the array carried
    to the next step, and the loop adds the products to it -- no sum of temporaries in NumPy."""
    statements = _loop_statements(cell, cell + "_backward")
    carried = [s for s in statements if isinstance(s, (ast.Assign, ast.AugAssign))
               and ast.unparse(s.targets[0] if isinstance(s, ast.Assign) else s.target) == "dprev_h"]
    assert len(carried) == 1 and isinstance(carried[0], ast.AugAssign) and isinstance(carried[0].op, ast.Add)
    assert all(isinstance(node.op, ast.MatMult) for node in ast.walk(carried[0].value) if isinstance(node, ast.BinOp))
    kernels = [s for s in statements if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
               and s.value.func.id.startswith(f"_{cell}_backward_step")]
    assert any(isinstance(arg, ast.Name) and arg.id == "dprev_h" for kernel in kernels for arg in kernel.value.args)


# c enters a product (W_c^f @ c[t-1]) and has no loss of its own, so step t reads dnext_c, which is
# the array dprev_c: the split is refused, and dprev_c computed whole, as the numpy target does (a
# conservative rule: here only the first kernel reads dnext_c, but a later one might in another cell).
C_PRODUCT = """cell c_product
input x
state h output
state c
gates f g
f = sigmoid(W_x^f @ x + W_h^f @ h[t-1] + W_c^f @ c[t-1] + b^f)
g = tanh(W_x^c @ x + W_h^c @ h[t-1] + b^c)
c = f * c[t-1] + (1 - f) * g
h = tanh(c)
"""


def test_a_fused_state_gradient_that_its_own_step_still_reads_is_computed_whole(tmp_path):
    """The numba module of a cell whose recurrent state gradient aliases its upstream one gives what
    the numpy module gives (that module is proven against finite differences elsewhere)."""
    import importlib.util

    from lstmgen import codegen

    cell = tmp_path / "c_product.cell"
    cell.write_text(C_PRODUCT)
    rng = np.random.RandomState(5)
    N, T, D, H = 3, 5, 4, 2
    # x, h0, Wx, Wh, Wc, b, as the forward's docstring lists them
    args = [rng.randn(N, T, D), rng.randn(N, H), rng.randn(D, 2 * H), rng.randn(H, 2 * H), rng.randn(H, H),
            rng.randn(2 * H)]
    dh = rng.randn(N, T, H)
    results = {}
    for target in TARGETS:
        path = tmp_path / f"c_product_{target}.py"
        path.write_text(codegen(str(cell), target=target))
        assert "def c_product_forward(x, h0, Wx, Wh, Wc, b):" in path.read_text()
        spec = importlib.util.spec_from_file_location(f"c_product_{target}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _, cache = mod.c_product_forward(*[a.copy() for a in args])
        results[target] = mod.c_product_backward(dh, cache)
    assert "dprev_c = dnext_c_total * f + df @ Wc_T" in (tmp_path / "c_product_numba.py").read_text()
    for ours, theirs in zip(results["numba"], results["numpy"]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("layout", ["cs231n", "per-gate"])
def test_a_parameter_gradient_summed_over_rows_is_summed_in_the_kernel(module, layout):
    """The peephole vectors' gradients: the backward kernel adds every row of every step into float64
    sums, so the loop makes no per-step reduction, and float32 loses no accuracy against the numpy
    target's per-step sums (both against the same module in float64)."""
    source = render.render_module("peephole_lstm", layout, "numba")
    tree = ast.parse(source)
    backward = next(node for node in tree.body if isinstance(node, ast.FunctionDef)
                    and node.name == "peephole_lstm_backward")
    loop = next(node for node in ast.walk(backward) if isinstance(node, ast.For))
    assert not [node for node in ast.walk(loop) if isinstance(node, ast.Attribute) and node.attr == "sum"]
    rng = np.random.RandomState(9)
    N, T, D, H = 16, 40, 5, 6
    args = make_args("peephole_lstm", layout, "sequence", N, T, D, H, rng)
    dh = rng.randn(N, T, H)
    names = {"cs231n": ["dp"], "per-gate": ["dp_i", "dp_f", "dp_o"]}[layout]

    def peephole_gradients(target, dtype):
        mod = module("peephole_lstm", layout, target)
        _, cache = mod.peephole_lstm_forward(*[a.astype(dtype) for a in args])
        grads = mod.peephole_lstm_backward(dh.astype(dtype), cache)
        returned = mod.peephole_lstm_backward.__doc__.split("Returns:")[1].split()
        by_name = dict(zip([w.rstrip(":") for w in returned if w.endswith(":")], grads))
        return [by_name[name] for name in names]

    exact = peephole_gradients("numpy", np.float64)
    for ours, theirs in zip(peephole_gradients("numba", np.float64), exact):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-13)
    for fused, per_step, reference in zip(peephole_gradients("numba", np.float32),
                                          peephole_gradients("numpy", np.float32), exact):
        assert fused.dtype == np.float32
        assert np.abs(fused - reference).max() <= 2 * np.abs(per_step - reference).max() + 1e-6


@pytest.mark.parametrize("cell", render.BUILD_CELLS)
def test_the_numba_kernels_run_on_contiguous_arrays(module, cell):
    """Every compiled loop of the numba target's sequence functions is compiled for C-contiguous
    arrays only: a kernel takes a stacked array whole and slices its blocks row by row, which is what
    lets LLVM vectorise it (a strided view of a block would compile to the generic layout)."""
    import numba

    mod = module(cell, "cs231n", "numba")
    rng = np.random.RandomState(3)
    args = make_args(cell, "cs231n", "sequence", 4, 3, 5, 6, rng)
    _, cache = getattr(mod, cell + "_forward")(*[a.astype(np.float32) for a in args])
    getattr(mod, cell + "_backward")(rng.randn(4, 3, 6).astype(np.float32), cache)
    kernels = [f for name, f in vars(mod).items() if isinstance(f, numba.core.registry.CPUDispatcher)]
    assert kernels
    for kernel in kernels:
        assert kernel.signatures, kernel.__name__
        for signature in kernel.signatures:
            layouts = {arg.layout for arg in signature if isinstance(arg, numba.types.Array) and arg.ndim == 2}
            assert layouts <= {"C"}, (kernel.__name__, signature)


# c has no loss of its own, so step t's dnext_c is the array dprev_c; a kernel writes dprev_c in
# place, and a later kernel (after du = da_h @ Wu_T) still reads dnext_c.
ALIASED_STATE = """input x
state h output
state c
c = tanh(W_x^c @ x + W_h^c @ h[t-1] + b^c)
u = c * c
h = tanh(W_x @ x + W_h @ h[t-1] + W_u @ u + p * c[t-1] + b)
"""

# two states, each its own tanh: its numba forward takes no views before the loop
TWO_STATES = """input x
state h output
state c
h = tanh(W_h @ x + h[t-1])
c = tanh(W_c @ x + c[t-1])
"""


@pytest.mark.parametrize("layout", ["cs231n", "per-gate"])
def test_a_kernel_writes_a_carried_gradient_only_after_every_read_of_its_alias(tmp_path, layout):
    from test_hostile_cells import assert_module_is_right, write_cell

    assert_module_is_right(write_cell(tmp_path, ALIASED_STATE, "aliased"), layout, "numba")


@pytest.mark.skipif(__import__("shutil").which("ruff") is None, reason="ruff is not installed")
@pytest.mark.parametrize("text", [ALIASED_STATE, TWO_STATES, SOFTSIGN_CIFG, C_PRODUCT], ids=["aliased", "two_states",
                                                                                     "softsign_cifg", "c_product"])
def test_modules_of_cell_files_are_lint_clean_and_formatted(tmp_path, text):
    import subprocess

    from conftest import ROOT
    from test_hostile_cells import write_cell

    cell = write_cell(tmp_path, text, "user")
    for layout in ("cs231n", "per-gate"):
        for target in TARGETS:
            (tmp_path / f"user_{layout.replace('-', '_')}_{target}.py").write_text(
                render.render_module(cell, layout, target), encoding="utf-8")
    for command in (["ruff", "check", "--no-cache", str(tmp_path)], ["ruff", "format", "--check", "--no-cache",
                                                                     str(tmp_path)]):
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
