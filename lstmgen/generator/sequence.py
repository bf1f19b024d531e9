"""The batched sequence functions: the step's statements laid out over a whole sequence.

What the step functions compute once per step, the sequence functions compute in as few and as
large operations as the recurrence allows:

* the products with the input, for every step in one (T*N, D) matrix product before the loop;
* only the recurrent products and the elementwise work stay in the time loop, the elementwise
  results written in place (``out=``) into time-major (T, N, .) buffers, a gate's activation over
  its own pre-activation block when nothing else reads that block;
* the backward loop fills the stacked pre-activation gradients of every step into one (T, N, G*H)
  buffer; the weights' gradients, the bias gradients and dx are one matrix product (or sum) each
  over all T*N rows after the loop.

`SequencePlan` decides where every value lives (a temporary, a view of a buffer at step t, or its
rows after the loop) and prints the two functions' bodies as lines with comments.  The buffers are
allocated per call and owned by the cache: nothing the caller holds is reused.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import sympy

from .. import symbols
from ..functions import UserFunction, sigmoid
from ..ir import Dot, TDot, total
from ..printing.numpy import BatchSum, Copy, Split, Stack, WeightGradient, numpy_call_into, print_numpy
from . import format as fmt
from .program import Statement, flat_sum, stack_tag



@dataclass
class Buffer:
    """A time-major array of the sequence functions: (T, N, width), or (T + 1, N, H) for a state."""

    name: str
    width: str
    about: str
    state: bool = False

    @property
    def shape(self) -> str:
        return "({}, N, {})".format("T + 1" if self.state else "T", self.width)


class SequencePlan:
    """Where each value of the step lives over a sequence, and the printed sequence functions.

    `printer` is the step's StepPrinter (its names and forward texts); `cache_names` the step
    cache's fields, i.e. what the step backward reads of the forward pass."""

    def __init__(self, printer, cache_names: list[str], fusion=None):
        self.p = printer
        self.fusion = fusion
        self.upstream_arrays: set[str] = set()  # the (N, T, H) losses' gradients a kernel reads at [row, t]
        self.copies: dict[str, str] = {}  # inside a loop: matrices whose transpose has a contiguous copy
        self.loop_views: list[str] = []  # the loop being laid out: lines before it that take views of its buffers
        self.viewed: set[str] = set()
        self.m = printer.m
        self.program = printer.program
        self.names = dict(printer.names)  # the step's names, and those of the sequence functions' own values
        cell, py = self.m.cell, self.m.py
        self.x = py[cell.input]
        self.width_of_input = self.m.input_width
        self.param_names = {g.symbol.name for g in self.m.groups} | {
            s.name for s in self._parameter_symbols()}
        self.cached = set(cache_names)
        self.buffers: dict[str, Buffer] = {}      # python name of the step value -> its buffer
        self.blocks: dict[str, tuple] = {}        # step name -> (buffer, index, count): a block of a split buffer
        self.in_place: dict[str, str] = {}        # gate name -> the piece it overwrites
        self._plan_forward()
        self._plan_backward()
        backward_copies, _ = self._transposed_copies(st.expr for st in self.in_loop)
        # the matrices the cache keeps column by column (numpy_target narrows them to those it copies)
        self.column_major = {self.names[name] for name in backward_copies}

    # ---- helpers ---------------------------------------------------------------------------
    def _parameter_symbols(self):
        for group in self.m.groups:
            for param in group.members.values():
                yield symbols.parameter(param)
        from .program import param_tag

        for group in self.m.groups:
            for arg in group.args:
                yield param_tag(arg)

    def name(self, sym: sympy.Symbol) -> str:
        return self.names[sym.name]

    def target(self, statement: Statement) -> str:
        """The Python name(s) a statement assigns, as the step printer writes them."""
        return ", ".join(self.names[t.name] for t in statement.targets)

    def _is_input_product(self, term) -> bool:
        return isinstance(term, Dot) and symbols.read(term.args[1]) is not None and \
            symbols.read(term.args[1]).name == self.m.cell.input and symbols.read(term.args[1]).time == "t"

    def _is_constant(self, expr) -> bool:
        return all(s.name in self.param_names for s in expr.free_symbols)

    @staticmethod
    def _row_width(about_shape: str) -> str:
        """'(N, 4 * H)' -> '4 * H'."""
        return about_shape.strip("()").split(",", 1)[1].strip()

    # ---- the forward pass --------------------------------------------------------------------
    def _plan_forward(self):
        """Hoisted input products, the loop's statements, and the storage of every value the backward reads."""
        m, statements = self.m, self.program.forward
        reads_later = {}  # python name -> read by a later forward statement or the backward
        for k, st in enumerate(statements):
            for s in st.expr.free_symbols:
                if s.name in self.names:
                    reads_later.setdefault(self.names[s.name], set()).add(k)
        self.preamble, self.hoisted, self.loop = [], [], []
        for st in statements:
            if self._is_constant(st.expr):
                self.preamble.append(st)
                continue
            terms = flat_sum(st.expr) if st.key.startswith(("product", "group")) and not isinstance(st.expr, Split) else []
            inputs = [t for t in terms if self._is_input_product(t)]
            if inputs:
                hoist = [t for t in terms if self._is_input_product(t) or self._is_constant(t)]
                rest = [t for t in terms if t not in hoist]
                buffer = Buffer(self.target(st) + "_all", self._row_width(st.about[0][0]),
                                st.about[0][1] if len(st.targets) == 1 else "pre-activations")
                self.buffers[self.target(st)] = buffer
                self.hoisted.append((buffer, total(hoist)))
                self.loop.append(("bind", st, rest))
                continue
            self.loop.append(("compute", st, None))
        # a product whose blocks the backward reads is computed into a buffer of its own; when it reads
        # only some of them (the GRU's gh_n), the product is a temporary and those blocks are copied
        # into buffers of their own (`kept_blocks`), which the loop below gives them
        self.kept_blocks: dict[str, str] = {}  # block name -> the product it is split from
        for st in statements:
            if isinstance(st.expr, Split) and st not in self.preamble and any(
                    self.name(t) in self.cached for t in st.targets):
                source = self.name(st.expr.args[0])
                kept = [self.name(t) for t in st.targets if self.name(t) in self.cached]
                if source not in self.buffers and len(kept) < len(st.targets) and int(st.expr.args[2]) == 1:
                    self.kept_blocks.update((name, source) for name in kept)
                elif source not in self.buffers:
                    width = next(self._row_width(o.about[0][0]) for o in statements if self.target(o) == source)
                    self.buffers[source] = Buffer(source + "_all", width, "pre-activations")
        # the blocks of split buffers; a gate's activation in place over its block
        for st in statements:
            if isinstance(st.expr, Split) and self.name(st.expr.args[0]) in self.buffers:
                buffer = self.buffers[self.name(st.expr.args[0])]
                for index, target in enumerate(st.targets):
                    self.blocks[self.name(target)] = (buffer, index, len(st.targets))
        backward_reads = self.cached
        for k, st in enumerate(statements):
            if not st.key.startswith("equation:") or len(st.targets) != 1:
                continue
            expr = st.expr  # a function of one argument, NumPy's (sigmoid, tanh) or a cell file's (softsign)
            if not isinstance(expr, sympy.Function) or len(expr.args) != 1:
                continue
            target = self.target(st)
            # the block it overwrites: its argument, or a term of its argument (the GRU's r over
            # gx_r + gh_r), that no other statement and not the backward reads
            terms = [expr.args[0]] if expr.args[0].is_Symbol else list(expr.args[0].args) \
                if isinstance(expr.args[0], sympy.Add) else []
            pieces = [self.name(term) for term in terms if term.is_Symbol and term.name in self.names]
            free = [piece for piece in pieces if piece in self.blocks and piece not in backward_reads
                    and reads_later.get(piece) == {k} and piece not in self.in_place.values()]
            if free and symbols.read(st.target).name not in m.cell.states:
                self.in_place[target] = free[0]
                self.blocks[target] = self.blocks[free[0]]
        # everything else the backward reads: its own buffer (what the preamble computes from the
        # parameters, such as the blocks of a stacked peephole vector, is the same at every step)
        self.constants = {self.name(t) for st in self.preamble for t in st.targets}
        for st in statements:
            if st in self.preamble:
                continue
            for target in st.targets:
                name = self.name(target)
                ref = symbols.read(target)
                if ref is not None and ref.name in m.cell.states:
                    continue
                if name in backward_reads and name not in self.blocks and name not in self.buffers:
                    self.buffers[name] = Buffer(name + "_all", "H", dict(zip(st.targets, st.about)).get(target, ("", name))[1])
        for state in m.cell.states:
            self.buffers["state:" + state] = Buffer(m.py[state] + "_all", "H", f"state {state}; [0] is its initial value",
                                                    state=True)

    def _state_buffer(self, state: str) -> Buffer:
        return self.buffers["state:" + state]

    def forward_lines(self) -> list[str]:
        """The body of the sequence forward after its argument checks (dtype known), 4 spaces in."""
        cell, py = self.m.cell, self.m.py
        out = ["# Time-major copies and buffers: step t's arrays are contiguous blocks [t] (the cache owns them).",
               f"{self.x}_all = np.array({self.x}.transpose(1, 0, 2), dtype=dtype, order=\"C\")"]
        for state in cell.states:
            buffer = self._state_buffer(state)
            out.append(f"{buffer.name} = np.empty({buffer.shape}, dtype=dtype)")
            out.append("{}[0] = {}".format(buffer.name, py[cell.output] + "0" if state == cell.output else 0))
        for buffer in self._own_buffers():
            out.append(f"{buffer.name} = np.empty({buffer.shape}, dtype=dtype)")
        for st in self.preamble:
            out.append(_Assign(self.target(st), self.print(st.expr)))
        names = dict(self.names, **{symbols.vector(cell.input).name: f"{self.x}_rows"})
        if self.hoisted:
            out += ["", "# The products with the input for every step at once: one matrix product over all T * N rows.",
                    f"{self.x}_rows = {self.x}_all.reshape(T * N, {self.width_of_input})"]
            for buffer, expr in self.hoisted:
                products = [t for t in flat_sum(expr) if isinstance(t, Dot)]
                rest = [t for t in flat_sum(expr) if not isinstance(t, Dot)]
                out.append(f"{buffer.name} = np.empty({buffer.shape}, dtype=dtype)")
                rows = f"{buffer.name}.reshape(T * N, {buffer.width})"
                first, *others = products
                matrix, _ = first.args
                right = self.name(matrix) + (".T" if matrix.name in self.p.transposed else "")
                out.append(f"np.matmul({self.x}_rows, {right}, out={rows})")
                for term in others + rest:
                    out.append(f"{buffer.name} += {print_numpy(term, names, self.p.transposed)}")
        self.loop_views, self.viewed = [], set()
        entries, merged = [], self._merged_activations()
        self.copies, copy_lines = self._transposed_copies(
            (total(rest) if rest else 0) if kind == "bind" else st.expr for kind, st, rest in self.loop)
        whole_rows = self._whole_row_activations()
        for kind, st, rest in self.loop:
            if id(st) in whole_rows:
                entries += whole_rows[id(st)]
                continue
            if id(st) in merged:
                if merged[id(st)] is not None:
                    entries.append(merged[id(st)])
                continue
            if kind == "bind":
                if rest:
                    target = self.target(st)
                    entries.append(Entry(["{} += {}".format(target, self.print(total(rest)))],
                                         self._reads(total(rest)), {target}))
                continue
            items = self._forward_statement(st)
            if items:  # q = P where P is already named q: nothing to compute
                entries.append(self._entry(st, items))
        body = self._bindings(forward=True) + self._fused(entries, "forward", carried=set())
        self.copies = {}
        before = copy_lines + (self.fusion.workspaces["forward"] if self.fusion else []) + self.loop_views
        out += [""] + before if before else []
        out += ["", "for t in range(T):"]
        out += [_Rendered(line) for line in _render(body, "        ")]
        out.append("{} = np.array({}[1:].transpose(1, 0, 2), order=\"C\")  # a copy: the cache keeps its own".format(
            py[cell.output], self._state_buffer(cell.output).name))
        # what the template reads after these lines: the cache's fields and the returned state
        keep = {f["name"] for f in self.cache_fields([])} | {py[cell.output], "cache"}
        return _without_unread_views(_render(out, "    "), keep)

    def _own_buffers(self) -> list[Buffer]:
        return [b for key, b in self.buffers.items() if not key.startswith("state:") and
                b not in [h[0] for h in self.hoisted]]

    def _bindings(self, forward: bool) -> list[str]:
        """The loop body's first lines: the names of step t bound to views of the buffers."""
        cell, py = self.m.cell, self.m.py
        targets, values = [], []
        reads = self.loop_reads if not forward else {
            self.name(sym) for _, st, rest in self.loop
            for sym in (total(rest) if rest is not None else st.expr).free_symbols if sym.name in self.names}
        if self.x in reads:  # the input read inside the loop (elementwise, or a product not hoisted)
            targets.append(self.x)
            values.append(f"{self.x}_all[t]")
        for state in cell.states:
            buffer = self._state_buffer(state).name
            if forward or "prev_" + py[state] in self.loop_reads:
                targets.append("prev_" + py[state])
                values.append(f"{buffer}[t]")
            if forward or "next_" + py[state] in self.loop_reads:
                targets.append("next_" + py[state])
                values.append(f"{buffer}[t + 1]")
        for name, buffer in self.buffers.items():
            if name.startswith("state:") or buffer in [h[0] for h in self.hoisted]:
                continue
            if name not in self.blocks and name not in self.kept_blocks if forward else name in self.loop_reads:
                targets.append(name)
                values.append(f"{buffer.name}[t]")
        lines = _bind(targets, values)
        for name, buffer in self.buffers.items():  # hoisted products: bound in the forward, split in the backward
            if buffer not in [h[0] for h in self.hoisted]:
                continue
            if forward or name in self.loop_reads:
                lines.append(f"{name} = {buffer.name}[t]")
        if not forward:
            lines.extend(self._block_bindings())
            lines += ["{} = {}  # recomputed: the cache does not keep it".format(self.name(st.target), self.print(st.expr))
                      for st in self.recomputed if self.name(st.target) in self.loop_reads]
        return lines

    def _block_bindings(self) -> list[str]:
        """The backward's view of each split buffer at t: the blocks it reads, by what they hold now
        (views of every step's blocks made before the loop, `loop_views`, when their names are free)."""
        lines, seen = [], set()
        for buffer, _index, count in self.blocks.values():
            if buffer.name in seen:
                continue
            seen.add(buffer.name)
            holders = ["_"] * count
            for other, (b, i, _) in self.blocks.items():
                if b is buffer and other in self.loop_reads:
                    holders[i] = other
            if any(h != "_" for h in holders):
                lines += self._step_views(buffer.name, holders)
        return lines

    def _step_views(self, buffer: str, holders: list[str]) -> list[str]:
        """`holders` bound to step t's blocks of the (T, N, k * H) `buffer` ("_" for a block not read):
        views of every step's blocks taken once before the loop (`loop_views`), indexed at t inside it,
        which costs a fraction of splitting buffer[t] at every step; split at every step when a view's
        name (a_i_all) is taken."""
        views = [h if h == "_" else h + "_all" for h in holders]
        taken = set(self.names.values()) | {b.name for b in self.buffers.values()} | {
            b.name for b in getattr(self, "delta_buffers", {}).values()} | {self.x + "_all"}
        if any(view in taken or view in self.viewed for view in views if view != "_"):
            return ["{} = _blocks({}[t], {})".format(", ".join(holders), buffer, len(holders))]
        self.viewed |= set(views) - {"_"}
        self.loop_views.append("{} = _blocks({}, {})  # views of every step's blocks".format(
            ", ".join(views), buffer, len(holders)))
        used = [h for h in holders if h != "_"]
        return _bind(used, [f"{h}_all[t]" for h in used])

    def _forward_statement(self, st: Statement) -> list[str]:
        target = self.target(st)
        if isinstance(st.expr, Split) and int(st.expr.args[2]) == 1:
            kept = [self.name(t) for t in st.targets if self.name(t) in self.kept_blocks]
            source = self.print(st.expr.args[0])
            split = self._step_views(self.buffers[source].name, [self.name(t) for t in st.targets]) \
                if source in self.buffers else [_Assign(target, "_blocks({}, {})".format(source, int(st.expr.args[1])))]
            return split + [f"{self.buffers[name].name}[t] = {name}  # the block the backward reads" for name in kept]
        if isinstance(st.expr, Split) or len(st.targets) > 1:
            return [_Assign(target, self.print(st.expr))]
        if st.key.startswith("equation:") and self.print(st.expr) == target:
            return []  # q = P where P is already named q
        ref = symbols.read(st.target)
        if target in self.in_place:
            into = self._into(st.expr, self.in_place[target], assign=target)
            return [into] if isinstance(into, _Into) else [into, _Assign(target, self.in_place[target])]
        stored = (ref is not None and ref.name in self.m.cell.states) or target in self.buffers
        if stored:
            return [self._into(st.expr, target)]
        return [_Assign(target, self.print(st.expr))]

    def _split_blocks(self) -> dict:
        """{block name: (the name of the array split, its index, the number of blocks)} of the forward."""
        return {self.name(target): (self.name(st.expr.args[0]), index, len(st.targets))
                for st in self.program.forward if isinstance(st.expr, Split)
                for index, target in enumerate(st.targets)}

    def _added_block(self, st: Statement):
        """The block that a gate computed in place adds to its own (the GRU's gh_r in r = sigmoid(gx_r
        + gh_r)), None when its argument is its block alone, False when it is anything else."""
        argument, piece = st.expr.args[0], self.in_place[self.target(st)]
        if argument.is_Symbol:
            return None
        terms = [self.name(term) for term in argument.args] if isinstance(argument, sympy.Add) and all(
            term.is_Symbol and term.name in self.names for term in argument.args) else []
        others = [name for name in terms if name != piece]
        return others[0] if len(terms) == 2 and len(others) == 1 else False

    def _merged_activations(self) -> dict:
        """Gates whose activation runs in place over side-by-side blocks of one buffer, with the same
        function and one after another in the loop (the LSTM's i, f, o): one call over the blocks
        together; when each adds the same block of another split array to its own (the GRU's r and z
        over gx_r + gh_r and gx_z + gh_z), one addition over those blocks first.
        {id(statement): the Entry that replaces the run (at its first statement), or None}."""
        runs, run, added_block = [], [], {}
        split = self._split_blocks()
        for kind, st, _ in self.loop:
            target = self.target(st) if kind == "compute" and len(st.targets) == 1 else None
            if target in self.in_place:
                added_block[id(st)] = self._added_block(st)
            if target in self.in_place and added_block[id(st)] is not False:
                run.append(st)
            else:
                runs.append(run)
                run = []
        runs.append(run)
        out = {}
        for run in runs:
            by_function = {}
            for st in run:
                added = added_block[id(st)]
                added_from = split[added][0] if added in split else None if added is None else False
                by_function.setdefault((type(st.expr).__name__, added_from), []).append(st)
            for (function, added_from), group in by_function.items():
                blocks = [self.blocks[self.in_place[self.target(st)]] for st in group]
                indices = sorted(index for _, index, _ in blocks)
                if added_from is False or len(group) < 2 or len({b[0].name for b in blocks}) > 1 or indices != list(
                        range(indices[0], indices[0] + len(group))):
                    continue
                if added_from is not None and any(  # the added blocks: the same places in the other array
                        split[added_block[id(st)]][1:] != self.blocks[self.in_place[self.target(st)]][1:]
                        for st in group):
                    continue
                group.sort(key=lambda st: self.blocks[self.in_place[self.target(st)]][1])
                source = next(self.name(o.expr.args[0]) for o in self.program.forward if isinstance(o.expr, Split)
                              and self.in_place[self.target(group[0])] in [self.name(t) for t in o.targets])
                view = f"{source}_{function}"
                if view in self.names.values():
                    continue
                start, stop = indices[0], indices[-1] + 1
                bounds = "{}{} : {} * H".format("" if start == 0 else "H" if start == 1 else f"{start} * H", "", stop)
                bounds = bounds if start else f": {stop} * H"
                call = numpy_call_into(group[0].expr.func(sympy.Symbol(view)), view, {view: view}, ())
                if call is None:  # no NumPy call with out= (a cell file's function): one gate at a time
                    continue
                gates = [self.target(st) for st in group]
                pieces = [self.in_place[g] for g in gates]
                added = [f"{view} += {added_from}[:, {bounds}]"] if added_from is not None else []
                entry = Entry([f"{view} = {source}[:, {bounds}]  # the blocks of {', '.join(gates)}, side by side",
                               *added, _Into(None, *call), "{} = {}".format(", ".join(gates), ", ".join(pieces))],
                              set(pieces) | {added_block[id(st)] for st in group} - {None}, set(gates))
                order = [id(o) for _, o, _ in self.loop]
                for k, st in enumerate(sorted(group, key=lambda st: order.index(id(st)))):
                    out[id(st)] = entry if k == 0 else None
        return out

    def _whole_row_activations(self) -> dict:
        """For a fused target, a stacked pre-activation whose every block is a gate's sigmoid or tanh of
        that block alone, computed in place (the LSTM's i, f, o, g; the CIFG's f, o, g): one np.tanh over
        the whole (N, G * H) row, as sigmoid(z) = (1 + tanh(z / 2)) / 2.  The halving of the sigmoid
        blocks is done with the addition of the recurrent product (`_add_scaled(a, prev_h @ Wh,
        a_scale)`, a (G * H,) vector of THROUGH_TANH's scales), and (1 + t) / 2 by the kernel that reads
        the gate: about three passes over the row and two calls fewer per step than a NumPy sigmoid
        (measured on a module written so by hand: 0.91-0.95 of the LSTM's CPU time at (N, H) =
        (64, 128), (32, 256), (1, 256); the same at (128, 1024)).
        {id(statement): the entries that replace it (the addition; the tanh and the gates' values),
        or [] for the other gates}."""
        if self.fusion is None:
            return {}
        split = self._split_blocks()
        gates = {self.in_place[self.target(st)]: st for kind, st, _ in self.loop if kind == "compute"
                 and len(st.targets) == 1 and self.target(st) in self.in_place}
        out = {}
        for kind, st, rest in self.loop:
            stack = self.target(st)
            blocks = sorted((index, name) for name, (source, index, _) in split.items() if source == stack)
            if kind != "bind" or not rest or stack not in self.buffers or not blocks or not all(
                    isinstance(term, Dot) for term in rest):  # (products: an (N, G * H) array _add_scaled can take)
                continue
            scale = f"{stack}_scale"
            chosen = [gates.get(name) for _, name in blocks]
            if scale in self.names.values() or not all(
                    g is not None and type(g.expr).__name__ in THROUGH_TANH and g.expr.args[0].is_Symbol
                    and self.name(g.expr.args[0]) == name for g, (_, name) in zip(chosen, blocks)):
                continue
            names = [name for _, name in blocks]
            scales = [THROUGH_TANH[type(g.expr).__name__][0] for g in chosen]
            self.fusion.workspaces["forward"] += [
                "# each gate block's scale before the one tanh over the row: sigmoid(z) = (1 + tanh(z / 2)) / 2",
                "{} = np.repeat(np.array([{}], dtype=dtype), H)".format(scale, ", ".join(str(float(v)) for v in scales))]
            added = total(rest)
            out[id(st)] = [Entry([_Into(None, "_add_scaled", [stack, self.print(added), scale])],
                                 self._reads(added) | {stack}, {stack})]
            targets = [self.target(g) for g in chosen]
            first = Entry(["# every gate at once; a sigmoid block holds tanh(z / 2) until the kernel takes (1 + t) / 2",
                           _Into(None, "np.tanh", [stack, f"out={stack}"]),
                           "{} = {}  # views of the gates' blocks".format(", ".join(targets), ", ".join(names))],
                          {stack}, {stack, *names} | {t for t, g in zip(targets, chosen) if type(g.expr).__name__ == "tanh"})
            values = []
            for g, name, target in zip(chosen, names, targets):
                value = THROUGH_TANH[type(g.expr).__name__][1]
                if value is not None:
                    expr = value(g.expr.args[0])
                    values.append(Entry([self._into(expr, name, assign=target)], {name}, {target},
                                        Statement(g.targets, expr, g.block, g.vias, g.key, g.about), True, name))
            order = [id(o) for _, o, _ in self.loop]
            for k, g in enumerate(sorted(chosen, key=lambda g: order.index(id(g)))):
                out[id(g)] = [first, *values] if k == 0 else []
        return out

    # ---- loop bodies as entries, which a fused target may regroup -----------------------------
    def _reads(self, expr) -> set[str]:
        return {self.name(s) for s in expr.free_symbols if s.name in self.names}

    def _entry(self, st: Statement, items: list, accumulated: bool = False) -> "Entry":
        """One statement of a loop body; `stored` names the array it writes into, if it writes into one."""
        writes = {self.name(t) for t in st.targets}
        stored = None
        for item in items:
            if isinstance(item, _Into):
                stored = item.args[-1].removeprefix("out=")
            elif isinstance(item, _Assign) and item.target.endswith("[...]"):
                stored = item.target.removesuffix("[...]")
        elementwise = (len(st.targets) == 1 and not accumulated and self.target(st) not in self.in_place
                       and not st.expr.has(Dot, TDot, Stack, BatchSum, Split, WeightGradient, Copy))
        return Entry(items, self._reads(st.expr), writes, st, elementwise, stored)

    def _fused(self, entries: list["Entry"], direction: str, carried: set[str], aliases=None) -> list:
        """The loop body's items; a fused target regroups the elementwise entries into kernels
        (`aliases`: {dnext_c: dprev_c} for the upstream gradients that are the carried array itself)."""
        if self.fusion is None:
            return [item for entry in entries for item in entry.items]
        return self.fusion.fuse(self, entries, direction, carried, aliases or {})

    def print(self, expr) -> str:
        """`expr` in the sequence functions' names; inside a loop, products with a matrix's transpose
        use its contiguous copy (`copies`)."""
        return print_numpy(expr, self.names, self.p.transposed, self.copies)

    def _transposed_copies(self, exprs, column_major=()) -> tuple[dict[str, str], list[str]]:
        """{matrix symbol name: name of its contiguous transpose} for the products in `statements` that
        multiply by a transpose, and the lines that make the copies before the loop: BLAS multiplies a
        (N, 4H) batch by a (4H, H) matrix stored row by row faster than by the transpose of an (H, 4H) one
        (measured here: 1.2-1.7x, as the one product in the loop that cannot be batched).  In the
        backward, the cache already keeps such a matrix column by column (`column_major`), so that its
        transpose is a contiguous view: the copy the cache makes anyway is the transposed one."""
        copies, lines = {}, []
        taken = set(self.names.values())
        for expr in exprs:
            for node in sympy.preorder_traversal(expr):
                if not isinstance(node, (Dot, TDot)):
                    continue
                matrix = node.args[0]
                if (matrix.name in self.p.transposed) != isinstance(node, Dot) or matrix.name in copies:
                    continue
                name = self.name(matrix) + "_T"
                if name in taken:
                    continue
                copies[matrix.name] = name
                if self.name(matrix) in column_major:
                    lines.append(f"{name} = {self.name(matrix)}.T  # contiguous: the cache keeps "
                                 f"{self.name(matrix)} column by column")
                else:
                    lines.append(f"{name} = np.ascontiguousarray({self.name(matrix)}.T)"
                                 f"  # transposed once: faster products in the loop")
        return copies, lines

    def _into(self, expr, out: str, assign: str | None = None):
        """`expr` computed into the array `out` (and bound to `assign`)."""
        call = numpy_call_into(expr, out, self.names, self.p.transposed, self.copies)
        if call is None:
            return _Assign(out + "[...]", self.print(expr))
        return _Into(assign, *call)

    # ---- the backward pass -------------------------------------------------------------------
    def _plan_backward(self):
        """Which statements run in the loop, which after it over all rows, and which accumulate."""
        statements = self.program.backward
        self.after, self.in_loop, self.accumulated = [], [], []
        input_adjoint = symbols.vector(self.m.cell.input, "t", "adjoint")
        stacks = {stack_tag(g) for g in self.m.groups if g.kind == "matrix"}
        for st in statements:
            expr = st.expr
            if isinstance(expr, (WeightGradient, Copy)) or (isinstance(expr, BatchSum) and expr.args[0].is_Symbol):
                self.after.append(st)
            elif st.target == input_adjoint and all(isinstance(t, TDot) for t in flat_sum(expr)):
                self.after.append(st)
            elif isinstance(expr, BatchSum):
                self.accumulated.append(st)
                self.in_loop.append(st)
            else:
                self.in_loop.append(st)
        self.dx_in_loop = any(st.target == input_adjoint for st in self.in_loop)
        primary = next((st for st in self.in_loop if st.target in stacks and isinstance(st.expr, Stack)
                        and all(a.is_Symbol and a.name.startswith("delta:") for a in st.expr.args)), None)
        self.primary = primary
        self.shared_stacks = self._share_blocks(stacks) if primary is not None else {}
        self._explained: set[str] = set()  # shared stacks whose comment the lines after the loop have
        # what the statements after the loop read: stored per step
        after_reads = {s for st in self.after for s in st.expr.free_symbols if s.name in self.names}
        after_reads -= {sympy.Symbol(name) for name in self.shared_stacks}
        after_reads |= {piece for pieces in self.shared_stacks.values() for piece in pieces if not isinstance(piece, int)}
        self.delta_buffers: dict[str, Buffer] = {}
        self.delta_blocks: dict[str, tuple] = {}
        for st in self.in_loop:
            name = self.name(st.target)
            if st.target in stacks and st.target in after_reads:
                self.delta_buffers[name] = Buffer(name + "_all", self._stack_width(st.target), "stacked deltas")
        if primary is not None:
            buffer = self.delta_buffers[self.name(primary.target)]
            for index, arg in enumerate(primary.expr.args):
                self.delta_blocks[self.name(arg)] = (buffer, index, len(primary.expr.args))
        for st in self.in_loop:
            name = self.name(st.target)
            if st.target in after_reads and name not in self.delta_buffers and name not in self.delta_blocks:
                width = self._stack_width(st.target) if st.target in stacks else "H"
                self.delta_buffers[name] = Buffer(name + "_all", width, "deltas")
        self.after_reads = after_reads
        self.recomputed = self._recomputed(self.after_names())
        self.loop_reads = {self.name(sym) for st in self.in_loop + self.recomputed
                           for sym in st.expr.free_symbols if sym.name in self.names}

    def _recomputed(self, after: set[str]) -> list[Statement]:
        """Forward values the backward loop recomputes instead of reading from a buffer: sums and
        products, with no function applied, of what the cache keeps anyway (the CIFG's i = 1 - f),
        that no statement after the loop reads.  Their buffers are dropped: an (N, H) per step less."""
        cell = self.m.cell
        out, recomputed = [], set()

        def kept(sym) -> bool:  # what the backward loop can read at step t
            name, ref = self.name(sym), symbols.read(sym)
            if name in recomputed:
                return True
            if sym.name in self.param_names or name in self.constants:
                return name in self.cached  # the cache keeps the parameters the step backward reads
            if ref is not None and ref.name in cell.states:
                return True
            holds = name in self.in_place or name not in self.in_place.values()  # not overwritten in place
            return name in self.cached and (name in self.buffers or (name in self.blocks and holds))

        for st in self.program.forward:
            if len(st.targets) != 1 or st in self.preamble or st.expr.atoms(sympy.Function):
                continue
            name, ref = self.name(st.target), symbols.read(st.target)
            if name not in self.buffers or name in after or (ref is not None and ref.name in cell.states) \
                    or self.buffers[name] in [h[0] for h in self.hoisted]:
                continue
            if all(kept(s) for s in st.expr.free_symbols if s.name in self.names):
                del self.buffers[name]
                recomputed.add(name)
                out.append(st)
        return out

    def _share_blocks(self, stacks) -> dict[str, list]:
        """Stacked deltas whose blocks are partly blocks of the primary stack (the GRU's
        dgh = [dr, dz, r * dn] beside dgx = [dr, dz, dn]): only their own blocks are stored, each
        computed into a (T, N, H) buffer of its own, and the weight and bias gradients after the loop
        are taken block by block.  {stack symbol name: per block, the primary's index or the symbol of
        the stack's own block}; the in-loop statements are rewritten to compute the own blocks first."""
        index = {arg.name: k for k, arg in enumerate(self.primary.expr.args)}
        out = {}
        taken = set(self.names.values())
        for st in list(self.in_loop):
            if st is self.primary or st.target not in stacks or not isinstance(st.expr, Stack):
                continue
            readers = [a for a in self.after if st.target in a.expr.free_symbols]
            shared = [arg.is_Symbol and arg.name in index for arg in st.expr.args]
            if not readers or not any(shared) or all(shared) or not all(
                    isinstance(a.expr, (WeightGradient, BatchSum)) for a in readers):
                continue
            group = next(g for g in self.m.groups if stack_tag(g) == st.target)
            gates = self.m.block_names(group).split(", ")
            names = ["{}_{}".format(self.name(st.target), symbols.python_name(gate)) for gate in gates]
            if any(name in taken or not name.isidentifier() for name, is_shared in zip(names, shared) if not is_shared):
                continue  # a block with no name of its own: the stack stays whole
            pieces, args, first = [], [], []
            for arg, is_shared, name in zip(st.expr.args, shared, names):
                if is_shared:
                    pieces.append(index[arg.name])
                    args.append(arg)
                    continue
                own = sympy.Symbol("block:" + name)
                self.names[own.name] = name
                taken.add(name)
                first.append(Statement((own,), arg, st.block, st.vias, about=(("(N, H)", "deltas"),)))
                pieces.append(own)
                args.append(own)
            rewritten = Statement(st.targets, Stack(*args), st.block, st.vias, st.key, st.about)
            at = self.in_loop.index(st)
            self.in_loop[at:at + 1] = first + [rewritten]
            out[st.target.name] = pieces
        return out

    def after_names(self) -> set[str]:
        """The Python names that the statements after the backward loop read."""
        return {self.name(s) for s in self.after_reads}

    def _stack_width(self, stack: sympy.Symbol) -> str:
        group = next(g for g in self.m.groups if stack_tag(g) == stack)
        return self.m.width(group)

    def _recurrence_entry(self, r: Recurrence) -> "Entry":
        """dnext_s = ds[:, t, :] + dprev_s as an elementwise entry, which a kernel can take: it reads the
        loss's gradient ds whole at row and step t (`upstream_arrays`), so no (N, H) sum is allocated
        and no pass over memory made for it (measured: 13 us of 540 per step at N, H = 64, 128)."""
        target, upstream, carried = (sympy.Symbol("recurrence:" + n) for n in (r.target, r.upstream, r.carried))
        for symbol, name in ((target, r.target), (upstream, r.upstream), (carried, r.carried)):
            self.names[symbol.name] = name
        self.upstream_arrays.add(r.upstream)
        statement = Statement((target,), upstream + carried)
        return Entry([r.line], {r.upstream, r.carried}, {r.target}, statement, True)

    def backward_lines(self, recurrence: list[Recurrence], zeros: list[str], shapes: dict[str, str]) -> list[str]:
        """The body of the sequence backward after its checks (dtype known), 4 spaces in; `recurrence`
        forms dnext_s at step t, `zeros` are the initial dprev_s, `shapes` those of the parameter
        gradients."""
        fused_sums = [r for r in recurrence if r.upstream is not None and self.fusion is not None]
        lines = [r.line for r in recurrence if r not in fused_sums]
        out = []
        donors = self._donors()
        for donor in donors.values():
            message = (f'"cache: already used by a backward pass ({donor.name} holds its deltas); '
                       f'run {self.m.prefix}_forward again"')
            out += [f"if not {donor.name}.flags.writeable:"]
            out += [_Rendered(line) for line in fmt.bracketed("        ", "raise ValueError(", [message], ")")]
        for name, buffer in self.delta_buffers.items():
            if name in donors:  # step t's deltas go into the donor's block [t] once step t has read it
                donor = donors[name].name
                out += [f"# {buffer.name} reuses the cache's {donor} (block [t] is free once step t has read it)",
                        f"{buffer.name} = {donor} if {donor}.dtype == dtype else np.empty({buffer.shape}, dtype=dtype)",
                        f"{name} = np.empty((N, {buffer.width}), dtype=dtype)"]
            else:
                out.append(f"{buffer.name} = np.empty({buffer.shape}, dtype=dtype)")
        if self.dx_in_loop:
            out.append(f"d{self.x}_all = np.empty((T, N, {self.width_of_input}), dtype=dtype)")
        summed = {id(st): sums for st in self.accumulated if (sums := self._sums(st)) is not None}
        for st in self.accumulated:
            name = self.name(st.target)
            if id(st) in summed:
                out.append(f"{summed[id(st)]} = np.zeros(({len(_parts(st.expr))}, H))  # {name} by blocks, summed "
                           "over rows and steps by the kernel, in float64")
            else:
                out.append("{} = np.zeros({}, dtype=dtype)".format(name, shapes[name]))
        out += zeros
        self.loop_views, self.viewed = [], set()
        loop = ["for t in reversed(range(T)):"]
        body = ["# The gradient reaching each state at t: the loss's own (output only) and what step t+1 passed back."]
        body += lines
        body += self._bindings(forward=False)
        body += _bind([n for n in self.delta_buffers if n not in donors],
                      [f"{b.name}[t]" for n, b in self.delta_buffers.items() if n not in donors])
        invariant = []  # views of the arrays allocated before the loop: bound once
        if self.primary is not None:
            stack = self.name(self.primary.target)
            line = "{} = _blocks({}, {})".format(
                ", ".join(self.name(a) for a in self.primary.expr.args), stack, len(self.primary.expr.args))
            (invariant if stack in donors else body).append(line)
        self.copies, copy_lines = self._transposed_copies((st.expr for st in self.in_loop), self.column_major)
        if self.fusion is None:  # (the fused target takes every such call out of its kernels itself)
            workspaces, calls = self._repeated_calls()
            copy_lines, body = copy_lines + workspaces, body + calls
        carried = {z.split(" = ")[0] for z in zeros}
        entries = [self._recurrence_entry(r) for r in fused_sums]
        for st in self.in_loop:
            if st is self.primary:
                continue
            split = self._product_split(st, carried, recurrence) if self.fusion is not None else None
            if id(st) in summed:
                entries += self._summed_entries(st, summed[id(st)])
                continue
            entries += split or [self._entry(st, self._backward_statement(st), accumulated=st in self.accumulated)]
        aliases = {r.target: r.carried for r in recurrence if r.upstream is None and r.carried in carried}
        body += self._fused(entries, "backward", carried, aliases)
        for name in donors:
            body.append(f"{self.delta_buffers[name].name}[t] = {name}")
        self.copies = {}
        out += copy_lines + (self.fusion.workspaces["backward"] if self.fusion else []) + invariant + self.loop_views
        out += loop
        out += [_Rendered(line) for line in _render(body, "        ")]
        for donor in donors.values():
            out.append(f"{donor.name}.flags.writeable = False  # it holds deltas now: a cache serves one backward")
        for st in self.accumulated:
            if id(st) in summed:
                out.append(f"{self.name(st.target)} = {summed[id(st)]}.reshape(-1).astype(dtype)")
        out += self._after_lines()
        # what the template reads after these lines: the returned gradients and the carried state's
        keep = set(shapes) | {f"d{self.x}", f"dprev_{self.m.py[self.m.cell.output]}"}
        return _without_unread_views(_render(out, "    "), keep)

    def _sums(self, st: Statement) -> str | None:
        """For a fused target, the name of the float64 (k, H) array into which a kernel sums the k
        elementwise blocks of an accumulated parameter gradient (the peephole LSTM's dp += the row
        sums of [di * prev_c, df * prev_c, do * next_c]): no temporaries, no call per step.  None
        when the target is not fused, a block is not elementwise, or the name is taken."""
        name = self.name(st.target) + "_sums"
        parts = _parts(st.expr)
        if self.fusion is None or not parts or name in self.names.values() or any(
                part.has(Dot, TDot, Stack, BatchSum, Split, WeightGradient, Copy) for part in parts):
            return None
        return name

    def _summed_entries(self, st: Statement, sums: str) -> list["Entry"]:
        """One elementwise entry per block of the accumulated gradient, each summed into sums[k]; the
        blocks are named after the parameter's (dp_i for p_i) when the preamble splits it, else
        dp_0, dp_1, ..."""
        name, parts = self.name(st.target), _parts(st.expr)
        blocks = next((st2.targets for st2 in self.preamble if isinstance(st2.expr, Split) and
                       "d" + self.name(st2.expr.args[0]) == name and len(st2.targets) == len(parts)), None)
        taken = set(self.names.values())
        scalars = [name] if len(parts) == 1 else ["d" + self.name(b) for b in blocks] if blocks and not (
            {"d" + self.name(b) for b in blocks} & taken) else [f"{name}_{k}" for k in range(len(parts))]
        out = []
        for k, (scalar, part) in enumerate(zip(scalars, parts)):
            symbol = sympy.Symbol("summed:" + scalar)
            self.names[symbol.name] = scalar
            statement = Statement((symbol,), part, st.block, st.vias, st.key, st.about)
            out.append(Entry([], self._reads(part), {scalar}, statement, True, None, (sums, k)))
        return out

    def _product_split(self, st: Statement, carried: set[str], recurrence: list[Recurrence]) -> list["Entry"] | None:
        """A state's gradient that adds matrix products to elementwise terms (the GRU's dprev_h =
        dgh @ Wh_T + dnext_h * z), as two entries for a fused target: the elementwise terms computed
        into the array carried to the next step, which a kernel can take, then the products added to
        it.  None when the statement is not such a sum, or when step t still reads that array under
        another name (dnext_c = dprev_c), which writing it early would spoil."""
        name = self.name(st.target)
        terms = flat_sum(st.expr)
        products = [t for t in terms if isinstance(t, (Dot, TDot))]
        rest = [t for t in terms if not isinstance(t, (Dot, TDot))]
        if name not in carried or not products or not rest or st in self.accumulated or any(
                r.upstream is None and r.carried == name for r in recurrence):
            return None
        elementwise = Statement(st.targets, total(rest), st.block, st.vias, st.key, st.about)
        if elementwise.expr.has(Dot, TDot, Stack, BatchSum, Split, WeightGradient, Copy):
            return None
        first = self._entry(elementwise, [self._into(elementwise.expr, name)])
        added = total(products)
        return [first, Entry([f"{name} += {self.print(added)}"], self._reads(added) | {name}, {name})]

    def _donors(self) -> dict[str, Buffer]:
        """{stacked delta: the cached gate buffer of its width that the backward overwrites with it}.

        A gate buffer (T, N, W) is read at step t only (its block [t]) and not after the loop, so once
        step t has read it, its block can take step t's deltas: the backward needs no (T, N, W) buffer of
        its own, which is the largest it would allocate (the LSTM's (T, N, 4H)).  The buffer is marked
        read-only after the loop, so that a second backward of the same cache fails instead of reading
        deltas as gates."""
        after = {b.name for n, b in self.buffers.items() if n in self.after_names()}
        after |= {b.name for n, (b, _, _) in self.blocks.items() if n in self.after_names()}
        cached = {f["name"] for f in self.cache_fields([])}
        candidates = [b for n, b in self.buffers.items() if not n.startswith("state:") and not b.state
                      and b.name in cached and b.name not in after]
        out = {}
        for name, buffer in self.delta_buffers.items():
            used = {b.name for b in out.values()}
            donor = next((b for b in candidates if b.width == buffer.width and b.name not in used), None)
            if donor is not None:
                out[name] = donor
        return out

    def _repeated_calls(self) -> tuple[list[str], list]:
        """A transcendental function of one array that the backward loop's statements apply more than
        once (tanh(next_c) in the LSTM's dnext_c_total and do): computed once per step into a workspace,
        and the statements rewritten to read it.  The workspaces' lines before the loop, and the calls."""
        counts: dict = {}
        for st in self.in_loop:
            for node in sympy.preorder_traversal(st.expr):
                if node in transcendental(node) and len(node.args) == 1 and node.args[0].is_Symbol \
                        and not self._is_constant(node.args[0]):  # (of a parameter it is no per-step work)
                    counts[node] = counts.get(node, 0) + 1
        taken = set(self.names.values())
        workspaces, calls, replaced = [], [], {}
        for application, count in counts.items():
            name = "{}_{}".format(type(application).__name__, self.name(application.args[0]))
            if count < 2 or name in taken:
                continue
            taken.add(name)
            symbol = sympy.Symbol("hoisted:" + name)
            self.names[symbol.name] = name
            replaced[application] = symbol
            workspaces.append(f"{name} = np.empty((N, H), dtype=dtype)  # {self.print(application)}, once a step")
            call = numpy_call_into(application, name, self.names, self.p.transposed)
            calls.append(_Into(None, *call) if call else f"{name}[...] = {self.print(application)}")
        rewritten = {id(st): Statement(st.targets, symbols.replace(st.expr, replaced), st.block, st.vias, st.key,
                                       st.about) for st in self.in_loop if replaced and st.expr.has(*replaced)}
        self.in_loop = [rewritten.get(id(st), st) for st in self.in_loop]
        self.accumulated = [rewritten.get(id(st), st) for st in self.accumulated]
        return workspaces, calls

    def _backward_statement(self, st: Statement) -> list[str]:
        name = self.name(st.target)
        if st is self.primary:
            return []  # its blocks were written in place
        if st in self.accumulated:
            return [f"{name} += {self.print(st.expr)}"]
        if st.target == symbols.vector(self.m.cell.input, "t", "adjoint"):
            return [self._into(st.expr, f"d{self.x}_all[t]")]
        if name in self.delta_buffers or name in self.delta_blocks:
            return [self._into(st.expr, name)]
        return [_Assign(name, self.print(st.expr))]

    def _after_lines(self) -> list[str]:
        """The gradients that are one product or sum over all T * N rows, after the loop."""
        cell, py = self.m.cell, self.m.py
        rows: dict[str, str] = {}   # symbol name -> python name of its (T * N, .) rows
        lines = []
        for sym in sorted(self.after_reads, key=lambda s: s.name):
            name = self.name(sym)
            ref = symbols.read(sym)
            if ref is not None and ref.role == "value" and ref.name == cell.input:
                lines.append(f"{self.x}_rows = {self.x}_all.reshape(T * N, {self.width_of_input})")
            elif ref is not None and ref.role == "value" and ref.name in cell.states:
                part = "[:-1]" if ref.time == "t-1" else "[1:]"
                lines.append(f"{name}_rows = {py[ref.name]}_all{part}.reshape(T * N, H)")
            elif name in self.delta_buffers:
                buffer = self.delta_buffers[name]
                lines.append(f"{name}_rows = {buffer.name}.reshape(T * N, {buffer.width})")
            elif name in self.delta_blocks:
                continue
            elif name in self.buffers:
                lines.append(f"{name}_rows = {self.buffers[name].name}.reshape(T * N, H)")
            elif name in self.blocks:
                buffer, index, count = self.blocks[name]
                lines.append(f"{name}_rows = _blocks({buffer.name}.reshape(T * N, {buffer.width}), {count})[{index}]")
            else:
                continue
            if lines[-1] in lines[:-1]:
                lines.pop()  # two symbols with one name: the one stacked delta of every group
            rows[sym.name] = f"{name}_rows" if not (ref is not None and ref.name == cell.input) else f"{self.x}_rows"
        if any(self.name(s) in self.delta_blocks for s in self.after_reads):
            stack = self.name(self.primary.target)
            lines.append("{} = _blocks({}_rows, {})".format(
                ", ".join(self.name(a) + "_rows" for a in self.primary.expr.args), stack, len(self.primary.expr.args)))
            for arg in self.primary.expr.args:
                rows[arg.name] = self.name(arg) + "_rows"
        names = dict(self.names, **rows)
        out = ["", "# Every step's deltas are stored: each weight's gradient is one matrix product over all T * N rows."]
        out += lines
        for st in self.after:
            shared = [a for a in st.expr.args if a.is_Symbol and a.name in self.shared_stacks]
            if shared:
                out += self._blockwise(st, shared[0], names)
                continue
            text = print_numpy(st.expr, names, self.p.transposed)
            if st.target == symbols.vector(cell.input, "t", "adjoint"):
                out.append(f"d{self.x}_all = ({text}).reshape(T, N, {self.width_of_input})")
            else:
                out.append(_Assign(self.name(st.target), text))
        out.append(f"d{self.x} = d{self.x}_all.transpose(1, 0, 2)  # batch-major: a view, no copy")
        return out

    def _blockwise(self, st: Statement, stack: sympy.Symbol, names: dict) -> list:
        """A weight or bias gradient of a shared stack (`shared_stacks`), block run by block run: the
        runs of the primary's blocks are column slices of its rows, the stack's own blocks their rows."""
        count = len(self.primary.expr.args)
        runs = []  # [first, last] primary indices, or a symbol
        for piece in self.shared_stacks[stack.name]:
            if isinstance(piece, int) and runs and isinstance(runs[-1], list) and runs[-1][1] == piece - 1:
                runs[-1][1] = piece
            else:
                runs.append([piece, piece] if isinstance(piece, int) else piece)
        primary_rows = self.name(self.primary.target) + "_rows"
        texts = []
        for run in runs:
            if isinstance(run, list):
                start = "" if run[0] == 0 else "H" if run[0] == 1 else f"{run[0]} * H"
                stop = "" if run[1] == count - 1 else "H" if run[1] == 0 else f"{run[1] + 1} * H"
                rows = f"{primary_rows}[:, {start}{' ' if start else ''}:{' ' if stop else ''}{stop}]"
            else:
                rows = self.name(run) + "_rows"
            piece = sympy.Symbol("rows:" + rows)
            texts.append(print_numpy(st.expr.subs(stack, piece), dict(names, **{piece.name: rows}),
                                     self.p.transposed))
        if isinstance(st.expr, WeightGradient):
            axis = 0 if st.expr.args[0].name in self.p.transposed else 1
            value = "np.concatenate([{}], axis={})".format(", ".join(texts), axis)
        else:
            value = "np.concatenate([{}])".format(", ".join(texts))
        line = _Assign(self.name(st.target), value)
        if stack.name in self._explained:
            return [line]
        self._explained.add(stack.name)
        pieces = self.shared_stacks[stack.name]
        own = [self.name(p) for p in pieces if not isinstance(p, int)]
        blocks = ", ".join(self.name(self.primary.expr.args[p]) for p in pieces if isinstance(p, int))
        return [f"# {self.name(stack)} = [{', '.join(self.name(a) for a in self._stack_args(stack))}]: its blocks "
                f"{blocks} are {self.name(self.primary.target)}'s, only {', '.join(own)} was stored", line]

    def _stack_args(self, stack: sympy.Symbol) -> list:
        return [self.primary.expr.args[p] if isinstance(p, int) else p for p in self.shared_stacks[stack.name]]

    def cache_fields(self, step_fields: list[dict]) -> list[dict]:
        """The sequence cache: the time-major buffers the backward reads, then the parameters it reads
        (`step_fields`: the step cache's fields, whose parameters the sequence cache keeps too)."""
        cell = self.m.cell
        fields = [{"name": f"{self.x}_all", "shape": f"(T, N, {self.width_of_input})", "about": "the inputs"}]
        for state in cell.states:
            b = self._state_buffer(state)
            fields.append({"name": b.name, "shape": b.shape, "about": b.about})
        seen = {f["name"] for f in fields}
        for name, buffer in self.buffers.items():
            if name.startswith("state:") or buffer.name in seen:
                continue
            if name in self.cached or any(n in self.cached for n, (b, _, _) in self.blocks.items() if b is buffer):
                about = buffer.about
                holders = [n for n, (b, _, _) in sorted(self.blocks.items(), key=lambda item: item[1][1])
                           if b is buffer and n in self.in_place]
                if holders:
                    about = "the gates " + ", ".join(holders) + " (computed over their pre-activations)"
                fields.append({"name": buffer.name, "shape": buffer.shape, "about": about})
                seen.add(buffer.name)
        params = {arg for g in self.m.groups for arg in g.args} | {g.key for g in self.m.groups} | self.constants
        fields += [f for f in step_fields if f["name"] in params]
        return fields


