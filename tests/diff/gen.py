#!/usr/bin/env python3
"""Random object-graph programs for the differential test of Tally's collector.

A program works on K = 8 root slots R[0..7], each None, a node, a weak reference or
a built-in container (a list, dict, tuple or set).
Nodes have three strong slots s0, s1, s2 and an integer tag; weak references have a
tag too (tags are unique and increase through the program).  generate() draws a
seeded random list of ops; to_python() turns it into a standalone CPython program
and to_script() into the line-based op script that gc_diff_driver.c runs on Tally.
Both forms end with the same epilogue (everything dropped, frozen objects thawed,
two full collections) and print, after each op, one line "<op index> <events>"
with the op's events sorted: "fin:<tag>:<d0>:<d1>:<d2>" when a finalizer runs
(d_k describes slot k: "-", a node's tag, "w<tag>:alive|dead", or a container's
kind and length: "L<n>", "D<n>", "T<n>", "S<n>"), "cb:<tag>" when
a weak reference's callback runs, and "collect:<n>" for the result of a collection.

Ops (as tuples; the script form is the same words separated by spaces):
    ('new', i, kind, tag)    R[i] = new node; kind N plain, F finalizer logs,
                             Z finalizer logs and resurrects into Zlist
    ('weak', i, j, tag, cb)  if R[j] is a node: R[i] = weak ref to it, cb 0/1
    ('link', i, k, j)        if R[i] is a node: R[i].s<k> = R[j]
    ('unlink', i, k)         if R[i] is a node: R[i].s<k> = None
    ('load', i, j, k)        if R[j] is a node: R[i] = R[j].s<k>
    ('deref', i, j)          if R[j] is a weak ref: R[i] = R[j]()
    ('drop', i)              R[i] = None
    ('zclear',)              release Zlist, last item first
    ('collect', g)           log the result of a collection of generations 0..g
    ('freeze',) ('unfreeze',)
    ('list', i)              R[i] = []
    ('append', i, j)         if R[i] is a list: R[i].append(R[j])
    ('lpop', i)              if R[i] is a non-empty list: R[i].pop()
    ('dict', i)              R[i] = {}
    ('dset', i, k, j)        if R[i] is a dict and R[j] is not None: R[i][k] = R[j]
    ('ddel', i, k)           if R[i] is a dict with key k and another: del R[i][k]
    ('tuple', i, j, k)       if R[j] or R[k] is not None: R[i] = (R[j], R[k])
    ('set', i)               R[i] = set()
    ('sadd', i, j)           if R[i] is a set and R[j] is hashable (None, a node, a
                             tuple of hashable things), and R[j] is None or the set
                             holds no object yet (see below): R[i].add(R[j])
    ('sint', i, k)           if R[i] is a set: R[i].add(k) (k < 4) or the constant
                             (1, 2) (k == 4)
    ('litem', i, j, k)       if R[j] is a list or tuple longer than k, or a dict with
                             key k: R[i] = R[j][k]
Keys k are small ints (0..3).

The container ops are restricted so that CPython's lazy untracking and its
address-dependent set order cannot make the two sides differ:
  * every tuple a program builds holds a GC object (a root is None or a GC object,
    and (None, None) is never built), so CPython never untracks it; the one tuple
    of ints, the constant (1, 2), is untracked in CPython from the prologue's
    collection on, and the driver untracks its copies;
  * a dict only ever holds GC objects as values (under int keys), and never loses
    its last entry, so CPython tracks it from its first entry on and never
    untracks it; an empty dict is untracked in CPython, and the driver untracks a
    new dict and tracks it at its first entry, as CPython's MAINTAIN_TRACKING does;
  * a set holds at most one object (a node, or a tuple holding one), besides None,
    small ints and (1, 2), which are not tracked: CPython orders a set by hash, and
    a node's hash is its address, so with two objects the order in which the set
    visits or releases them (and so the order of finalizers) would differ.
Lists are always tracked on both sides.

Every op is a no-op when its condition fails, so any subsequence of a program is a
program: run_diff.py relies on that to shrink failing programs.

Usage: gen.py SEED [--ops N] [--form py|script]   prints one program.
"""

import argparse
import random

K = 8  # root slots

# The closing ops of every program: drop every root and every resurrected
# object, thaw frozen objects, and collect everything.  The second zclear and
# collect free what the first collection resurrected.
EPILOGUE = ([('drop', i) for i in range(K)]
            + [('zclear',), ('unfreeze',), ('collect', 2), ('zclear',), ('collect', 2)])

# Relative weights of the ops generate() draws.
WEIGHTS = {
    'new': 18, 'weak': 10, 'link': 30, 'unlink': 3, 'load': 8, 'deref': 4,
    'drop': 14, 'zclear': 3, 'collect': 8, 'freeze': 1, 'unfreeze': 1,
    'list': 5, 'append': 10, 'lpop': 2, 'dict': 4, 'dset': 12, 'ddel': 5,
    'tuple': 5, 'set': 3, 'sadd': 4, 'sint': 2, 'litem': 6,
}
NKEYS = 4  # keys and indexes k of the container ops: 0..NKEYS-1
CONTAINERS = ('list', 'dict', 'tuple', 'set')


def generate(seed, nops):
    """The body of program `seed`: nops random ops (the epilogue is added on output).

    A rough model of what each root holds (deaths and loads aside) steers most
    choices to roots where the op does something, so that programs build and
    abandon cycles often rather than mostly hitting empty roots."""
    rng = random.Random(seed)
    names = list(WEIGHTS)
    weights = [WEIGHTS[n] for n in names]
    held = [None] * K  # 'node', 'weak', a container kind, '?' (any) or None, per root
    tag = 0
    ops = []

    def slot(*wanted):
        """A root, most often one whose modelled content is in `wanted`."""
        fitting = [i for i in range(K) if held[i] in wanted]
        if fitting and rng.random() < 0.85:
            return rng.choice(fitting)
        return rng.randrange(K)

    for _ in range(nops):
        name = rng.choices(names, weights)[0]
        if name == 'new':
            tag += 1
            op = ('new', rng.randrange(K), rng.choices('NFZ', (5, 3, 2))[0], tag)
            held[op[1]] = 'node'
        elif name == 'weak':
            tag += 1
            op = ('weak', rng.randrange(K), slot('node', '?'), tag, rng.randrange(2))
            if held[op[2]] in ('node', '?'):
                held[op[1]] = 'weak'
        elif name == 'link':
            op = ('link', slot('node', '?'), rng.randrange(3),
                  slot('node', 'weak', '?', *CONTAINERS))
        elif name == 'unlink':
            op = ('unlink', slot('node', '?'), rng.randrange(3))
        elif name == 'load':
            op = ('load', rng.randrange(K), slot('node', '?'), rng.randrange(3))
            if held[op[2]] in ('node', '?'):
                held[op[1]] = '?'
        elif name == 'deref':
            op = ('deref', rng.randrange(K), slot('weak', '?'))
            if held[op[2]] in ('weak', '?'):
                held[op[1]] = '?'
        elif name == 'drop':
            op = ('drop', slot('node', 'weak', '?', *CONTAINERS))
            held[op[1]] = None
        elif name in ('list', 'dict', 'set'):
            op = (name, rng.randrange(K))
            held[op[1]] = name
        elif name == 'append':
            op = ('append', slot('list'), slot('node', 'weak', '?', *CONTAINERS))
        elif name == 'lpop':
            op = ('lpop', slot('list'))
        elif name == 'dset':
            op = ('dset', slot('dict'), rng.randrange(NKEYS),
                  slot('node', 'weak', '?', *CONTAINERS))
        elif name == 'ddel':
            op = ('ddel', slot('dict'), rng.randrange(NKEYS))
        elif name == 'tuple':
            op = ('tuple', rng.randrange(K), slot('node', 'weak', '?', *CONTAINERS),
                  slot('node', 'weak', '?', *CONTAINERS))
            if held[op[2]] is not None or held[op[3]] is not None:
                held[op[1]] = 'tuple'
        elif name == 'sadd':
            op = ('sadd', slot('set'), slot('node', 'tuple', '?'))
        elif name == 'sint':
            op = ('sint', slot('set'), rng.randrange(NKEYS + 1))
        elif name == 'litem':
            op = ('litem', rng.randrange(K), slot('list', 'dict', 'tuple'),
                  rng.randrange(NKEYS))
            if held[op[2]] in ('list', 'dict', 'tuple', '?'):
                held[op[1]] = '?'
        elif name == 'collect':
            op = ('collect', rng.randrange(3))
        else:
            op = (name,)
        ops.append(op)
    return ops