# The activations a whole row's np.tanh computes: the scale of the argument, and the value from t =
# tanh(scale * z) (None: t itself); sigmoid(z) = (1 + tanh(z / 2)) / 2.
THROUGH_TANH = {"sigmoid": (sympy.Rational(1, 2), lambda t: (1 + t) / 2), "tanh": (sympy.Integer(1), None)}


def transcendental(expr) -> list:
    """The applications of tanh, exp, log, sigmoid and of cell-file functions built from them in `expr`,
    innermost first."""
    slow = (sympy.tanh, sympy.exp, sympy.log, sigmoid)
    found = []
    for node in sympy.postorder_traversal(expr):
        if isinstance(node, slow) or (isinstance(node, UserFunction) and node.formula.expr.has(*slow)):
            if node not in found:
                found.append(node)
    return found


_VIEW = re.compile(r"(\s*)([\w, ]+) = ([\w\[\]+ ,]+|_blocks\([^()]*\))(  #.*)?")
_IN_PLACE_CALL = re.compile(r"(\s*)(\w+) = ([\w.]+\(.*)")


def _writes_out(lines: list[str], k: int) -> bool:
    """Whether the call that starts at lines[k] writes into an array given as out= (on its line, or on
    the lines up to its closing bracket when it is split)."""
    if lines[k].count("(") == lines[k].count(")"):  # on one line
        return "out=" in lines[k]
    indent = len(lines[k]) - len(lines[k].lstrip())
    for line in lines[k + 1:]:
        if "out=" in line:
            return True
        if len(line) - len(line.lstrip()) <= indent:
            return False
    return False


_STEP_VIEW = re.compile(r"\w+(\[t( \+ 1)?\])?")


def _without_unread_views(lines: list[str], keep: set[str]) -> list[str]:
    """A function body without the views that nothing reads: step t's blocks that a fused kernel reads
    as columns of the whole stacked array instead (i, f, o, g = i_all[t], ...), and then the views of
    every step's blocks they were taken from.  Only such view bindings are touched (a = b[t], a, b =
    c[t], d, a, b = _blocks(v, 2)); an unread block of a split is kept as `_`.  An unread name bound
    to an in-place call (g = np.tanh(a_g, out=a_g)) loses the name, not the call.  `keep`: names that
    code after `lines` reads (the template's return)."""
    def words(line: str) -> Counter:  # the names a line reads: not in its strings or its comment
        return Counter(re.findall(r"\w+", re.sub(r"(^|\s)#.*", "", re.sub(r'"[^"]*"|\'[^\']*\'', "", line))))

    while True:
        changed = False
        counts = sum((words(line) for line in lines), Counter())
        for k, line in enumerate(lines):
            own = words(line)

            def read(name: str, counts=counts, own=own) -> bool:  # elsewhere in the function
                return name in keep or counts[name] - own[name] > 0

            call = _IN_PLACE_CALL.fullmatch(line)
            if call and not read(call.group(2)) and _writes_out(lines, k):
                lines[k] = call.group(1) + call.group(3)  # the call stays: it computes in place
                changed = True
                break
            match = _VIEW.fullmatch(line)
            if not match:
                continue
            indent, targets, value, comment = match.group(1), match.group(2).split(", "), match.group(3), match.group(4)
            reads = [t == "_" or read(t) for t in targets]
            if all(reads):
                continue
            if value.startswith("_blocks("):
                kept = [t if r else "_" for t, r in zip(targets, reads)]
                lines[k] = None if all(t == "_" for t in kept) else f"{indent}{', '.join(kept)} = {value}{comment or ''}"
            else:
                values = value.split(", ")
                if len(values) != len(targets) or not all(_STEP_VIEW.fullmatch(v) for v in values):
                    continue
                pairs = [(t, v) for t, v, r in zip(targets, values, reads) if r]
                lines[k] = None if not pairs else "{}{} = {}{}".format(
                    indent, ", ".join(t for t, _ in pairs), ", ".join(v for _, v in pairs), comment or "")
            lines = [line for line in lines if line is not None]
            changed = True
            break
        if not changed:  # and no two blank lines where the views between them went
            return [line for k, line in enumerate(lines) if line.strip() or k == 0 or lines[k - 1].strip()]