# The fixed start of every Python program.  Classes use __slots__ so that a node
# or weak reference is exactly one tracked object, as on the Tally side; the one
# module-level callback means no per-reference closure objects.  The prologue
# disables automatic collection and collects once so that everything the
# harness made is old and no garbage is left over.
PY_PROLOGUE = '''\
import gc
import weakref


class Node:
    __slots__ = ('tag', 's0', 's1', 's2', '__weakref__')


class F(Node):
    __slots__ = ()

    def __del__(self):
        log.append('fin:%d:%s:%s:%s' % (self.tag, d(self.s0), d(self.s1), d(self.s2)))


class Z(Node):
    __slots__ = ()

    def __del__(self):
        log.append('fin:%d:%s:%s:%s' % (self.tag, d(self.s0), d(self.s1), d(self.s2)))
        Zlist.append(self)


N = Node  # the plain kind: 'new i N tag'


class WRef(weakref.ref):
    __slots__ = ('tag',)


def d(x):
    """Describes a slot's value for a finalizer's event."""
    if x is None:
        return '-'
    if isinstance(x, WRef):
        return 'w%d:%s' % (x.tag, 'dead' if x() is None else 'alive')
    if type(x) in KINDS:
        return '%s%d' % (KINDS[type(x)], len(x))
    return str(x.tag)


KINDS = {{list: 'L', dict: 'D', tuple: 'T', set: 'S'}}


def hashable(x):
    """What a set may take: None, nodes and tuples of hashable things."""
    return x is None or isnode(x) or (type(x) is tuple and all(map(hashable, x)))


def isobj(x):
    """Whether set item x is an object (a node or a tuple holding a GC object),
    as opposed to None, an int or the constant (1, 2)."""
    return isnode(x) or (type(x) is tuple
                         and any(y is not None and type(y) is not int for y in x))


def cb(w):
    log.append('cb:%d' % w.tag)


def mk(cls, tag):
    o = cls()
    o.tag = tag
    o.s0 = o.s1 = o.s2 = None
    return o


def mkw(target, tag, callback):
    w = WRef(target, callback)
    w.tag = tag
    return w


def isnode(x):
    return isinstance(x, Node)


def out(i):
    print(i, *sorted(log))
    log.clear()


R = [None] * {K}
Zlist = []
log = []
gc.disable()
gc.collect()
'''.format(K=K)