def _parts(expr) -> list:
    """The blocks an accumulated gradient sums over the rows: BatchSum(Stack(a, b)) -> [a, b],
    BatchSum(a) -> [a]; [] for anything else."""
    if not isinstance(expr, BatchSum):
        return []
    inner = expr.args[0]
    return list(inner.args) if isinstance(inner, Stack) else [inner]


def _bind(targets: list[str], values: list[str]) -> list[str]:
    """`a, b = x[t], y[t]` on one line when it fits, else one line per name."""
    if not targets:
        return []
    line = "{} = {}".format(", ".join(targets), ", ".join(values))
    if len(line) <= 100:
        return [line]
    return [f"{t} = {v}" for t, v in zip(targets, values)]


@dataclass(frozen=True)
class Recurrence:
    """What reaches state s at step t of the backward loop: `target` = the loss's own gradient at t
    (`upstream`, the (N, T, H) argument ds; None when s has no loss) + what step t+1 passed back
    (`carried`, the array dprev_s)."""

    target: str
    upstream: str | None
    carried: str

    @property
    def line(self) -> str:
        if self.upstream is None:
            return f"{self.target} = {self.carried}"
        return f"{self.target} = {self.upstream}[:, t, :] + {self.carried}"


@dataclass
class Entry:
    """One statement of a loop body: its printed items, the Python names it reads and writes, and
    whether it is elementwise arithmetic that a fused kernel can take (`stored`: the array, bound to
    a view of a buffer, that it writes into)."""

    items: list
    reads: set
    writes: set
    statement: Statement | None = None
    elementwise: bool = False
    stored: str | None = None
    summed_into: tuple[str, int] | None = None  # (array, row): a kernel adds the value into array[row, col]


@dataclass
class _Assign:
    """target = value, laid out by `format.statement`."""

    target: str
    value: str


@dataclass
class _Into:
    """function(args..., out=...), bound to `target` when it is not None."""

    target: str | None
    function: str
    args: list


def _render(items: list, indent: str) -> list[str]:
    """Logical lines at `indent`: strings (finished statements; rendered lines of a nested block keep
    their own indent) and `_Assign`/`_Into`, laid out as ruff format lays them out."""
    out = []
    for item in items:
        if isinstance(item, _Assign):
            out.extend(fmt.statement(indent, item.target, item.value))
        elif isinstance(item, _Into):
            if item.target is None:
                out.extend(fmt.bracketed(indent, item.function + "(", item.args, ")"))
            else:
                out.extend(fmt.assign_call(indent, [item.target], item.function, item.args))
        elif isinstance(item, _Rendered):
            out.append(item)
        else:
            out.append(indent + item if item else "")
    return out


class _Rendered(str):
    """A line already laid out at its final indent."""