def _py_statement(op):
    """One op as a Python statement."""
    name, a = op[0], op[1:]
    if name == 'new':
        return 'R[%d] = mk(%s, %d)' % (a[0], a[1], a[2])
    if name == 'weak':
        return 'if isnode(R[%d]): R[%d] = mkw(R[%d], %d, %s)' % (
            a[1], a[0], a[1], a[2], 'cb' if a[3] else 'None')
    if name == 'link':
        return 'if isnode(R[%d]): R[%d].s%d = R[%d]' % (a[0], a[0], a[1], a[2])
    if name == 'unlink':
        return 'if isnode(R[%d]): R[%d].s%d = None' % (a[0], a[0], a[1])
    if name == 'load':
        return 'if isnode(R[%d]): R[%d] = R[%d].s%d' % (a[1], a[0], a[1], a[2])
    if name == 'deref':
        return 'if isinstance(R[%d], WRef): R[%d] = R[%d]()' % (a[1], a[0], a[1])
    if name == 'drop':
        return 'R[%d] = None' % a[0]
    if name == 'zclear':
        return 'Zlist.clear()'  # releases the items last to first
    if name == 'collect':
        return "log.append('collect:%%d' %% gc.collect(%d))" % a[0]
    if name in ('freeze', 'unfreeze'):
        return 'gc.%s()' % name
    if name == 'list':
        return 'R[%d] = []' % a[0]
    if name == 'dict':
        return 'R[%d] = {}' % a[0]
    if name == 'set':
        return 'R[%d] = set()' % a[0]
    if name == 'append':
        return 'if type(R[%d]) is list: R[%d].append(R[%d])' % (a[0], a[0], a[1])
    if name == 'lpop':
        return 'if type(R[%d]) is list and R[%d]: R[%d].pop()' % (a[0], a[0], a[0])
    if name == 'dset':
        return 'if type(R[%d]) is dict and R[%d] is not None: R[%d][%d] = R[%d]' % (
            a[0], a[2], a[0], a[1], a[2])
    if name == 'ddel':
        return 'if type(R[%d]) is dict and %d in R[%d] and len(R[%d]) > 1: del R[%d][%d]' % (
            a[0], a[1], a[0], a[0], a[0], a[1])
    if name == 'tuple':
        return 'if R[%d] is not None or R[%d] is not None: R[%d] = (R[%d], R[%d])' % (
            a[1], a[2], a[0], a[1], a[2])
    if name == 'sadd':
        return ('if type(R[%d]) is set and hashable(R[%d]) and '
                '(R[%d] is None or not any(map(isobj, R[%d]))): R[%d].add(R[%d])' % (
                    a[0], a[1], a[1], a[0], a[0], a[1]))
    if name == 'sint':
        return 'if type(R[%d]) is set: R[%d].add(%s)' % (
            a[0], a[0], '(1, 2)' if a[1] == NKEYS else a[1])
    if name == 'litem':
        return ('if (type(R[%d]) in (list, tuple) and %d < len(R[%d])) '
                'or (type(R[%d]) is dict and %d in R[%d]): R[%d] = R[%d][%d]' % (
                    a[1], a[2], a[1], a[1], a[2], a[1], a[0], a[1], a[2]))
    raise ValueError('unknown op %r' % (op,))


def to_python(body, title='differential GC test program'):
    """The program (body + epilogue) as a standalone CPython 3 source file."""
    lines = ['# %s (generated by tests/diff/gen.py)' % title, PY_PROLOGUE]
    for index, op in enumerate(list(body) + EPILOGUE):
        lines.append(_py_statement(op))
        lines.append('out(%d)' % index)
    return '\n'.join(lines) + '\n'


def to_script(body):
    """The program (body + epilogue) as an op script for gc_diff_driver."""
    return ''.join(' '.join(map(str, op)) + '\n' for op in list(body) + EPILOGUE)


def main():
    parser = argparse.ArgumentParser(description='Prints one random program.')
    parser.add_argument('seed', type=int)
    parser.add_argument('--ops', type=int, default=60, help='ops before the epilogue')
    parser.add_argument('--form', choices=('py', 'script'), default='py')
    args = parser.parse_args()
    body = generate(args.seed, args.ops)
    if args.form == 'py':
        print(to_python(body, 'seed %d, %d ops' % (args.seed, args.ops)), end='')
    else:
        print(to_script(body), end='')


if __name__ == '__main__':
    main()
